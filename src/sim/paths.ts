// How the sim maps a pod's filesystem view onto the host: a PVC mount is the PVC's host directory,
// a mount under it (gitea's app.ini by subPath) lands inside that directory, anything else
// (emptyDir, configMap) lands in the pod's own directory. Clients read mount paths from the API.
import path from 'node:path';
import type { KubeObject, PodSpec } from './objects.js';

export interface PathContext {
  stateDir: string;
  pvcDir(ns: string, claim: string): string;
  podDir(ns: string, pod: string): string;
}

/** Rewrites the pod's volume mounts (and env values naming paths under them) to host paths, in place. */
export function translatePodPaths(ctx: PathContext, pod: KubeObject): void {
  const ns = pod.metadata.namespace ?? 'default';
  const spec = pod.spec as unknown as PodSpec;
  const podDir = ctx.podDir(ns, pod.metadata.name);
  const claimOf = new Map<string, string>();
  for (const v of spec.volumes ?? []) if (v.persistentVolumeClaim) claimOf.set(v.name, v.persistentVolumeClaim.claimName);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const prefixes: Array<[string, string]> = [];
    const mounts = c.volumeMounts ?? [];
    const isHost = (p: string): boolean => p === ctx.stateDir || p.startsWith(ctx.stateDir + '/');
    for (const m of mounts) {
      const claim = claimOf.get(m.name);
      if (!claim || isHost(m.mountPath)) continue;
      const host = m.subPath ? path.join(ctx.pvcDir(ns, claim), m.subPath) : ctx.pvcDir(ns, claim);
      prefixes.push([m.mountPath.replace(/\/+$/, '') || '/', host]);
      m.mountPath = host;
    }
    prefixes.sort((a, b) => b[0].length - a[0].length);
    const mapUnder = (p: string): string | undefined => {
      for (const [orig, host] of prefixes) {
        if (p === orig) return host;
        if (p.startsWith(orig === '/' ? '/' : orig + '/')) return path.join(host, p.slice(orig.length));
      }
      return undefined;
    };
    for (const m of mounts) {
      if (claimOf.has(m.name) || isHost(m.mountPath)) continue;
      m.mountPath = mapUnder(m.mountPath) ?? path.join(podDir, m.mountPath);
    }
    for (const e of c.env ?? []) {
      if (typeof e.value === 'string' && e.value.startsWith('/')) e.value = mapUnder(e.value) ?? e.value;
    }
  }
}
