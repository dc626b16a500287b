// Discovery, scaling and helper pods through the access layer against the simulated cluster.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KubeAbortedError, KubeNotFoundError, PodNotFoundError, clusterVersion, execStream, execText, findReadyPod, kubeClientFor,
  listPods, listVolumes, listWorkloads, readSecret, readSecretKey, scaleAndWait, withHelperPod, parseQuantity, type KubeClient,
} from '../../src/kube/index.js';
import { startSimKube, type SimKube } from '../../src/sim/index.js';
import { appObjects } from './objects.js';

describe('discovery, scaling and helper pods', () => {
  let sim: SimKube;
  let client: KubeClient;

  beforeAll(async () => {
    sim = await startSimKube();
    // A second mount of the same PVC by subPath: discovery must prefer the whole-volume mount.
    sim.apply(appObjects('immich', { extraMounts: [{ name: 'data', mountPath: '/photos', subPath: 'library' }] }));
    sim.apply(appObjects('website', { replicas: 0 }));
    await sim.waitForPods();
    client = kubeClientFor(sim.kubeconfigPath);
  });
  afterAll(async () => { await sim?.stop(); });

  it('reports the cluster version, and an unreachable cluster without throwing', async () => {
    expect(await clusterVersion(client)).toEqual({ reachable: true, version: 'v1.32.3+wildsim' });
    const other = await startSimKube();
    const gone = kubeClientFor(other.kubeconfigPath);
    await other.stop();
    const t0 = Date.now();
    const st = await clusterVersion(gone, { timeoutMs: 2000 });
    expect(st.reachable).toBe(false);
    expect(st.error).toMatch(/unreachable/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('lists volumes with capacity, phase, mounting pod and mount path', async () => {
    const vols = await listVolumes(client, 'immich');
    expect(vols).toHaveLength(1);
    const v = vols[0]!;
    expect(v).toMatchObject({ name: 'immich-data', namespace: 'immich', phase: 'Bound', capacity: '2Gi', capacityBytes: 2 * 2 ** 30 });
    expect(v.mount?.pod).toMatch(/^immich-/);
    expect(v.mount?.subPath).toBeUndefined();
    expect(v.mount?.mountPath).toBe(sim.runtime.pvcDir('immich', 'immich-data'));
    // The mount path is where the data is: what the pod sees there is the volume.
    writeFileSync(path.join(sim.runtime.pvcDir('immich', 'immich-data'), 'photo.jpg'), 'jpeg');
    const ls = await execText(client, { namespace: 'immich', pod: v.mount!.pod, command: ['ls', v.mount!.mountPath] });
    expect(ls.stdout.split('\n')).toContain('photo.jpg');
  });

  it('lists a volume that no running pod mounts without a mount', async () => {
    const vols = await listVolumes(client, 'website');
    expect(vols.map((v) => [v.name, v.mount])).toEqual([['website-data', undefined]]);
  });

  it('reads secrets decoded, and names what is missing', async () => {
    expect(await readSecret(client, 'immich', 'immich-secrets')).toEqual({ dbPassword: 'p@ss w0rd!', apiKey: 'k3y' });
    expect(await readSecretKey(client, 'immich', 'immich-secrets', 'dbPassword')).toBe('p@ss w0rd!');
    await expect(readSecret(client, 'immich', 'nope')).rejects.toBeInstanceOf(KubeNotFoundError);
    await expect(readSecretKey(client, 'immich', 'immich-secrets', 'nokey')).rejects.toThrow(/key nokey/);
  });

  it('lists pods by label selector', async () => {
    expect((await listPods(client, undefined, 'partOf=wild-cloud')).map((p) => p.namespace)).toEqual(['immich']);
    expect(await listPods(client, 'immich', 'app=other')).toEqual([]);
    expect(await listPods(client, 'immich', 'app in (immich, ghost),component=web')).toHaveLength(1);
  });

  it('scales a Deployment to 0 (exec then fails) and back, waiting for pods gone and ready', async () => {
    const [w] = await listWorkloads(client, 'immich');
    expect(w).toMatchObject({ kind: 'Deployment', name: 'immich', replicas: 1, readyReplicas: 1 });
    const pod = (await findReadyPod(client, 'immich', w!.selector))!.name;
    expect(await scaleAndWait(client, w!, 0, { waitTimeoutMs: 10_000 })).toBe(1);
    expect(await listPods(client, 'immich')).toEqual([]);
    await expect(execStream(client, { namespace: 'immich', pod, command: ['true'] })).rejects.toBeInstanceOf(PodNotFoundError);
    expect(await scaleAndWait(client, w!, 1, { waitTimeoutMs: 10_000 })).toBe(0);
    const again = await findReadyPod(client, 'immich', w!.selector);
    expect(again?.name).not.toBe(pod);
  });

  it('runs a helper pod on an unmounted PVC, and deletes it afterwards, on failure too', async () => {
    writeFileSync(path.join(sim.runtime.pvcDir('website', 'website-data'), 'index.html'), '<h1>hi</h1>');
    const out = await withHelperPod(client, { namespace: 'website', pvc: 'website-data' }, async (h) => {
      expect(h.mountPath).toBe(sim.runtime.pvcDir('website', 'website-data'));
      return (await execText(client, { namespace: 'website', pod: h.name, container: h.container, command: ['cat', path.join(h.mountPath, 'index.html')] })).stdout;
    });
    expect(out).toBe('<h1>hi</h1>');
    await expect(withHelperPod(client, { namespace: 'website', pvc: 'website-data' }, async () => { throw new Error('tar failed'); })).rejects.toThrow('tar failed');
    await new Promise((r) => setTimeout(r, 200));
    expect(await listPods(client, 'website')).toEqual([]);
  });

  it('cancels a helper pod that cannot start (missing PVC) and still deletes it', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('user cancelled')), 500);
    await expect(withHelperPod(client, { namespace: 'website', pvc: 'no-such-pvc', signal: ac.signal }, async () => 'never')).rejects.toBeInstanceOf(KubeAbortedError);
    await new Promise((r) => setTimeout(r, 200));
    expect(await listPods(client, 'website')).toEqual([]);
    expect(existsSync(sim.runtime.podDir('website', 'x'))).toBe(false);
  });

  it('parses Kubernetes quantities', () => {
    expect(parseQuantity('10Gi')).toBe(10 * 2 ** 30);
    expect(parseQuantity('500M')).toBe(500e6);
    expect(parseQuantity('1.5Ki')).toBe(1536);
    expect(parseQuantity('x')).toBeUndefined();
  });
});
