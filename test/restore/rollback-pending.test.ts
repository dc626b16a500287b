// A restore that fails half-way through its swap while the cluster stops answering: the live
// database has been renamed aside and the restored one is not in place yet. Every swap step has a
// deadline, so the restore ends (it does not hold the app at 0 replicas forever); its rollback
// cannot finish either, so the operation fails with ROLLBACK_INCOMPLETE, keeps its recovery record,
// leaves the app stopped (it must not start without its database) and refuses other operations on
// the app. Once the cluster answers again, the engine's background retry puts everything back.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HELPER_LABEL, kubeClientFor, listPods, listWorkloads } from '../../src/kube/index.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { initRepository, OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';
import { startOperation } from '../helpers/faults.js';

let s: SimApp;
let backupId = '';
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini';
const STEP_MS = 8_000; // room for a normal swap step on a loaded machine; the silent one always exceeds it

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] }, { recoveryRetryMs: 500 });
  s.app.services.restores.stepTimeoutMs = STEP_MS;
  s.app.services.restores.rollbackRetryMs = 2_000;
  await initRepository(s);
  const rec = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  const b = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`);
  backupId = b.data!.instance.app.latestBackup.id;
}, 180_000);
afterAll(async () => {
  if (s) {
    s.sim.kube.runtime.execGate = undefined;
    s.sim.kube.api.setHanging(false);
    await s.close();
  }
});

async function replicas(): Promise<Record<string, number>> {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  return Object.fromEntries((await listWorkloads(client, 'gitea')).map((w) => [`${w.kind}/${w.name}`, w.replicas]));
}

async function liveState() {
  return {
    rows: await pgTableDigests(s.sim.databases.postgres!, 'gitea'),
    files: await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED }),
    replicas: await replicas(),
  };
}

const databases = async () => (await s.sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea%' order by 1`)).split('\n').filter(Boolean);

it('a swap cut off by a silent cluster: ROLLBACK_INCOMPLETE, the app kept stopped and busy, then put back in the background', async () => {
  const pg = s.sim.databases.postgres!;
  // The live data moves on after the backup: the restore must not lose it when it fails.
  await pg.query('create table after_backup (x int); insert into after_backup values (42)', 'gitea');
  await writeFile(path.join(s.sim.pvcDir('gitea', 'gitea-data'), 'written-after-backup.txt'), 'keep me');
  const before = await liveState();
  expect(Object.values(before.replicas).some((n) => n > 0)).toBe(true);

  // The second rename of the database swap (restored copy -> live name) never gets an answer:
  // the live database is already renamed aside when the cluster goes silent.
  const rt = s.sim.kube.runtime;
  let cutOff = false;
  rt.execGate = (command) => {
    if (!/^alter database "gitea_wbr_\w+" rename to "gitea"$/.test(command.at(-1) ?? '')) return undefined;
    rt.execGate = undefined;
    cutOff = true;
    s.sim.kube.api.setHanging(true);
    return new Promise<void>(() => undefined);
  };
  const t = Date.now();
  const opId = await startOperation(s, `mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: backupId });
  const rec = await s.app.services.engine.waitFor(opId);
  expect(cutOff).toBe(true);
  expect(rec.status).toBe('FAILED');
  expect(rec.error?.code).toBe('ROLLBACK_INCOMPLETE');
  expect(rec.error?.message).toMatch(/^swapping in postgres:gitea: .*the step got no answer within 8 s; putting the app back did not finish \(.*postgres: the old data is not back yet/);
  expect(Date.now() - t, 'bounded by the step deadlines, not by the silence').toBeLessThan(60_000);
  const pendingOf = async () => (await s.gql<{ operation: { recoveryPending: boolean } }>(`query($id: ID!) { operation(id: $id) { recoveryPending } }`, { id: opId })).data!.operation.recoveryPending;
  expect(await pendingOf()).toBe(true);

  // The state it had to stop in: the app's database renamed aside, the app stopped (it must not
  // start, and perhaps create an empty database, in the meantime), the app taking no operation.
  expect(await databases()).toEqual([expect.stringMatching(/^gitea_wbo_/), expect.stringMatching(/^gitea_wbr_/)]);
  const busy = await s.gql<{ backupApp: { code?: string; message?: string } }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  expect(busy.data?.backupApp.code).toBe('CONFLICT');
  expect(busy.data?.backupApp.message).toMatch(new RegExp(`waits for operation ${opId} \\(RESTORE_APP, FAILED\\) to finish putting things back`));

  // Still silent: a background retry fails (bounded by the step deadline) and changes nothing.
  const log = () => s.app.services.engine.logTail(opId, 50);
  await expect.poll(async () => (await log()).some((l) => /recovery failed again/.test(l)), { timeout: 60_000, interval: 250 }).toBe(true);
  expect(await pendingOf()).toBe(true);
  // Still stopped, read from the simulated cluster's own store while its API is silent: once it
  // answers, a retry already waiting on it may put the replicas back at once.
  const stored = ['deployments', 'statefulsets'].flatMap((plural) => rt.store.list(plural, 'gitea')).map((w) => `${w.kind}/${w.metadata.name}=${String(w.spec?.replicas)}`);
  expect(stored.length).toBeGreaterThan(0);
  expect(stored.filter((w) => !w.endsWith('=0'))).toEqual([]);
  s.sim.kube.api.setHanging(false);

  // The cluster answers again: the next retry puts the old data and the replicas back.
  await expect.poll(pendingOf, { timeout: 90_000, interval: 250 }).toBe(false);
  expect((await log()).some((l) => /recovery finished/.test(l))).toBe(true);
  expect(await liveState()).toEqual(before);
  expect(await databases()).toEqual(['gitea']);
  const client = kubeClientFor(s.sim.kubeconfigPath);
  expect(Object.keys(await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'))).filter((k) => k.startsWith('.wild-backup'))).toEqual([]);
  await expect.poll(async () => (await listPods(client, 'gitea', `${HELPER_LABEL}=true`)).length, { timeout: 20_000 }).toBe(0);
  // And the app takes operations again.
  const again = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  expect(again.status, JSON.stringify(again.error)).toBe('SUCCEEDED');
}, 240_000);
