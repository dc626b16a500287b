// Retention never removes a backup that queued work is about to use. Found in the demo: a restore
// of an older backup waited behind a retention run (exclusive work goes first); the retention
// forgot that backup, and the restore, already past its safety backup and with the app stopped,
// FAILED with RESTIC_NOT_FOUND. Retention now keeps a backup that a queued or running restore,
// verification or deletion works on; a deletion of a backup in use is refused. And a backup removed
// by someone else (restic by hand) fails a restore or a verification before either does anything.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { parse } from 'yaml';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { OP_FIELDS, backupLatest, holdExecs, untilRunning, useSimApp } from '../helpers/sim-app.js';

const suite = useSimApp(['website', 'gitea']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Started = { __typename: string; code?: string; message?: string; operation?: { operationId: string } };

async function websiteBackups(): Promise<string[]> {
  const s = suite();
  const res = await s.gql<{ instance: { backups: { edges: Array<{ node: { backupId: string } }> } } }>(`{ instance(name: "test") { backups(app: "website") { edges { node { backupId } } } } }`);
  return res.data!.instance.backups.edges.map((e) => e.node.backupId);
}

it('keeps the backup a queued restore waits for, refuses its deletion, and removes it once the restore is done', async () => {
  const s = suite();
  const older = await backupLatest(s, 'website');
  await backupLatest(s, 'website');
  await updateYamlFile(path.join(s.sim.instanceDir, 'config.yaml'), (doc) => setPath(doc, ['cloud', 'backup', 'retention'], { keepLast: 1 }), 0o644);
  const engine = s.app.services.engine;

  // gitea's backup runs, held at its dump: the retention run waits for it, and the restore waits behind the retention.
  const gate = holdExecs(s, (command) => command[0] === 'pg_dump');
  let restoreOp: string;
  let retentionOp: string;
  try {
    const held = await s.gql<{ backupApp: Started }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
    const heldOp = held.data!.backupApp.operation!.operationId;
    await untilRunning(s, heldOp);

    const ret = await s.gql<{ applyRetention: { remove: Array<{ backupId: string }>; operation: { operationId: string } } }>(
      `mutation { applyRetention(input: { instance: "test" }) { ... on RetentionPreviewPayload { remove { backupId } operation { operationId } } } }`);
    expect(ret.data!.applyRetention.remove.map((b) => b.backupId), 'as things stand, the policy removes the older backup').toContain(older.backupId);
    retentionOp = ret.data!.applyRetention.operation.operationId;
    const restore = await s.gql<{ restoreBackup: Started }>(`mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`, { id: older.id });
    expect(restore.data!.restoreBackup.__typename, JSON.stringify(restore.data)).toBe('OperationPayload');
    restoreOp = restore.data!.restoreBackup.operation!.operationId;
    await sleep(500);
    expect(engine.get(retentionOp)?.status).toBe('QUEUED');
    expect(engine.get(restoreOp)?.status, 'the restore waits behind the retention run').toBe('QUEUED');

    // A dry run now keeps it; a deletion of it is refused (here the app is busy too; a clone's
    // restore holds only the backup: test/engine/operations.test.ts).
    const dry = await s.gql<{ applyRetention: { keep: Array<{ backupId: string }>; remove: Array<{ backupId: string }> } }>(
      `mutation { applyRetention(input: { instance: "test", dryRun: true }) { ... on RetentionPreviewPayload { keep { backupId } remove { backupId } } } }`);
    expect(dry.data!.applyRetention.keep.map((b) => b.backupId)).toContain(older.backupId);
    const del = await s.gql<{ deleteBackup: Started }>(`mutation($id: ID!) { deleteBackup(id: $id) { ${OP_FIELDS} } }`, { id: older.id });
    expect(del.data!.deleteBackup.__typename).toBe('ConflictError');
    expect(del.data!.deleteBackup.message).toContain(`operation ${restoreOp} (RESTORE_APP, QUEUED)`);
    gate.release();
    expect((await engine.waitFor(heldOp)).status).toBe('SUCCEEDED');
  } finally {
    gate.release();
  }

  const retention = await engine.waitFor(retentionOp);
  expect(retention.status, JSON.stringify(retention.error)).toBe('SUCCEEDED');
  expect((await engine.logTail(retentionOp)).join('\n')).toContain(`keep ${older.backupId} (website): in use by operation ${restoreOp} (RESTORE_APP, QUEUED)`);
  const restored = await engine.waitFor(restoreOp);
  expect(restored.status, JSON.stringify(restored.error)).toBe('SUCCEEDED');
  expect(restored.message).toContain(`restored backup ${older.backupId}`);
  expect(await websiteBackups()).toContain(older.backupId);

  // Nothing uses it now: the next run removes it, as the policy says.
  const again = await s.runOperation(`mutation { applyRetention(input: { instance: "test" }) { ... on RetentionPreviewPayload { operation { operationId status } } } }`);
  expect(again.status, JSON.stringify(again.error)).toBe('SUCCEEDED');
  expect(await websiteBackups()).not.toContain(older.backupId);
}, 240_000);

it('a restore and a verification of backups removed by hand since they were listed fail before they do anything', async () => {
  const s = suite();
  const website = await backupLatest(s, 'website');
  const gitea = await backupLatest(s, 'gitea');
  // Listed now, after the listings that confirm each backup (those run after their operation;
  // one started before this is never stored): the listing the server keeps holds both backups.
  await (await s.app.services.repositories.open(await s.app.services.store.requireInstance('test'))).refresh();
  // restic run by hand, outside the server: the server's listing still shows both backups.
  const repository = (await s.gql<{ instance: { repository: { uri: string } } }>(`{ instance(name: "test") { repository { uri } } }`)).data!.instance.repository.uri;
  const secrets = parse(await readFile(path.join(s.sim.instanceDir, 'secrets.yaml'), 'utf8')) as { cloud: { backup: { defaultRepositoryPassword: string } } };
  const env = { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD: secrets.cloud.backup.defaultRepositoryPassword, RESTIC_CACHE_DIR: path.join(s.sim.dataDir, 'hand-cache') };
  const restic = promisify(execFile);
  for (const b of [website, gitea]) {
    const listed = JSON.parse((await restic('restic', ['snapshots', '--json', '--tag', `backup:${b.backupId}`], { env })).stdout) as Array<{ id: string }>;
    expect(listed.length).toBeGreaterThan(1);
    await restic('restic', ['forget', ...listed.map((x) => x.id)], { env });
  }
  const ids = (await s.gql<{ instance: { backups: { edges: Array<{ node: { backupId: string } }> } } }>(`{ instance(name: "test") { backups(first: 100) { edges { node { backupId } } } } }`)).data!.instance.backups.edges.map((e) => e.node.backupId);
  expect(ids, 'still listed from the cache').toEqual(expect.arrayContaining([website.backupId, gitea.backupId]));

  const verifyOp = (await s.gql<{ verifyBackup: Started }>(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: website.id })).data!.verifyBackup.operation!.operationId;
  const restoreOp = (await s.gql<{ restoreBackup: Started }>(`mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`, { id: gitea.id })).data!.restoreBackup.operation!.operationId;
  const engine = s.app.services.engine;
  for (const [op, b] of [[verifyOp, website], [restoreOp, gitea]] as const) {
    const rec = await engine.waitFor(op);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('NOT_FOUND');
    expect(rec.error?.message).toContain(`backup ${b.backupId} is no longer in the repository`);
  }
  const restoreLog = (await engine.logTail(restoreOp)).join('\n');
  expect(restoreLog, 'no safety backup was taken').not.toMatch(/safety backup/);
  expect(restoreLog, 'the app was never stopped').not.toMatch(/quiesced|scaled/);
  expect(await s.app.services.restores.verification('test', website.backupId), 'no verification result is recorded for a backup that is gone').toBeNull();
}, 240_000);
