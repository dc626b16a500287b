// restic killed (SIGKILL, found through /proc as a child of the server) in the middle of a backup
// and of a restore. The backup fails naming the artifact, and none of its snapshots stays; the
// lock the killed restic left is removed as stale, and the next backup and an exclusive
// `restic check` run. The restore fails naming the artifact, the live data and replicas are as
// before, no side database, side directory, helper pod, exec socket, restic or lock is left.
import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELPER_LABEL, kubeClientFor, listPods, listWorkloads } from '../../src/kube/index.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';
import { backupsOf, expectBackupLeftNothing, expectNoProcessesLeft, pauseResticOnce, startOperation } from '../helpers/faults.js';

let s: SimApp;
let firstBackup = '';
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini';
const backupGitea = `mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`;
const locksDir = () => path.join(s.sim.instanceDir, 'backups', 'repository', 'locks');

/**
 * The repository's locks. restic's local backend writes each file as `<id>-tmp-<n>` and then
 * renames it; a restic interrupted in between (one of the backup's other restics, stopped with
 * SIGINT when the killed one failed it: restic exits without finishing the write) leaves that temp
 * file. restic lists only names that are ids, so it is no lock and blocks nothing (the next backup
 * and an exclusive check below show it); anything else in the directory fails here.
 */
async function locks(): Promise<string[]> {
  const names = await readdir(locksDir());
  expect(names.filter((n) => !/^[0-9a-f]{64}(-tmp-\d+)?$/.test(n)), 'only locks and restic temp files').toEqual([]);
  return names.filter((n) => /^[0-9a-f]{64}$/.test(n));
}

/**
 * SIGKILLs the server's restic whose argv holds every one of `words` once it has moved `minBytes`
 * (held with SIGSTOP at that point, so the kill lands mid-stream however fast the machine is).
 */
async function killResticAfter(words: string[], counter: 'rchar' | 'wchar', minBytes: number): Promise<void> {
  const held = await pauseResticOnce(words, counter, minBytes);
  process.kill(held.pid, 'SIGKILL');
}

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
  await writeFile(path.join(s.sim.pvcDir('gitea', 'gitea-data'), 'big.bin'), randomBytes(128 << 20));
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
  const first = await s.runOperation(backupGitea);
  expect(first.status, JSON.stringify(first.error)).toBe('SUCCEEDED');
  firstBackup = first.backupId!;
}, 120_000);
afterAll(async () => { await s?.close(); });

describe('restic killed', () => {
  it('mid-backup: FAILED naming the artifact, no snapshot of it left, the stale lock blocks nothing, the next backup completes', async () => {
    const opId = await startOperation(s, backupGitea);
    // Early in the volume's stream: its restic has read 1 MiB of the 128 MiB.
    await killResticAfter(['backup', 'gitea/pvc-gitea-data.tar'], 'rchar', 1 << 20);
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/^pvc:gitea-data: restic backup failed \(was killed\)/);
    // Its other artifacts' snapshots went at once: the killed restic's lock did not stop the forget.
    await expectBackupLeftNothing(s, rec, 'gitea');
    expect(await s.app.services.backups.leftovers.list('test')).toEqual([]);
    expect(await locks(), 'the stale lock is gone').toEqual([]);

    const next = await s.runOperation(backupGitea);
    expect(next.status, JSON.stringify(next.error)).toBe('SUCCEEDED');
    expect((await backupsOf(s, 'gitea')).filter((b) => b.status === 'COMPLETE').map((b) => b.backupId).sort()).toEqual([firstBackup, next.backupId].sort());
    // Two backups of 128 MiB and a clean-up: 12 s on a quiet machine, over 60 s once under a
    // full suite beside two CPU hogs.
  }, 150_000);

  it('mid-restore (restic dump): FAILED naming the artifact, the live data and replicas as before, nothing left, not even the killed restic\'s lock; check runs', async () => {
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const pg = s.sim.databases.postgres!;
    await pg.query(`create table after_backup (x int); insert into after_backup values (42)`, 'gitea');
    await writeFile(path.join(s.sim.pvcDir('gitea', 'gitea-data'), 'written-after-backup.txt'), 'keep me');
    const replicas = async () => Object.fromEntries((await listWorkloads(client, 'gitea')).map((w) => [`${w.kind}/${w.name}`, w.replicas]));
    const before = { rows: await pgTableDigests(pg, 'gitea'), files: await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED }), replicas: await replicas() };

    const opId = await startOperation(s, `mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: firstBackup });
    await killResticAfter(['dump', '/gitea/pvc-gitea-data.tar'], 'wchar', 4 << 20);
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/^pvc:gitea-data: .*restic dump failed \(was killed\)/);

    expect({ rows: await pgTableDigests(pg, 'gitea'), files: await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED }), replicas: await replicas() }).toEqual(before);
    expect((await pg.query(`select datname from pg_database where datname like 'gitea_wb%'`)).trim(), 'no side database').toBe('');
    expect(Object.keys(await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'))).filter((k) => k.startsWith('.wild-backup')), 'no side directory').toEqual([]);
    expect(await listPods(client, 'gitea', `${HELPER_LABEL}=true`), 'no helper pod').toEqual([]);
    expect((await listPods(client, 'gitea')).some((p) => p.ready), 'the app runs again').toBe(true);
    await expectNoProcessesLeft();

    // The killed dump's lock was removed as stale before the restore failed; check runs.
    expect(await locks(), 'the killed restic dump left no lock').toEqual([]);
    const check = await s.runOperation(`mutation { checkRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
    expect(check.status, JSON.stringify(check.error)).toBe('SUCCEEDED');
    expect(await locks()).toEqual([]);
  }, 60_000);
});
