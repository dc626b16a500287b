// Faults during a restore leave the original data intact and the app running: the database server
// killed mid-stream, and a corrupted pack file in the repository. Each gives a clear error; no
// side database, side directory, helper pod or role the restore created is left behind.
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClientFor, listPods, listWorkloads, HELPER_LABEL } from '../../src/kube/index.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let backupId = '';
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini';
const GONE_ROLE = 'wb_gone_role';

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
  await s.sim.databases.postgres!.query(`create table bulk as select g as id, repeat(md5(g::text), 20) as payload from generate_series(1, 200000) g`, 'gitea');
  // A role in the backup that the server no longer has: each restore creates it before the data.
  await s.sim.databases.postgres!.query(`create role ${GONE_ROLE} nologin`);
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
  const rec = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  const b = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`);
  backupId = b.data!.instance.app.latestBackup.id;
  // The live data moves on after the backup.
  await s.sim.databases.postgres!.query(`update bulk set payload = 'changed' where id <= 1000; create table newer (x int)`, 'gitea');
  await s.sim.databases.postgres!.query(`drop role ${GONE_ROLE}`);
}, 240_000);
afterAll(async () => { await s?.close(); });

async function snapshotOfLiveState() {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  return {
    rows: await pgTableDigests(s.sim.databases.postgres!, 'gitea'),
    files: await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED }),
    replicas: Object.fromEntries((await listWorkloads(client, 'gitea')).map((w) => [w.name, w.replicas])),
  };
}

async function expectUntouched(before: Awaited<ReturnType<typeof snapshotOfLiveState>>): Promise<void> {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  expect(await snapshotOfLiveState()).toEqual(before);
  expect((await s.sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea_wb%'`)).trim()).toBe('');
  // The role the restore created for the backup's data went with it.
  expect((await s.sim.databases.postgres!.query(`select rolname from pg_roles where rolname = '${GONE_ROLE}'`)).trim()).toBe('');
  expect(Object.keys(await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'))).filter((k) => k.startsWith('.wild-backup'))).toEqual([]);
  expect(await listPods(client, 'gitea', `${HELPER_LABEL}=true`)).toEqual([]);
  const ready = await listPods(client, 'gitea');
  expect(ready.some((p) => p.ready), 'the app runs again').toBe(true);
}

describe('faults during a restore', () => {
  it('the database server killed mid-stream: FAILED with a clear error, original data intact, app running', async () => {
    const before = await snapshotOfLiveState();
    const res = await s.gql<{ restoreBackup: { operation: { operationId: string } } }>(
      `mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: backupId });
    const opId = res.data!.restoreBackup.operation.operationId;
    for await (const ev of s.app.services.pubsub.subscribe(`operation:${opId}`, { bufferSize: 10_000 })) {
      if (ev.operation.progress.phase.startsWith('restoring') && ev.operation.progress.phase.includes('postgres:gitea') && ev.operation.progress.bytesDone > 1 << 20) break;
      if (ev.type === 'FINISHED') throw new Error(`finished early: ${JSON.stringify(ev.operation.error)}`);
    }
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const [pod] = await listPods(client, 'postgres', 'app=postgres');
    await client.core.deleteNamespacedPod({ namespace: 'postgres', name: pod!.name, gracePeriodSeconds: 0 });
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/^postgres:gitea: .*(pg_restore|connection|lost)/i);
    // The role was made before the data, and dropped once the server was back.
    expect((await s.app.services.engine.logTail(opId, 50)).join('\n')).toMatch(new RegExp(`created missing roles: ${GONE_ROLE}[^]*dropped the roles this restore created: ${GONE_ROLE}`));
    // The server is back (its Deployment recreated the pod) and nothing of the restore remains.
    await expectUntouched(before);
  }, 240_000);

  it('cancelled while the side database is being created: CANCELLED, no side database left', async () => {
    const before = await snapshotOfLiveState();
    const pg = s.sim.databases.postgres!;
    // A session on template1 holds CREATE DATABASE up (the server waits up to 5 s for it to end);
    // the restore is cancelled during that wait, then the session ends and the create goes through.
    // The server carries the create out regardless of its client going away, so the side database
    // must be dropped after the create, not skipped. The session sleeps until the test ends it: how
    // long the restore takes to reach the create depends on the machine's load.
    const holder = pg.query(`select 'wild-test-holder', pg_sleep(120)`, 'template1').catch(() => undefined);
    const res = await s.gql<{ restoreBackup: { operation: { operationId: string } } }>(
      `mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: backupId });
    const opId = res.data!.restoreBackup.operation.operationId;
    const creating = `select count(*) from pg_stat_activity where query like 'create database "gitea_wbr_%'`;
    for (const t0 = Date.now(); (await pg.query(creating)).trim() !== '1';) {
      if (Date.now() - t0 > 60_000) throw new Error('the side database was never being created');
      await new Promise((r) => setTimeout(r, 10));
    }
    await s.app.services.engine.cancel(opId);
    await pg.query(`select pg_terminate_backend(pid) from pg_stat_activity where query like '%wild-test-holder%' and pid <> pg_backend_pid()`);
    await holder;
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('CANCELLED');
    await expectUntouched(before);
  }, 120_000);

  it('a corrupted pack file: FAILED before anything is swapped, original data intact', async () => {
    const before = await snapshotOfLiveState();
    const data = path.join(s.sim.instanceDir, 'backups', 'repository', 'data');
    let corrupted = 0;
    for (const dir of await readdir(data)) {
      for (const f of await readdir(path.join(data, dir))) {
        const file = path.join(data, dir, f);
        const { size } = await stat(file);
        if (size < 1 << 20) continue;
        const fh = await open(file, 'r+');
        await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(size / 2));
        await fh.close();
        corrupted++;
      }
    }
    expect(corrupted).toBeGreaterThan(0);
    const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: backupId });
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/^(postgres|pvc):gitea.*(ciphertext|decrypt)/i);
    const log = (await s.app.services.engine.logTail(rec.id, 50)).join('\n');
    expect(log).not.toMatch(/swapped in/);
    expect(log).toMatch(new RegExp(`created missing roles: ${GONE_ROLE}`));
    expect(log).toMatch(new RegExp(`dropped the roles this restore created: ${GONE_ROLE}`));
    await expectUntouched(before);
  }, 240_000);
});
