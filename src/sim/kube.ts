// A bare simulated cluster: runtime + API server + the kubeconfig that reaches it. The Wild Cloud
// fixture (fixture.ts) builds on this; tests that need only Kubernetes use it directly.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { SimApiServer } from './apiserver.js';
import type { ExecProtocol } from './exec.js';
import type { KubeObject } from './objects.js';
import { resourceByKind } from './resources.js';
import { SimRuntime } from './runtime.js';
import { makeSimTls } from './tls.js';

export interface SimKubeOptions {
  /** Where PVC directories and pod directories live; default a new temp dir, removed by stop(). */
  stateDir?: string;
  /** Bearer token the API server requires; default random. */
  token?: string;
  /** API server port; default a free one. */
  port?: number;
  /** Where to write the kubeconfig; default `<stateDir>/kubeconfig`. */
  kubeconfigPath?: string;
  /** Exec subprotocols offered; default v5 and v4. */
  execProtocols?: readonly ExecProtocol[];
  /** Delay before a created pod runs (default 30 ms). */
  podStartDelayMs?: number;
}

export interface SimKube {
  readonly runtime: SimRuntime;
  readonly api: SimApiServer;
  readonly url: string;
  readonly token: string;
  readonly kubeconfigPath: string;
  readonly stateDir: string;
  /** Creates objects as `kubectl create` would (namespaces first), through the runtime. */
  apply(objects: KubeObject[]): KubeObject[];
  /** Waits until every pod is Running (or the timeout passes, then throws naming the laggards). */
  waitForPods(timeoutMs?: number): Promise<void>;
  /** Stops the API server, every exec and backing process; removes a temp state dir it created. */
  stop(): Promise<void>;
}

export function kubeconfigYaml(server: string, caPem: string, token: string, name = 'wild-sim', namespace = 'default'): string {
  return YAML.stringify({
    apiVersion: 'v1', kind: 'Config', preferences: {},
    clusters: [{ name, cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: `${name}-admin`, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: `${name}-admin`, namespace } }],
    'current-context': name,
  });
}

export async function startSimKube(opts: SimKubeOptions = {}): Promise<SimKube> {
  const ownDir = !opts.stateDir;
  const stateDir = opts.stateDir ?? mkdtempSync(path.join(os.tmpdir(), 'wild-sim-'));
  mkdirSync(stateDir, { recursive: true });
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const runtime = new SimRuntime({ stateDir, podStartDelayMs: opts.podStartDelayMs });
  const tls = makeSimTls(path.join(stateDir, 'pki'));
  const api = new SimApiServer({ runtime, token, tls, port: opts.port, ...(opts.execProtocols ? { execProtocols: opts.execProtocols } : {}) });
  const url = await api.start();
  const kubeconfigPath = opts.kubeconfigPath ?? path.join(stateDir, 'kubeconfig');
  mkdirSync(path.dirname(kubeconfigPath), { recursive: true });
  writeFileSync(kubeconfigPath, kubeconfigYaml(url, tls.caPem, token), { mode: 0o600 });
  chmodSync(kubeconfigPath, 0o600);
  let stopped = false;
  return {
    runtime, api, url, token, kubeconfigPath, stateDir,
    apply(objects) {
      const sorted = [...objects].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
      return sorted.map((o) => {
        const def = resourceByKind(o.kind);
        if (!def) throw new Error(`the sim does not serve ${o.kind}`);
        return runtime.create(def.plural, def.namespaced ? (o.metadata.namespace ?? 'default') : undefined, o);
      });
    },
    async waitForPods(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const notRunning = runtime.store.list('pods').filter((p) => p.status?.phase !== 'Running');
        if (!notRunning.length) return;
        const failed = notRunning.find((p) => p.status?.phase === 'Failed');
        if (failed) throw new Error(`pod ${failed.metadata.namespace}/${failed.metadata.name} failed: ${String(failed.status?.message ?? '')}`);
        if (Date.now() > deadline) throw new Error(`pods not running after ${timeoutMs} ms: ${notRunning.map((p) => `${p.metadata.namespace}/${p.metadata.name} (${String(p.status?.phase)})`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await api.stop();
      await runtime.stop();
      if (ownDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
