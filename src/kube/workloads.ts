// Deployments and StatefulSets of a namespace: list them with their replicas, scale them, and wait
// until their pods are gone (scaled to 0) or ready.
import type { V1Deployment, V1LabelSelector, V1StatefulSet } from '@kubernetes/client-node';
import type { CallOptions, KubeClient } from './client.js';
import { listPods } from './discovery.js';
import { KubeAbortedError, KubeTimeoutError } from './errors.js';

export type WorkloadKind = 'Deployment' | 'StatefulSet';

export interface WorkloadInfo {
  kind: WorkloadKind;
  name: string;
  namespace: string;
  /** spec.replicas */
  replicas: number;
  readyReplicas: number;
  /** The pods' label selector as a string (`app=gitea,component=web`). */
  selector: string;
  labels: Record<string, string>;
}

export function selectorString(sel: V1LabelSelector | undefined): string {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const op = e.operator.toLowerCase();
    if (op === 'in' || op === 'notin') parts.push(`${e.key} ${op} (${(e.values ?? []).join(',')})`);
    else if (op === 'exists') parts.push(e.key);
    else if (op === 'doesnotexist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

function info(kind: WorkloadKind, w: V1Deployment | V1StatefulSet): WorkloadInfo {
  return {
    kind,
    name: w.metadata?.name ?? '',
    namespace: w.metadata?.namespace ?? '',
    replicas: w.spec?.replicas ?? 1,
    readyReplicas: w.status?.readyReplicas ?? 0,
    selector: selectorString(w.spec?.selector),
    labels: w.metadata?.labels ?? {},
  };
}

export async function listWorkloads(client: KubeClient, namespace: string, opts?: CallOptions): Promise<WorkloadInfo[]> {
  const [deps, sts] = await Promise.all([
    client.call((o) => client.apps.listNamespacedDeployment({ namespace }, o), opts),
    client.call((o) => client.apps.listNamespacedStatefulSet({ namespace }, o), opts),
  ]);
  return [...deps.items.map((d) => info('Deployment', d)), ...sts.items.map((s) => info('StatefulSet', s))]
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}

/** Sets spec.replicas through the scale subresource; returns the replicas it had before. */
export async function scaleWorkload(client: KubeClient, w: Pick<WorkloadInfo, 'kind' | 'name' | 'namespace'>, replicas: number, opts?: CallOptions): Promise<number> {
  const what = { kind: w.kind, namespace: w.namespace, name: w.name };
  const { name, namespace } = w;
  if (w.kind === 'Deployment') {
    const cur = await client.call((o) => client.apps.readNamespacedDeploymentScale({ name, namespace }, o), opts, what);
    const body = { ...cur, spec: { replicas } };
    await client.call((o) => client.apps.replaceNamespacedDeploymentScale({ name, namespace, body }, o), opts, what);
    return cur.spec?.replicas ?? 0;
  }
  const cur = await client.call((o) => client.apps.readNamespacedStatefulSetScale({ name, namespace }, o), opts, what);
  const body = { ...cur, spec: { replicas } };
  await client.call((o) => client.apps.replaceNamespacedStatefulSetScale({ name, namespace, body }, o), opts, what);
  return cur.spec?.replicas ?? 0;
}

export interface WaitOptions extends CallOptions {
  /** Overall limit in ms (default 5 min). */
  waitTimeoutMs?: number;
  /** Poll interval in ms (default 250). */
  intervalMs?: number;
}

/**
 * Waits until the workload's pods match `replicas`: none left at all (terminating ones included)
 * for 0, else exactly that many ready and none terminating.
 */
export async function waitForReplicas(client: KubeClient, w: Pick<WorkloadInfo, 'kind' | 'name' | 'namespace' | 'selector'>, replicas: number, opts: WaitOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.waitTimeoutMs ?? 300_000);
  let last = '';
  for (;;) {
    if (opts.signal?.aborted) throw new KubeAbortedError(`waiting for ${w.kind} ${w.namespace}/${w.name}`, opts.signal.reason);
    const pods = await listPods(client, w.namespace, w.selector, opts);
    const ready = pods.filter((p) => p.ready).length;
    const terminating = pods.filter((p) => p.terminating).length;
    if (replicas === 0 ? pods.length === 0 : ready === replicas && terminating === 0 && pods.length === replicas) return;
    last = `${pods.length} pods, ${ready} ready, ${terminating} terminating`;
    if (Date.now() > deadline) throw new KubeTimeoutError(`${w.kind} ${w.namespace}/${w.name} did not reach ${replicas} ready replicas in time (${last})`);
    await sleep(opts.intervalMs ?? 250, opts.signal);
  }
}

/** Scales and waits; returns the previous replica count (to scale back to afterwards). */
export async function scaleAndWait(client: KubeClient, w: Pick<WorkloadInfo, 'kind' | 'name' | 'namespace' | 'selector'>, replicas: number, opts: WaitOptions = {}): Promise<number> {
  const before = await scaleWorkload(client, w, replicas, opts);
  await waitForReplicas(client, w, replicas, opts);
  return before;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done, { once: true });
  });
}
