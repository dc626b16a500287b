// Apps of an instance: their manifest, and the databases a backup of them covers.
import { builder } from '../builder.js';
import { detectDatabases } from '../plugins/databases/registry.js';
import type { DetectedDatabase } from '../plugins/databases/types.js';
import type { AppInfo } from '../wild/store.js';
import { ConfigProblemRef, InstanceRef } from './instance.js';
import { NodeInterface, encodeGlobalId, nodeLoaders } from './node.js';

export const AppRef = builder.objectRef<AppInfo>('App');

const DatabaseDependencyRef = builder.objectRef<DetectedDatabase>('DatabaseDependency').implement({
  fields: (t) => ({
    engine: t.exposeString('engine', { description: 'plugin name: postgres, mysql, redis' }),
    databaseName: t.exposeString('databaseName', { nullable: true, description: 'null for a whole-server dump' }),
    included: t.exposeBoolean('included'),
    reason: t.exposeString('reason', { nullable: true }),
  }),
});

AppRef.implement({
  interfaces: [NodeInterface],
  isTypeOf: (v) => typeof v === 'object' && v !== null && 'manifest' in v && 'dir' in v && 'config' in v,
  fields: (t) => ({
    id: t.id({ resolve: (a) => encodeGlobalId('App', `${a.instance}/${a.name}`) }),
    name: t.exposeString('name'),
    namespace: t.string({ description: 'An app lives in the namespace named after it.', resolve: (a) => a.name }),
    version: t.string({ nullable: true, resolve: (a) => a.manifest?.version ?? null }),
    description: t.string({ nullable: true, resolve: (a) => a.manifest?.description ?? null }),
    databases: t.field({ type: [DatabaseDependencyRef], resolve: (a) => detectDatabases(a) }),
    problems: t.field({ type: [ConfigProblemRef], resolve: (a) => a.problems }),
  }),
});

nodeLoaders.set('App', async (key, ctx) => {
  const [instName, appName] = key.split('/');
  if (!instName || !appName) return null;
  const inst = await ctx.services.store.instance(instName).catch(() => null);
  return inst ? ctx.services.store.app(inst, appName).catch(() => null) : null;
});

builder.objectFields(InstanceRef, (t) => ({
  apps: t.field({ type: [AppRef], resolve: (i, _a, ctx) => ctx.services.store.apps(i) }),
  app: t.field({
    type: AppRef,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (i, { name }, ctx) => ctx.services.store.app(i, name),
  }),
}));
