// Redis engine plugin. Wild Cloud apps use Redis as a cache, so it is skipped unless the app opts
// in; when included, `redis-cli --rdb -` streams a consistent RDB snapshot of the instance.
import type { ArtifactSource } from '../../engine/backup/source.js';
import { execSource, podText } from '../exec-source.js';
import type { DatabasePlugin } from './types.js';
import { inclusionOverride, requiresEngine } from './detect.js';
import { engineServer, serverPod } from './server.js';

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

  async sources(ctx, _dep, signal): Promise<ArtifactSource[]> {
    const target = await serverPod(ctx.client, engineServer(ctx.inst, 'redis'), 'redis', signal);
    const info = async (s: AbortSignal) => podText(ctx.client, target, ['redis-cli', 'info', 'memory'], s);
    return [execSource({
      client: ctx.client, target, artifact: { kind: 'redis', name: 'dump' }, extension: '.rdb',
      command: ['redis-cli', '--rdb', '-'],
      estimate: async (s) => Number(/used_memory_dataset:(\d+)/.exec(await info(s))?.[1]) || null,
      meta: async (s) => ({ keys: Number(await podText(ctx.client, target, ['redis-cli', 'dbsize'], s)) }),
    })];
  },
};
