// Redis engine plugin. Wild Cloud apps use Redis as a cache, so it is skipped unless the app opts in.
import type { DatabasePlugin } from './types.js';
import { inclusionOverride, requiresEngine } from './detect.js';

export const redisPlugin: DatabasePlugin = {
  name: 'redis',
  description: 'Redis: a consistent RDB snapshot of the instance (skipped by default as a cache)',
  canRestore: false,
  canVerify: false,
  detect(ctx) {
    const isServer = ctx.app === 'redis';
    if (!isServer && !requiresEngine(ctx, 'redis')) return null;
    const override = inclusionOverride(ctx, 'redis');
    const included = override ?? isServer;
    let reason: string | null = null;
    if (!included) {
      reason = override === false
        ? `excluded by apps.${ctx.app}.backup.databases.redis`
        : `redis is a cache for ${ctx.app}: skipped unless apps.${ctx.app}.backup.databases.redis is true`;
    } else if (isServer) reason = 'whole Redis instance (RDB snapshot)';
    return { engine: 'redis', databaseName: null, included, reason };
  },
};
