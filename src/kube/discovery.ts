// What Wild Backup needs to find in a cluster: pods by selector, PVCs with capacity and phase,
// the running pod that mounts a PVC (and where), and secrets, decoded.
import type { V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import type { CallOptions, KubeClient } from './client.js';
import { KubeNotFoundError } from './errors.js';

export interface PodInfo {
  name: string;
  namespace: string;
  phase: string;
  /** Running, all containers ready, not terminating. */
  ready: boolean;
  terminating: boolean;
  labels: Record<string, string>;
  containers: string[];
}

export function podInfo(p: V1Pod): PodInfo {
  const statuses = p.status?.containerStatuses ?? [];
  const terminating = Boolean(p.metadata?.deletionTimestamp);
  const phase = p.status?.phase ?? 'Unknown';
  return {
    name: p.metadata?.name ?? '',
    namespace: p.metadata?.namespace ?? '',
    phase,
    ready: phase === 'Running' && !terminating && statuses.length > 0 && statuses.every((s) => s.ready),
    terminating,
    labels: p.metadata?.labels ?? {},
    containers: (p.spec?.containers ?? []).map((c) => c.name),
  };
}

/** Pods of a namespace (or all namespaces with `namespace: undefined`) matching a label selector. */
export async function listPods(client: KubeClient, namespace: string | undefined, labelSelector?: string, opts?: CallOptions): Promise<PodInfo[]> {
  const list = namespace === undefined
    ? await client.call((o) => client.core.listPodForAllNamespaces({ labelSelector }, o), opts)
    : await client.call((o) => client.core.listNamespacedPod({ namespace, labelSelector }, o), opts);
  return list.items.map(podInfo);
}

/** The first ready pod matching the selector (e.g. `app=postgres` in `postgres`), or undefined. */
export async function findReadyPod(client: KubeClient, namespace: string, labelSelector: string, opts?: CallOptions): Promise<PodInfo | undefined> {
  const pods = await listPods(client, namespace, labelSelector, opts);
  return pods.filter((p) => p.ready).sort((a, b) => a.name.localeCompare(b.name))[0];
}

export interface PvcInfo {
  name: string;
  namespace: string;
  /** Bound, Pending, Lost */
  phase: string;
  /** Quantity as Kubernetes writes it (`10Gi`): the bound capacity, else the request. */
  capacity?: string;
  capacityBytes?: number;
  storageClass?: string;
  /** ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod */
  accessModes?: string[];
  labels: Record<string, string>;
}

export function pvcInfo(p: V1PersistentVolumeClaim): PvcInfo {
  const capacity = p.status?.capacity?.storage ?? p.spec?.resources?.requests?.storage;
  const bytes = capacity ? parseQuantity(capacity) : undefined;
  return {
    name: p.metadata?.name ?? '',
    namespace: p.metadata?.namespace ?? '',
    phase: p.status?.phase ?? 'Pending',
    ...(capacity ? { capacity } : {}),
    ...(bytes !== undefined ? { capacityBytes: bytes } : {}),
    ...(p.spec?.storageClassName ? { storageClass: p.spec.storageClassName } : {}),
    ...(p.spec?.accessModes?.length ? { accessModes: p.spec.accessModes } : {}),
    labels: p.metadata?.labels ?? {},
  };
}

export async function listPvcs(client: KubeClient, namespace: string, opts?: CallOptions): Promise<PvcInfo[]> {
  const list = await client.call((o) => client.core.listNamespacedPersistentVolumeClaim({ namespace }, o), opts);
  return list.items.map(pvcInfo).sort((a, b) => a.name.localeCompare(b.name));
}

export interface PvcMount {
  pod: string;
  container: string;
  /** Where the volume appears in the container (read from the API, never assumed). */
  mountPath: string;
  /** Set when only a sub-directory of the volume is mounted there. */
  subPath?: string;
  readOnly: boolean;
}

/**
 * Where a PVC is mounted in the given pods: a ready pod first, and within it a mount of the whole
 * volume rather than a subPath mount (which shows only part of the volume).
 */
export function mountOf(pods: V1Pod[], pvc: string): PvcMount | undefined {
  const candidates: Array<PvcMount & { rank: number }> = [];
  for (const p of pods) {
    const info = podInfo(p);
    if (info.terminating || info.phase !== 'Running') continue;
    const vols = (p.spec?.volumes ?? []).filter((v) => v.persistentVolumeClaim?.claimName === pvc).map((v) => v.name);
    if (!vols.length) continue;
    for (const c of p.spec?.containers ?? []) {
      for (const m of c.volumeMounts ?? []) {
        if (!vols.includes(m.name)) continue;
        const rank = (info.ready ? 0 : 2) + (m.subPath || m.subPathExpr ? 1 : 0) + (m.readOnly ? 0.5 : 0);
        candidates.push({ pod: info.name, container: c.name, mountPath: m.mountPath, ...(m.subPath ? { subPath: m.subPath } : {}), readOnly: Boolean(m.readOnly), rank });
      }
    }
  }
  candidates.sort((a, b) => a.rank - b.rank || a.pod.localeCompare(b.pod) || a.mountPath.localeCompare(b.mountPath));
  const best = candidates[0];
  if (!best) return undefined;
  const { rank: _rank, ...mount } = best;
  return mount;
}

export async function findPvcMount(client: KubeClient, namespace: string, pvc: string, opts?: CallOptions): Promise<PvcMount | undefined> {
  const pods = await client.call((o) => client.core.listNamespacedPod({ namespace }, o), opts);
  return mountOf(pods.items, pvc);
}

export interface VolumeInfo extends PvcInfo {
  /** The running pod that mounts it, if any (else a helper pod is needed to reach the data). */
  mount?: PvcMount;
}

/** The PVCs of a namespace (an app's volumes), each with the pod and path where it is mounted. */
export async function listVolumes(client: KubeClient, namespace: string, opts?: CallOptions): Promise<VolumeInfo[]> {
  const [pvcs, pods] = await Promise.all([
    listPvcs(client, namespace, opts),
    client.call((o) => client.core.listNamespacedPod({ namespace }, o), opts),
  ]);
  return pvcs.map((p) => {
    const mount = mountOf(pods.items, p.name);
    return { ...p, ...(mount ? { mount } : {}) };
  });
}

/** A secret's data, decoded to UTF-8 strings. */
export async function readSecret(client: KubeClient, namespace: string, name: string, opts?: CallOptions): Promise<Record<string, string>> {
  const s = await client.call((o) => client.core.readNamespacedSecret({ namespace, name }, o), opts, { kind: 'secret', namespace, name });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries(s.stringData ?? {})) out[k] ??= v;
  return out;
}

/** One key of a secret; KubeNotFoundError names the key when it is missing. */
export async function readSecretKey(client: KubeClient, namespace: string, name: string, key: string, opts?: CallOptions): Promise<string> {
  const data = await readSecret(client, namespace, name, opts);
  const v = data[key];
  if (v === undefined) throw new KubeNotFoundError(`key ${key} of secret`, namespace, name);
  return v;
}

export async function listNamespaces(client: KubeClient, opts?: CallOptions): Promise<string[]> {
  const list = await client.call((o) => client.core.listNamespace({}, o), opts);
  return list.items.map((n) => n.metadata?.name ?? '').filter(Boolean).sort();
}

/** Whether the namespace exists: an app's is gone when it is not deployed (listing its PVCs then answers an empty list, not an error). */
export async function namespaceExists(client: KubeClient, name: string, opts?: CallOptions): Promise<boolean> {
  return (await listNamespaces(client, opts)).includes(name);
}

const UNITS: Record<string, number> = {
  '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60, m: 1e-3,
};

/** Bytes of a Kubernetes quantity (`10Gi`, `500M`, `1e3`), or undefined if it does not parse. */
export function parseQuantity(q: string): number | undefined {
  const m = q.trim().match(/^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$/);
  if (!m) return undefined;
  const unit = UNITS[m[2]!];
  if (unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}
