// An app whose image has no tar (a distroless image): its running pod cannot tar its volume, so a
// helper pod on the app's node reads it, while the app keeps running; a restore's free-space check
// in that pod (df) is left to the helper pod that restores. A ReadWriteOncePod volume,
// which no other pod can mount while the app runs, fails at once, saying to stop the app.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ResticRepository } from '../../src/engine/restic/index.js';
import { HELPER_LABEL, kubeClientFor, listPods } from '../../src/kube/index.js';
import type { KubeObject } from '../../src/sim/index.js';
import { treeDigest, untar } from '../helpers/compare.js';
import { OP_FIELDS, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let noTar = '';

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
  // The image's PATH holds a shell and cat, no tar and no du.
  noTar = await mkdtemp(path.join(tmpdir(), 'wild-distroless-'));
  for (const p of ['sh', 'cat', 'sleep']) await symlink(`/bin/${p}`, path.join(noTar, p));
  const rt = s.sim.kube.runtime;
  const d = structuredClone(rt.store.getOrThrow('deployments', 'website', 'website'));
  const spec = d.spec as { template: { spec: { containers: Array<{ env?: Array<{ name: string; value: string }> }> } } };
  spec.template.spec.containers[0]!.env = [{ name: 'PATH', value: noTar }];
  rt.replace('deployments', 'website', 'website', d);
}, 180_000);
afterAll(async () => {
  await s?.close();
  if (noTar) await rm(noTar, { recursive: true, force: true });
});

function appPods(): KubeObject[] {
  return s.sim.kube.runtime.store.list('pods', 'website').filter((p) => !p.metadata.deletionTimestamp && p.metadata.labels?.[HELPER_LABEL] !== 'true');
}

it('is read by a helper pod on its node while the app runs, with its files exact', async () => {
  const pvc = s.sim.pvcDir('website', 'website-content');
  await mkdir(path.join(pvc, 'assets'), { recursive: true });
  await writeFile(path.join(pvc, 'assets', 'photo.bin'), Buffer.alloc(2 << 20, 9));
  // The pod of the new template runs (the old one rolled away).
  await expect.poll(() => appPods().map((p) => [(p.spec as { containers: Array<{ env?: unknown[] }> }).containers[0]!.env?.length ?? 0, p.status?.phase]), { timeout: 20_000 }).toEqual([[1, 'Running']]);
  const [pod] = appPods();
  const exec = await s.sim.kube.runtime.execTarget('website', pod!.metadata.name);
  expect(exec.env.PATH).toBe(noTar);

  const done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`);
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  // The app was never stopped, and no helper pod is left.
  expect(appPods().map((p) => p.metadata.name)).toEqual([pod!.metadata.name]);
  const client = kubeClientFor(s.sim.kubeconfigPath);
  await expect.poll(async () => (await listPods(client, 'website', `${HELPER_LABEL}=true`)).length, { timeout: 20_000 }).toBe(0);

  const svc = s.app.services;
  const view = await svc.backups.get(await svc.store.requireInstance('test'), done.backupId!);
  const art = view!.manifest!.artifacts.find((a) => a.kind === 'pvc')!;
  expect(art.meta.helperBecause).toBe(`tar cannot run in website/${pod!.metadata.name} (its image has none)`);
  expect(String(art.meta.pod)).toMatch(/^wild-backup-helper-/);
  // The operation's log says so, and its estimate came from du in that helper pod, not from the
  // claim's capacity (1 GiB).
  const log = await svc.engine.logTail(done.id, 200);
  expect(log.join('\n')).toContain(`pvc:website-content: tar cannot run in website/${pod!.metadata.name} (its image has none): read by the helper pod ${String(art.meta.pod)} on the app's node, the app still running`);
  const estimate = Number(/pvc:website-content: about (\d+) bytes/.exec(log.join('\n'))?.[1]);
  expect(estimate, log.join('\n')).toBeGreaterThan(2 << 20);
  expect(estimate).toBeLessThan(1 << 29);

  const repo: ResticRepository = await svc.repositories.open(await svc.store.requireInstance('test'));
  const res = await s.gql<{ instance: { app: { latestBackup: { artifacts: Array<{ kind: string; snapshot: { snapshotId: string; paths: string[] } }> } } } }>(
    `{ instance(name: "test") { app(name: "website") { latestBackup { artifacts { kind snapshot { snapshotId paths } } } } } }`);
  const snap = res.data!.instance.app.latestBackup.artifacts.find((a) => a.kind === 'pvc')!.snapshot;
  const out = await mkdtemp(path.join(tmpdir(), 'wild-distroless-out-'));
  try {
    await untar(repo.dump(snap.snapshotId, snap.paths[0]!), out);
    expect(await treeDigest(out)).toEqual(await treeDigest(pvc));
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}, 180_000);

it('is restored, its free space checked by the helper pod (the image has no df either), and the app back on its image', async () => {
  const pvc = s.sim.pvcDir('website', 'website-content');
  const before = await treeDigest(pvc);
  const b = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "website") { latestBackup { id } } } }`);
  await writeFile(path.join(pvc, 'assets', 'photo.bin'), 'overwritten');
  const done = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`, { id: b.data!.instance.app.latestBackup.id });
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  expect(await treeDigest(pvc)).toEqual(before);
  await expect.poll(() => appPods().map((p) => p.status?.phase), { timeout: 20_000 }).toEqual(['Running']);
}, 180_000);

it('a ReadWriteOncePod volume fails at once, saying to stop the app, and nothing is left', async () => {
  const rt = s.sim.kube.runtime;
  rt.store.mutate('persistentvolumeclaims', 'website', 'website-content', (o) => { (o.spec as { accessModes: string[] }).accessModes = ['ReadWriteOncePod']; });
  try {
    const done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`);
    expect(done.status).toBe('FAILED');
    expect(done.error?.message).toMatch(/tar cannot run in website\/\S+ \(its image has none\), and volume website-content is ReadWriteOncePod, .*stop the app \(scale it to 0\)/);
    const client = kubeClientFor(s.sim.kubeconfigPath);
    expect((await listPods(client, 'website', `${HELPER_LABEL}=true`)).length).toBe(0);
    const svc = s.app.services;
    expect((await svc.backups.list(await svc.store.requireInstance('test'), { app: 'website' })).filter((b) => b.status !== 'COMPLETE')).toEqual([]);
  } finally {
    rt.store.mutate('persistentvolumeclaims', 'website', 'website-content', (o) => { (o.spec as { accessModes: string[] }).accessModes = ['ReadWriteOnce']; });
  }
}, 120_000);
