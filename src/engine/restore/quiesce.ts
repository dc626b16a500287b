// Quiescing an app for a restore: its Deployments and StatefulSets scaled to 0 and their pods
// gone before any data is swapped; scaled back to what they were afterwards, whatever happened.
import { listWorkloads, scaleAndWait, type KubeClient, type WorkloadInfo } from '../../kube/index.js';

export type ReplicaMap = Record<string, number>; // "Deployment/name" -> replicas

export async function quiesce(client: KubeClient, namespace: string, onSaved: (replicas: ReplicaMap) => Promise<void>, signal?: AbortSignal): Promise<ReplicaMap> {
  const workloads = await listWorkloads(client, namespace, { signal, timeoutMs: 30_000 });
  const replicas: ReplicaMap = Object.fromEntries(workloads.map((w) => [`${w.kind}/${w.name}`, w.replicas]));
  // Recorded before anything changes, so a crash in between can still put them back.
  await onSaved(replicas);
  for (const w of workloads) if (w.replicas > 0) await scaleAndWait(client, w, 0, { signal, waitTimeoutMs: 180_000 });
  return replicas;
}

export async function resume(client: KubeClient, namespace: string, replicas: ReplicaMap, log: (l: string) => void, signal?: AbortSignal): Promise<void> {
  if (Object.keys(replicas).length === 0) return; // nothing was recorded, so nothing was scaled
  const workloads = await listWorkloads(client, namespace, { signal, timeoutMs: 30_000 });
  for (const w of workloads) {
    const want = replicas[`${w.kind}/${w.name}`];
    if (want === undefined || want === w.replicas) continue;
    await scaleAndWait(client, w as WorkloadInfo, want, { signal, waitTimeoutMs: 180_000 });
    log(`scaled ${w.kind} ${namespace}/${w.name} back to ${want}`);
  }
}
