// The cluster side of an instance: one Kubernetes client per kubeconfig (rebuilt when the file
// changes), a bounded reachability check, and the app's volumes as the graph shows them.
import { stat } from 'node:fs/promises';
import { clusterVersion, kubeClientFor, listVolumes, namespaceExists, type ClusterStatus, type KubeClient, type VolumeInfo } from '../kube/index.js';
import { NotFoundError } from '../errors.js';
import type { AppInfo, InstanceInfo } from '../wild/store.js';

export interface AppVolume extends VolumeInfo {
  /** false when the app's config excludes it (apps.<app>.backup.volumes.<pvc>: false). */
  included: boolean;
}

/** apps.<app>.backup.volumes.<pvc>: false leaves a PVC out of the app's backups. */
export function volumeIncluded(app: AppInfo, pvc: string): boolean {
  const backup = app.config.backup as { volumes?: Record<string, unknown> } | undefined;
  return backup?.volumes?.[pvc] !== false;
}

export class ClusterService {
  private readonly clients = new Map<string, { mtimeMs: number; client: KubeClient }>();
  private readonly statusCache = new Map<string, { at: number; value: Promise<ClusterStatus> }>();

  constructor(private readonly opts: { timeoutMs?: number; statusTtlMs?: number } = {}) {}

  get timeoutMs(): number {
    return this.opts.timeoutMs ?? 5_000;
  }

  async client(inst: InstanceInfo): Promise<KubeClient> {
    if (!inst.hasKubeconfig) throw new NotFoundError(`instance "${inst.name}" has no kubeconfig`);
    const { mtimeMs } = await stat(inst.kubeconfigPath);
    const hit = this.clients.get(inst.name);
    if (hit && hit.mtimeMs === mtimeMs) return hit.client;
    const client = kubeClientFor(inst.kubeconfigPath);
    this.clients.set(inst.name, { mtimeMs, client });
    return client;
  }

  /** Reachability and version, bounded by the timeout and reused for a few seconds. */
  status(inst: InstanceInfo): Promise<ClusterStatus> {
    const hit = this.statusCache.get(inst.name);
    if (hit && Date.now() - hit.at < (this.opts.statusTtlMs ?? 5_000)) return hit.value;
    const value = (async (): Promise<ClusterStatus> => {
      if (!inst.hasKubeconfig) return { reachable: false, error: 'no kubeconfig for this instance' };
      try {
        return await clusterVersion(await this.client(inst), { timeoutMs: this.timeoutMs });
      } catch (err) {
        return { reachable: false, error: (err as Error).message };
      }
    })();
    this.statusCache.set(inst.name, { at: Date.now(), value });
    return value;
  }

  async namespaceExists(inst: InstanceInfo, namespace: string, signal?: AbortSignal): Promise<boolean> {
    return namespaceExists(await this.client(inst), namespace, { timeoutMs: this.timeoutMs, signal });
  }

  /** The app's PVCs (namespace = app name) with where they are mounted. */
  async volumes(inst: InstanceInfo, app: AppInfo, signal?: AbortSignal): Promise<AppVolume[]> {
    const client = await this.client(inst);
    const vols = await listVolumes(client, app.name, { timeoutMs: this.timeoutMs, signal });
    return vols.map((v) => ({ ...v, included: volumeIncluded(app, v.name) }));
  }
}
