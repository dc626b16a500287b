// A restore reads its config artifact before it swaps anything in: an artifact that cannot be read
// fails the restore while the app's data is still untouched (no swap, so nothing to swap back).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeClientFor, listWorkloads } from '../../src/kube/index.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
const RESTORE = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ${OP_FIELDS} } }`;
beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
  await initRepository(s);
}, 180_000);
afterAll(async () => { await s?.close(); });

async function replicas(ns: string): Promise<Record<string, number>> {
  const ws = await listWorkloads(kubeClientFor(s.sim.kubeconfigPath), ns);
  return Object.fromEntries(ws.map((w) => [`${w.kind}/${w.name}`, w.replicas]));
}

it('a config artifact that cannot be read fails the restore before the swap, the data untouched', async () => {
  const b = await backupLatest(s, 'gitea');
  const pg = s.sim.databases.postgres!;
  const dbBefore = await pgTableDigests(pg, 'gitea');
  const volume = s.sim.pvcDir('gitea', 'gitea-data');
  const filesBefore = await treeDigest(volume);
  const replicasBefore = await replicas('gitea');
  // The repository no longer gives the config artifact back (here: the manifest the server holds
  // names a file its snapshot does not have).
  const svc = s.app.services;
  const view = await svc.backups.get(await svc.store.requireInstance('test'), b.backupId);
  const config = view!.manifest!.artifacts.find((a) => a.kind === 'config')!;
  const filename = config.filename;
  config.filename = `${filename}.gone`;
  try {
    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, safetyBackup: false } });
    expect(rec.status).toBe('FAILED');
    const log = (await s.gql<{ operation: { log: string[] } }>(`query($id: ID!) { operation(id: $id) { log(last: 200) } }`, { id: Buffer.from(`Operation:${rec.id}`).toString('base64') })).data!.operation.log.join('\n');
    expect(log).not.toMatch(/swapped in/);
    expect(rec.error?.message).toMatch(/^config:gitea: /);
  } finally {
    config.filename = filename;
  }
  expect(await pgTableDigests(pg, 'gitea')).toEqual(dbBefore);
  expect(await treeDigest(volume)).toEqual(filesBefore);
  expect(await replicas('gitea')).toEqual(replicasBefore);
}, 240_000);
