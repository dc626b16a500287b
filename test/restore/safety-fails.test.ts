// A restore whose safety backup fails (here: a repository that takes no new snapshot, as a full or
// read-only disk would) restores nothing and stops nothing, and says how to go on: mend it, or
// restore without a safety backup. That second restore then succeeds from the same repository.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeClientFor, listWorkloads } from '../../src/kube/index.js';
import { treeDigest } from '../helpers/compare.js';
import { immutable, immutableDirsWork } from '../helpers/faults.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
const RESTORE = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ${OP_FIELDS} } }`;
const snapshotsDir = () => path.join(s.sim.instanceDir, 'backups', 'repository', 'snapshots');
const chattr = (flag: '+i' | '-i') => immutable(snapshotsDir(), flag === '+i');

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
}, 180_000);
afterAll(async () => {
  if (s) {
    try { chattr('-i'); } catch { /* never made immutable */ }
    await s.close();
  }
});

async function replicas(ns: string): Promise<Record<string, number>> {
  const ws = await listWorkloads(kubeClientFor(s.sim.kubeconfigPath), ns);
  return Object.fromEntries(ws.map((w) => [`${w.kind}/${w.name}`, w.replicas]));
}

it.skipIf(!immutableDirsWork())('a failed safety backup restores nothing and stops nothing, and says to mend it or restore without one', async () => {
  const volume = s.sim.pvcDir('website', 'website-content');
  await writeFile(path.join(volume, 'page.html'), '<p>as backed up</p>');
  const b = await backupLatest(s, 'website');
  const backedUp = await treeDigest(volume);
  await writeFile(path.join(volume, 'page.html'), '<p>changed since</p>');
  await writeFile(path.join(volume, 'added.html'), '<p>added since</p>');
  const filesBefore = await treeDigest(volume);
  const replicasBefore = await replicas('website');
  expect(Object.values(replicasBefore).some((n) => n > 0)).toBe(true);

  chattr('+i');
  try {
    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id } });
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('SAFETY_BACKUP_FAILED');
    expect(rec.error?.message).toMatch(/^the safety backup of website failed, so nothing was restored and website was not stopped: .*operation not permitted.*restore without a safety backup \(safetyBackup: false\)/s);
  } finally {
    chattr('-i');
  }
  expect(await treeDigest(volume)).toEqual(filesBefore);
  expect(await replicas('website')).toEqual(replicasBefore);

  // Without a safety backup, from the same repository: restored, and the app back at its replicas.
  const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, safetyBackup: false } });
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  expect(await treeDigest(volume)).toEqual(backedUp);
  expect(await replicas('website')).toEqual(replicasBefore);
}, 240_000);
