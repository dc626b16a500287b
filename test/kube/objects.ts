// Small Kubernetes objects for access-layer tests (an app namespace with a PVC and a Deployment).
import type { KubeObject } from '../../src/sim/index.js';

export function appObjects(ns: string, opts: { replicas?: number; extraMounts?: Array<{ name: string; mountPath: string; subPath?: string }> } = {}): KubeObject[] {
  const labels = { app: ns, managedBy: 'kustomize', partOf: 'wild-cloud' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } },
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `${ns}-data`, namespace: ns, labels }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${ns}-secrets`, namespace: ns, labels }, stringData: { dbPassword: 'p@ss w0rd!', apiKey: 'k3y' } },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: ns, namespace: ns, labels },
      spec: {
        replicas: opts.replicas ?? 1, selector: { matchLabels: { ...labels, component: 'web' } },
        template: {
          metadata: { labels: { ...labels, component: 'web' } },
          spec: {
            containers: [{
              name: 'app', image: 'busybox',
              volumeMounts: [...(opts.extraMounts ?? []), { name: 'data', mountPath: '/data' }],
            }],
            volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `${ns}-data` } }],
          },
        },
      },
    },
  ];
}
