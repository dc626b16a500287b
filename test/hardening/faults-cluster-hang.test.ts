// The cluster's API server stops answering: it accepts connections (TCP and TLS complete) and
// never replies, and open exec streams freeze both ways (the sim's setHanging switch). Queries
// answer within a bound with a clear error; a backup fails within a bound (before streaming:
// the cluster is unreachable; mid-stream: STALLED); a restore fails within a bound, and once the
// cluster answers again the live data and replicas are as before and nothing is left behind.
import { randomBytes } from 'node:crypto';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HELPER_LABEL, kubeClientFor, listPods, listWorkloads } from '../../src/kube/index.js';
import { treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';
import { backupsOf, expectBackupLeftNothing, expectNoProcessesLeft, pauseResticOnce, startOperation, whenStreaming } from '../helpers/faults.js';

let s: SimApp;
let firstBackup = '';
const CLUSTER_TIMEOUT_MS = 2_000;
// The stall bound once an artifact is under way (restic's start-up is under the start bound,
// which keeps its default): room for a small artifact's final writes on a loaded CI machine.
const STALL_MS = 15_000;
const backupWebsite = `mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`;
const hang = (on: boolean) => s.sim.kube.api.setHanging(on);
const elapsedSince = (t: number) => Date.now() - t;

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] }, { clusterTimeoutMs: CLUSTER_TIMEOUT_MS, stallTimeoutMs: STALL_MS });
  s.app.services.restores.stallTimeoutMs = STALL_MS;
  await writeFile(path.join(s.sim.pvcDir('website', 'website-content'), 'big.bin'), randomBytes(32 << 20));
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
  const first = await s.runOperation(backupWebsite);
  expect(first.status, JSON.stringify(first.error)).toBe('SUCCEEDED');
  firstBackup = first.backupId!;
}, 120_000);
afterEach(() => { hang(false); });
afterAll(async () => { await s?.close(); });

async function expectClusterAsBefore(files: Record<string, string>, replicas: Record<string, number>): Promise<void> {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  expect(Object.fromEntries((await listWorkloads(client, 'website')).map((w) => [`${w.kind}/${w.name}`, w.replicas]))).toEqual(replicas);
  expect(await treeDigest(s.sim.pvcDir('website', 'website-content'))).toEqual(files);
  expect(await listPods(client, 'website', `${HELPER_LABEL}=true`), 'no helper pod').toEqual([]);
  await expect.poll(async () => (await listPods(client, 'website')).some((p) => p.ready), { timeout: 20_000 }).toBe(true);
  await expectNoProcessesLeft();
}

describe('the cluster API stops answering', () => {
  it('queries answer within a bound: Instance.cluster says unreachable, App.volumes fails with a clear error', async () => {
    const q = `{ instance(name: "test") { cluster { reachable error } app(name: "website") { name volumes { name } } } }`;
    const ok = await s.gql<{ instance: { app: { volumes: unknown[] } } }>(q);
    expect(ok.data!.instance.app.volumes).toHaveLength(1); // the cluster's status is now cached as reachable
    hang(true);
    let t = Date.now();
    // App.volumes asks the cluster (its status says reachable a moment ago) and gets no answer.
    const vols = await s.gql<{ instance: { app: { volumes: unknown[] | null } | null } }>(`{ instance(name: "test") { app(name: "website") { volumes { name } } } }`);
    expect(elapsedSince(t)).toBeLessThan(CLUSTER_TIMEOUT_MS + 3_000);
    expect(vols.errors?.[0]?.message).toMatch(/^cluster at https:\/\/127\.0\.0\.1:\d+ is unreachable: no answer within 2000 ms/);
    await new Promise((r) => setTimeout(r, 5_100)); // the cached status expires
    t = Date.now();
    const res = await s.gql<{ instance: { cluster: { reachable: boolean; error: string }; app: { volumes: unknown[] } } }>(q);
    expect(elapsedSince(t)).toBeLessThan(CLUSTER_TIMEOUT_MS + 3_000);
    expect(res.errors).toBeUndefined();
    expect(res.data!.instance.cluster).toEqual({ reachable: false, error: expect.stringMatching(/unreachable: no answer within/) });
    expect(res.data!.instance.app.volumes).toEqual([]);
  }, 30_000);

  it('a backup started while it hangs fails within a bound, naming the cluster', async () => {
    hang(true);
    const t = Date.now();
    const rec = await s.app.services.engine.waitFor(await startOperation(s, backupWebsite));
    expect(elapsedSince(t)).toBeLessThan(CLUSTER_TIMEOUT_MS + 5_000);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('CLUSTER_UNREACHABLE');
    expect(rec.error?.message).toMatch(/cluster at .* is unreachable: no answer within/);
    hang(false);
    expect((await backupsOf(s, 'website')).map((b) => b.backupId)).toEqual([firstBackup]);
    await expectNoProcessesLeft();
  }, 30_000);

  it('a backup whose exec stream freezes mid-stream fails STALLED within a bound, nothing left', async () => {
    const opId = await startOperation(s, backupWebsite);
    // restic held after its first MiB, so that the hang lands mid-stream on any machine.
    const restic = await pauseResticOnce(['backup', 'website/pvc-website-content.tar'], 'rchar', 1 << 20);
    await whenStreaming(s, opId, 'pvc:website-content', 256 << 10);
    hang(true);
    restic.resume();
    const t = Date.now();
    const rec = await s.app.services.engine.waitFor(opId);
    // The stall, then the clean-up (restic interrupted, the written snapshots forgotten): under CI load
    // the clean-up alone has taken 12 s.
    expect(elapsedSince(t)).toBeLessThan(STALL_MS + 25_000);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('STALLED');
    expect(rec.error?.message).toMatch(new RegExp(`^pvc:website-content: no progress for ${STALL_MS / 1000} s`));
    hang(false);
    await expectBackupLeftNothing(s, rec, 'website');
  }, 90_000);

  it('a restore started while it hangs fails within a bound and changes nothing', async () => {
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const replicas = Object.fromEntries((await listWorkloads(client, 'website')).map((w) => [`${w.kind}/${w.name}`, w.replicas]));
    const files = await treeDigest(s.sim.pvcDir('website', 'website-content'));
    hang(true);
    const t = Date.now();
    const rec = await s.app.services.engine.waitFor(await startOperation(s, `mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`, { id: firstBackup }));
    expect(elapsedSince(t)).toBeLessThan(CLUSTER_TIMEOUT_MS + 5_000);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/cluster at .* is unreachable/);
    hang(false);
    await expectClusterAsBefore(files, replicas);
  }, 30_000);

  // Files the same as the live ones are linked, not streamed into the pod: the pod then checks
  // them after the stream, and a cluster that stops answering then must fail the restore too.
  it.each([
    ['its files written into the pod', true],
    ['its files linked to the live ones', false],
  ])('a restore whose stream freezes mid-way (%s) fails STALLED; when the cluster answers again the data and replicas are back', async (_how, touched) => {
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const replicas = Object.fromEntries((await listWorkloads(client, 'website')).map((w) => [`${w.kind}/${w.name}`, w.replicas]));
    const pvc = s.sim.pvcDir('website', 'website-content');
    // Another mtime: no file is the backup's, so every one streams into the pod.
    if (touched) for (const f of await readdir(pvc, { recursive: true })) await utimes(path.join(pvc, f), new Date(), new Date());
    await writeFile(path.join(pvc, 'written-after-backup.txt'), 'keep me');
    const files = await treeDigest(s.sim.pvcDir('website', 'website-content'));
    const opId = await startOperation(s, `mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: firstBackup });
    // restic dump held after its first MiB, so that the hang lands mid-stream on any machine.
    const dump = await pauseResticOnce(['dump', '/website/pvc-website-content.tar'], 'wchar', 1 << 20);
    await whenStreaming(s, opId, 'restoring pvc:website-content', 256 << 10);
    hang(true);
    dump.resume();
    // Past the stall bound, the cluster comes back; the restore must have given up by then.
    await new Promise((r) => setTimeout(r, STALL_MS + 3_000));
    hang(false);
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('STALLED');
    expect(rec.error?.message).toMatch(new RegExp(`^pvc:website-content: no progress for ${STALL_MS / 1000} s`));
    await expectClusterAsBefore(files, replicas);
  }, 90_000);
});
