// What the live cluster says about an instance and its apps: reachability, and app volumes.
import { builder } from '../builder.js';
import type { AppVolume } from '../engine/cluster.js';
import type { ClusterStatus } from '../kube/index.js';
import { AppRef } from './app.js';
import { InstanceRef } from './instance.js';

const ClusterStatusRef = builder.objectRef<ClusterStatus>('ClusterStatus').implement({
  fields: (t) => ({
    reachable: t.exposeBoolean('reachable'),
    version: t.string({ nullable: true, resolve: (c) => c.version ?? null }),
    error: t.string({ nullable: true, resolve: (c) => c.error ?? null }),
  }),
});

const VolumeRef = builder.objectRef<AppVolume>('Volume').implement({
  fields: (t) => ({
    name: t.exposeString('name', { description: 'PVC name' }),
    capacity: t.field({ type: 'ByteCount', nullable: true, resolve: (v) => v.capacityBytes ?? null }),
    phase: t.exposeString('phase'),
    mountPath: t.string({ nullable: true, resolve: (v) => v.mount?.mountPath ?? null }),
    podName: t.string({ nullable: true, resolve: (v) => v.mount?.pod ?? null }),
    included: t.exposeBoolean('included'),
  }),
});

builder.objectField(InstanceRef, 'cluster', (t) =>
  t.field({
    type: ClusterStatusRef,
    description: 'Whether the cluster answers (within a few seconds), and its version.',
    resolve: (i, _a, ctx) => ctx.services.cluster.status(i),
  }),
);

builder.objectField(AppRef, 'volumes', (t) =>
  t.field({
    type: [VolumeRef],
    description: "The app's PVCs, from the live cluster (empty while it cannot be reached: see Instance.cluster).",
    resolve: async (a, _args, ctx) => {
      const inst = await ctx.services.store.requireInstance(a.instance);
      const st = await ctx.services.cluster.status(inst);
      if (!st.reachable) return [];
      return ctx.services.cluster.volumes(inst, a);
    },
  }),
);
