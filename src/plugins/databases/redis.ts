// Redis engine plugin. Wild Cloud apps use Redis as a cache, so it is skipped unless the app opts
// in; when included, `redis-cli --rdb -` streams a consistent RDB snapshot of the instance. The
// manifest records what a restore needs: key counts per database (before and after the dump, so
// we know whether they are exact), the sha256 of the RDB, and where the server keeps its data
// (dir, dbfilename, AOF settings, and the PVC and path inside it). Restore: redis-restore.ts.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { ArtifactSource } from '../../engine/backup/source.js';
import type { KubeClient } from '../../kube/index.js';
import { execSource, podText, type PodTarget } from '../exec-source.js';
import type { DatabasePlugin } from './types.js';
import { inclusionOverride, requiresEngine } from './detect.js';
import { engineServer, serverPod } from './server.js';

/** Keys and keys with an expiry, per database number, as `INFO keyspace` reports them. */
export type Keyspace = Record<string, { keys: number; expires: number }>;

export function parseKeyspace(info: string): Keyspace {
  const out: Keyspace = {};
  for (const m of info.matchAll(/^db(\d+):keys=(\d+),expires=(\d+)/gm)) out[m[1]!] = { keys: Number(m[2]), expires: Number(m[3]) };
  return out;
}

export const totalKeys = (k: Keyspace): number => Object.values(k).reduce((n, d) => n + d.keys, 0);

export async function redisKeyspace(client: KubeClient, target: PodTarget, signal?: AbortSignal): Promise<Keyspace> {
  return parseKeyspace(await podText(client, target, ['redis-cli', 'info', 'keyspace'], signal));
}

/** Where and how the server keeps its data; what an in-place restore must replace. */
export interface RedisLayout {
  redisVersion: string | null;
  /** CONFIG GET dir: the server's working directory, where the RDB and the AOF live. */
  dir: string | null;
  dbfilename: string;
  appendonly: boolean;
  appenddirname: string;
  appendfilename: string;
  /** The PVC that holds `dir`, and `dir`'s path inside that volume ('' = its root); null when not on a PVC. */
  volume: { pvc: string; path: string } | null;
}

async function configValue(client: KubeClient, target: PodTarget, name: string, signal?: AbortSignal): Promise<string | null> {
  // `CONFIG GET x` answers "x\nvalue"; a renamed/disabled CONFIG command or an unknown key answers otherwise.
  const lines = (await podText(client, target, ['redis-cli', 'config', 'get', name], signal).catch(() => '')).split('\n');
  return lines[0] === name && lines.length >= 2 ? lines[1]! : null;
}

/** The PVC mount of the pod's containers that holds `dir` (the longest mount path containing it). */
async function volumeOf(client: KubeClient, target: PodTarget, dir: string, signal?: AbortSignal): Promise<RedisLayout['volume']> {
  const pod = await client.call((o) => client.core.readNamespacedPod({ namespace: target.namespace, name: target.pod }, o), { signal, timeoutMs: 15_000 });
  const claims = new Map((pod.spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [[v.name, v.persistentVolumeClaim.claimName] as const] : [])));
  let best: { pvc: string; path: string; len: number } | null = null;
  for (const c of pod.spec?.containers ?? []) {
    for (const m of c.volumeMounts ?? []) {
      const pvc = claims.get(m.name);
      const mount = m.mountPath.replace(/\/+$/, '') || '/';
      if (!pvc || !(dir === mount || dir.startsWith(mount === '/' ? '/' : `${mount}/`))) continue;
      if (best && best.len >= mount.length) continue;
      best = { pvc, path: path.posix.join(m.subPath ?? '', path.posix.relative(mount, dir)).replace(/^\.$/, ''), len: mount.length };
    }
  }
  return best ? { pvc: best.pvc, path: best.path } : null;
}

export async function redisLayout(client: KubeClient, target: PodTarget, signal?: AbortSignal): Promise<RedisLayout> {
  const [dir, dbfilename, appendonly, appenddirname, appendfilename, server] = await Promise.all([
    configValue(client, target, 'dir', signal), configValue(client, target, 'dbfilename', signal), configValue(client, target, 'appendonly', signal),
    configValue(client, target, 'appenddirname', signal), configValue(client, target, 'appendfilename', signal),
    podText(client, target, ['redis-cli', 'info', 'server'], signal).catch(() => ''),
  ]);
  return {
    redisVersion: /^redis_version:(\S+)/m.exec(server)?.[1] ?? null,
    dir,
    dbfilename: dbfilename ?? 'dump.rdb',
    appendonly: appendonly === 'yes',
    appenddirname: appenddirname ?? 'appendonlydir',
    appendfilename: appendfilename ?? 'appendonly.aof',
    volume: dir ? await volumeOf(client, target, dir, signal).catch(() => null) : null,
  };
}

/** Bytes held back: the RDB's EOF opcode (0xFF), its 8-byte checksum and a 40-byte EOF mark. */
const TAIL = 1 + 8 + 40;
const isHex = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66);

/**
 * Passes the RDB to restic, counting and hashing it, without the diskless-sync EOF mark: Redis 7
 * sends the RDB to `redis-cli --rdb` followed by a 40-hex-character mark, which redis-cli cuts off
 * a file but cannot cut off stdout. A plain RDB load ignores it; an AOF base file must not have it.
 * A real RDB never ends in 40 hex characters (its 9th byte from the end is the 0xFF EOF opcode),
 * so the mark is recognised exactly: 0xFF, 8 checksum bytes, then 40 hex characters.
 */
export function rdbWithoutEofMark(): { transform: Transform; result: () => Record<string, unknown> } {
  const hash = createHash('sha256');
  let bytes = 0;
  let held = Buffer.alloc(0);
  let digest: string | undefined;
  const out = (t: Transform, b: Buffer) => {
    if (!b.length) return;
    hash.update(b);
    bytes += b.length;
    t.push(b);
  };
  const transform = new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (chunk.length >= TAIL) {
        out(this, held);
        out(this, chunk.subarray(0, chunk.length - TAIL));
        held = Buffer.from(chunk.subarray(chunk.length - TAIL));
      } else {
        const all = Buffer.concat([held, chunk]);
        out(this, all.subarray(0, Math.max(0, all.length - TAIL)));
        held = Buffer.from(all.subarray(Math.max(0, all.length - TAIL)));
      }
      cb();
    },
    flush(cb) {
      const marked = held.length === TAIL && held[0] === 0xff && held.subarray(9).every(isHex);
      out(this, marked ? held.subarray(0, 9) : held);
      cb();
    },
  });
  return { transform, result: () => ({ rdbBytes: bytes, sha256: (digest ??= hash.digest('hex')) }) };
}

export const redisPlugin: DatabasePlugin = {
  name: 'redis',
  description: 'Redis: a consistent RDB snapshot of the instance (skipped by default as a cache); restored in place for the redis app itself',
  canRestore: true,
  canVerify: true,
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
    let before: Keyspace = {};
    return [execSource({
      client: ctx.client, target, artifact: { kind: 'redis', name: 'dump' }, extension: '.rdb',
      command: ['redis-cli', '--rdb', '-'],
      estimate: async (s) => {
        before = await redisKeyspace(ctx.client, target, s);
        return Number(/used_memory_dataset:(\d+)/.exec(await info(s))?.[1]) || null;
      },
      through: rdbWithoutEofMark,
      // The counts before and after the dump agree unless keys were written or expired meanwhile;
      // only then do they describe the RDB exactly.
      meta: async (s) => {
        const keyspace = await redisKeyspace(ctx.client, target, s);
        const layout = await redisLayout(ctx.client, target, s);
        return { keys: totalKeys(keyspace), keyspace, keyCountsExact: JSON.stringify(keyspace) === JSON.stringify(before), ...layout };
      },
    })];
  },
};
