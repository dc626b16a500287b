// The server killed (SIGKILL) in the middle of a restore and of a backup, then started again: the
// operation is FAILED with code INTERRUPTED, the app's data and replicas are as before the restore
// began, no side copy is left, and no snapshot of the interrupted backup remains.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClientFor, listWorkloads } from '../../src/kube/index.js';
import { buildApp, type WildBackupApp } from '../../src/server.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from '../helpers/app.js';
import { startSimCluster, type SimCluster } from '../../src/sim/fixture.js';
import { registerSimSecrets } from '../helpers/sim-app.js';
import { scanDataDir } from '../helpers/leaks.js';
import { gqlAt, killServer, spawnServer } from '../helpers/server-process.js';
import { pauseResticOnce } from '../helpers/faults.js';

let sim: SimCluster;
let child: ChildProcess | undefined;
let url = '';
const env = { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN };
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini' || rel.startsWith('.wild-backup');

async function startServerProcess(): Promise<void> {
  ({ child, url } = await spawnServer(sim.dataDir));
}

const gql = <T>(query: string, variables?: Record<string, unknown>): Promise<T> => gqlAt<T>(url, query, variables);

/** Waits until the phase names `prefix` (artifacts run side by side: "backing up a, b"), or the status. */
async function waitForPhase(opId: string, prefix: string, status?: string): Promise<{ status: string; backupId: string | null }> {
  for (let i = 0; i < 600; i++) {
    const d = await gql<{ operation: { status: string; backupId: string | null; progress: { phase: string; bytesDone: number } } }>(`query($id: ID!) { operation(id: $id) { status backupId progress { phase bytesDone } } }`, { id: opId });
    const phase = d.operation.progress.phase;
    const [verb, what] = [prefix.split(' ').slice(0, -1).join(' '), prefix.split(' ').at(-1)!];
    if (phase.startsWith(verb) && phase.split(/[ ,]+/).some((w) => w.startsWith(what)) && d.operation.progress.bytesDone > 0) return d.operation;
    if (status && d.operation.status === status) return d.operation;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(d.operation.status)) throw new Error(`finished before ${prefix}: ${d.operation.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never reached ${prefix}`);
}

/**
 * holdRestic holds the server's restic whose argv holds `words` once it has moved `minBytes`, so
 * that the kill lands mid-stream on any machine; killServerMidStream kills the server, lets that
 * restic go on as a crash leaves it (it meets a closed pipe) and waits for it to end.
 */
function holdRestic(words: string[], counter: 'rchar' | 'wchar', minBytes: number): ReturnType<typeof pauseResticOnce> {
  const holding = pauseResticOnce(words, counter, minBytes, { parent: child!.pid });
  holding.catch(() => undefined); // awaited by killServerMidStream
  return holding;
}

async function killServerMidStream(holding: ReturnType<typeof pauseResticOnce>): Promise<void> {
  const held = await holding;
  await kill();
  held.resume();
  for (let i = 0; i < 300 && existsSync(`/proc/${held.pid}`); i++) await new Promise((r) => setTimeout(r, 50));
}

function kill(): Promise<void> {
  const c = child!;
  child = undefined;
  return killServer(c);
}

async function replicas(): Promise<Record<string, number>> {
  const ws = await listWorkloads(kubeClientFor(sim.kubeconfigPath), 'gitea');
  return Object.fromEntries(ws.map((w) => [`${w.kind}/${w.name}`, w.replicas]));
}

beforeAll(async () => {
  sim = await startSimCluster({ apps: ['gitea'] });
  registerSimSecrets(sim);
  await writeFile(path.join(sim.pvcDir('gitea', 'gitea-data'), 'large.bin'), Buffer.alloc(120 << 20, 7));
  await startServerProcess();
  const init = await gql<{ initRepository: { operation: { operationId: string } } }>(`mutation { initRepository(input: { instance: "test" }) { ... on OperationPayload { operation { operationId } } } }`);
  await waitForPhase(init.initRepository.operation.operationId, '\u0000', 'SUCCEEDED');
}, 180_000);
afterAll(async () => {
  if (child) await kill();
  if (sim) scanDataDir(sim.dataDir);
  await sim?.stop();
});

describe('a server killed mid-operation', () => {
  let restarted: WildBackupApp | undefined;
  afterAll(async () => { await restarted?.stop(); });

  it('restore: after the restart the data and replicas are as before, and the operation is FAILED/INTERRUPTED', async () => {
    const backup = await gql<{ backupApp: { operation: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ... on OperationPayload { operation { operationId } } } }`);
    await waitForPhase(backup.backupApp.operation.operationId, '\u0000', 'SUCCEEDED');
    const latest = await gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`);
    // The state the restore must leave untouched if it does not complete.
    await writeFile(path.join(sim.pvcDir('gitea', 'gitea-data'), 'written-after-backup.txt'), 'keep me');
    await sim.databases.postgres!.query(`create table after_backup (x int); insert into after_backup values (42)`, 'gitea');
    const files = await treeDigest(sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED });
    const rows = await pgTableDigests(sim.databases.postgres!, 'gitea');
    const before = await replicas();

    const r = await gql<{ restoreBackup: { operation: { operationId: string } } }>(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ... on OperationPayload { operation { operationId } } } }`, { id: latest.instance.app.latestBackup.id });
    const opId = r.restoreBackup.operation.operationId;
    const holding = holdRestic(['dump', '/gitea/pvc-gitea-data.tar'], 'wchar', 4 << 20);
    await waitForPhase(opId, 'restoring pvc');
    expect(Object.values(await replicas()).every((n) => n === 0)).toBe(true);
    await killServerMidStream(holding);

    restarted = await buildApp({ dataDir: sim.dataDir, port: 0, env });
    const rec = restarted.services.engine.get(opId)!;
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('INTERRUPTED');
    expect(await replicas()).toEqual(before);
    expect(await treeDigest(sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED })).toEqual(files);
    expect(Object.keys(await treeDigest(sim.pvcDir('gitea', 'gitea-data'))).filter((k) => k.startsWith('.wild-backup'))).toEqual([]);
    expect(await pgTableDigests(sim.databases.postgres!, 'gitea')).toEqual(rows);
    expect((await sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea_wb%'`)).trim()).toBe('');
    await restarted.stop();
    restarted = undefined;
  }, 240_000);

  it('backup: after the restart the interrupted backup has no snapshot left', async () => {
    await startServerProcess();
    const b = await gql<{ backupApp: { operation: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ... on OperationPayload { operation { operationId } } } }`);
    const opId = b.backupApp.operation.operationId;
    const holding = holdRestic(['backup', 'gitea/pvc-gitea-data.tar'], 'rchar', 1 << 20);
    const st = await waitForPhase(opId, 'backing up pvc');
    await killServerMidStream(holding);
    restarted = await buildApp({ dataDir: sim.dataDir, port: 0, env });
    const rec = restarted.services.engine.get(opId)!;
    expect(rec.error?.code).toBe('INTERRUPTED');
    const inst = await restarted.services.store.requireInstance('test');
    const repo = await restarted.services.repositories.open(inst);
    expect(st.backupId).toBeTruthy();
    expect(await repo.snapshots({ tags: [`backup:${st.backupId}`], refresh: true })).toEqual([]);
    await restarted.stop();
    restarted = undefined;
  }, 240_000);

  it('restore drill: after the restart its half-filled side database is gone', async () => {
    // A database big enough for the drill to be stopped in the middle of its fill.
    await sim.databases.postgres!.query(`create table drill_bulk as select g as id, repeat(md5(g::text), 20) as payload from generate_series(1, 50000) g`, 'gitea');
    await startServerProcess();
    const backup = await gql<{ backupApp: { operation: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ... on OperationPayload { operation { operationId } } } }`);
    await waitForPhase(backup.backupApp.operation.operationId, '\u0000', 'SUCCEEDED');
    const latest = await gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`);
    const v = await gql<{ verifyBackup: { operation: { operationId: string } } }>(`mutation($id: ID!) { verifyBackup(id: $id) { ... on OperationPayload { operation { operationId } } } }`, { id: latest.instance.app.latestBackup.id });
    const opId = v.verifyBackup.operation.operationId;
    const holding = holdRestic(['dump', '/gitea/postgres-gitea.pgdump'], 'wchar', 1 << 20);
    await waitForPhase(opId, 'verifying postgres');
    await killServerMidStream(holding);
    // The drill's side database is there, half filled, when the server dies.
    expect((await sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea_wbr%'`)).trim()).toMatch(/^gitea_wbr_v/);
    restarted = await buildApp({ dataDir: sim.dataDir, port: 0, env });
    const rec = restarted.services.engine.get(opId)!;
    expect(rec.error?.code).toBe('INTERRUPTED');
    expect(rec.recovery).toBeNull();
    expect((await sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea_w%'`)).trim()).toBe('');
  }, 240_000);
});
