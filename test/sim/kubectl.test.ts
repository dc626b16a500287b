// kubectl (v1.32, an independent client) proves that the sim speaks the Kubernetes API:
// discovery and lists, auth, exec with stdin over WebSocket, exit codes, scaling.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimKube, type SimKube } from '../../src/sim/index.js';
import type { KubeObject } from '../../src/sim/index.js';

const kubectlFound = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!kubectlFound) {
  const msg = '\n\n*** kubectl NOT FOUND on the PATH: the kubectl conformance tests of the simulated cluster are SKIPPED. Install kubectl to run them. ***\n\n';
  process.stderr.write(msg);
  if (process.env.WILD_BACKUP_REQUIRE_KUBECTL === '1') throw new Error(msg);
}

function demoObjects(ns: string): KubeObject[] {
  const labels = { app: ns, managedBy: 'kustomize', partOf: 'wild-cloud' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } },
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `${ns}-data`, namespace: ns, labels }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: ns, namespace: ns, labels },
      spec: {
        replicas: 1, selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'data', mountPath: '/data' }] }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `${ns}-data` } }] } },
      },
    },
  ];
}

describe.skipIf(!kubectlFound)('the simulated cluster, through kubectl', () => {
  let sim: SimKube;
  let cacheDir: string;
  // The sim runs in this process: kubectl must run asynchronously (spawnSync would block the server).
  const kubectl = (args: string[], input?: string): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn('kubectl', ['--kubeconfig', sim.kubeconfigPath, '--cache-dir', cacheDir, '--request-timeout', '20s', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
      child.stdin.end(input ?? '');
    });
  const podOf = async (ns: string): Promise<string> => {
    const r = await kubectl(['get', 'pods', '-n', ns, '-o', 'jsonpath={.items[0].metadata.name}']);
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    cacheDir = mkdtempSync(path.join(os.tmpdir(), 'kubectl-cache-'));
    sim = await startSimKube();
    sim.apply([...demoObjects('gitea'), ...demoObjects('ghost')]);
    await sim.waitForPods();
  });

  afterAll(async () => {
    await sim?.stop();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('answers 401 with a Status body without the bearer token', async () => {
    const ca = Buffer.from(/certificate-authority-data: (\S+)/.exec(readFileSync(sim.kubeconfigPath, 'utf8'))![1]!, 'base64');
    const res = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      https.get(`${sim.url}/api/v1/pods`, { ca }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => { body += c.toString(); });
        r.on('end', () => resolve({ code: r.statusCode ?? 0, body }));
      }).on('error', reject);
    });
    expect(res.code).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
  });

  it('lists pods and PVCs of every namespace (kubectl get pods,pvc -A -o json)', async () => {
    const r = await kubectl(['get', 'pods,pvc', '-A', '-o', 'json']);
    expect(r.status, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { items: KubeObject[] };
    const pods = list.items.filter((i) => i.kind === 'Pod');
    const pvcs = list.items.filter((i) => i.kind === 'PersistentVolumeClaim');
    expect(pods.map((p) => p.metadata.namespace).sort()).toEqual(['ghost', 'gitea']);
    expect(pods.every((p) => p.status?.phase === 'Running')).toBe(true);
    expect(pvcs.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort()).toEqual(['ghost/ghost-data', 'gitea/gitea-data']);
    expect(pvcs[0]!.status).toMatchObject({ phase: 'Bound', capacity: { storage: '1Gi' } });
    const sel = await kubectl(['get', 'pods', '-A', '-l', 'app=gitea,partOf=wild-cloud', '-o', 'name']);
    expect(sel.stdout.trim()).toMatch(/^pod\/gitea-/);
  });

  it('answers NotFound as a real API server does', async () => {
    const r = await kubectl(['get', 'pod', 'nope', '-n', 'gitea']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('Error from server (NotFound): pods "nope" not found');
  });

  it('execs with stdin, stdout, stderr and the exit code (kubectl exec -i)', async () => {
    const pod = await podOf('gitea');
    const r = await kubectl(['exec', '-i', '-n', 'gitea', pod, '--', 'sh', '-c', 'tr a-z A-Z; echo "to stderr" >&2; exit 7'], 'hello sim\n');
    expect(r.stdout).toBe('HELLO SIM\n');
    expect(r.stderr).toContain('to stderr');
    expect(r.status).toBe(7);
  });

  it('pipes 200 MiB through kubectl exec -i into a file in the PVC and back, byte-identical', async () => {
    const pod = await podOf('gitea');
    const spec = JSON.parse((await kubectl(['get', 'pod', '-n', 'gitea', pod, '-o', 'json'])).stdout) as { spec: { containers: Array<{ volumeMounts: Array<{ mountPath: string }> }> } };
    const mount = spec.spec.containers[0]!.volumeMounts[0]!.mountPath;
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'kubectl-big-'));
    try {
      const src = path.join(tmp, 'in.bin');
      const back = path.join(tmp, 'out.bin');
      const want = createHash('sha256');
      const ws = createWriteStream(src);
      for (let i = 0; i < 200; i++) {
        const chunk = randomBytes(1 << 20);
        want.update(chunk);
        if (!ws.write(chunk)) await new Promise<void>((r) => ws.once('drain', () => r()));
      }
      await new Promise<void>((r) => ws.end(() => r()));
      const base = ['--kubeconfig', sim.kubeconfigPath, '--cache-dir', cacheDir, 'exec', '-n', 'gitea', pod];
      const up = spawn('kubectl', [...base, '-i', '--', 'sh', '-c', 'cat > "$1"', 'sh', `${mount}/big.bin`], { stdio: ['pipe', 'ignore', 'pipe'] });
      const upDone = new Promise<number | null>((r) => up.on('close', r));
      await pipeline(createReadStream(src), up.stdin);
      expect(await upDone).toBe(0);
      const down = spawn('kubectl', [...base, '--', 'cat', `${mount}/big.bin`], { stdio: ['ignore', 'pipe', 'pipe'] });
      const downDone = new Promise<number | null>((r) => down.on('close', r));
      await pipeline(down.stdout, createWriteStream(back));
      expect(await downDone).toBe(0);
      const got = createHash('sha256');
      await pipeline(createReadStream(back), got);
      expect(got.digest('hex')).toBe(want.digest('hex'));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('scales a Deployment to 0 (exec then fails) and back', async () => {
    const pod = await podOf('ghost');
    expect((await kubectl(['scale', '-n', 'ghost', 'deployment/ghost', '--replicas=0'])).status).toBe(0);
    await waitFor(async () => (await kubectl(['get', 'pods', '-n', 'ghost', '-o', 'name'])).stdout.trim() === '');
    const r = await kubectl(['exec', '-n', 'ghost', pod, '--', 'true']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('not found');
    expect((await kubectl(['scale', '-n', 'ghost', 'deployment/ghost', '--replicas=1'])).status).toBe(0);
    await waitFor(async () => (await kubectl(['get', 'pods', '-n', 'ghost', '-o', 'jsonpath={.items[*].status.phase}'])).stdout === 'Running');
    expect((await kubectl(['exec', '-n', 'ghost', await podOf('ghost'), '--', 'true'])).status).toBe(0);
    const d = JSON.parse((await kubectl(['get', 'deployment', '-n', 'ghost', 'ghost', '-o', 'json'])).stdout) as KubeObject;
    expect(d.status).toMatchObject({ replicas: 1, readyReplicas: 1 });
  });

  it('patches as the API server does: set env merges the container by name, a JSON patch appends, the pods roll to the new template', async () => {
    const env = async (pod: string) => (await kubectl(['exec', '-n', 'ghost', pod, '--', 'sh', '-c', 'echo "$GREETING/$COLOUR"'])).stdout.trim();
    const before = await podOf('ghost');
    // kubectl set env sends a strategic merge patch with `$setElementOrder/containers`: merged by
    // name, the container keeps its image and mounts (a plain merge patch replaced the list).
    const set = await kubectl(['set', 'env', '-n', 'ghost', 'deployment/ghost', 'GREETING=hello']);
    expect(set.status, set.stderr).toBe(0);
    await waitFor(async () => { const p = await podOf('ghost'); return p !== '' && p !== before && (await env(p)) === 'hello/'; });
    const patched = await kubectl(['patch', '-n', 'ghost', 'deployment/ghost', '--type=json', '-p', '[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"COLOUR","value":"green"}}]']);
    expect(patched.status, patched.stderr).toBe(0);
    await waitFor(async () => { const p = await podOf('ghost'); return p !== '' && (await env(p)) === 'hello/green'; });
    const d = JSON.parse((await kubectl(['get', 'deployment', '-n', 'ghost', 'ghost', '-o', 'json'])).stdout) as { spec: { template: { spec: Record<string, unknown> & { containers: Array<{ name: string; image: string; env: unknown[]; volumeMounts: unknown[] }> } } } };
    const c = d.spec.template.spec.containers;
    expect(c.map((x) => [x.name, x.image, x.volumeMounts.length])).toEqual([['app', 'busybox', 1]]);
    expect(c[0]!.env).toEqual([{ name: 'GREETING', value: 'hello' }, { name: 'COLOUR', value: 'green' }]);
    expect(Object.keys(d.spec.template.spec).filter((k) => k.startsWith('$')), 'no patch directive stored').toEqual([]);
    expect((await kubectl(['get', 'pods', '-n', 'ghost', '-o', 'name'])).stdout.trim().split('\n')).toHaveLength(1);
    // A patch that would leave the template invalid is refused, and nothing changes.
    const bad = await kubectl(['patch', '-n', 'ghost', 'deployment/ghost', '--type=merge', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"app2"}]}}}}']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('name and image');
    expect((await kubectl(['set', 'env', '-n', 'ghost', 'deployment/ghost', 'COLOUR-'])).status).toBe(0);
    await waitFor(async () => { const p = await podOf('ghost'); return p !== '' && (await env(p)) === 'hello/'; });
  });

  it('leaves no exec process running', () => {
    expect(sim.runtime.activeExecs()).toBe(0);
  });
});

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
