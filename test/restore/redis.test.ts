// Redis restores through GraphQL against the simulated cluster (a real redis-server behind the
// redis pod): the redis app comes back exactly as backed up (every type, every database, TTLs kept),
// with and without appendonly; a restore that cannot be proven (an RDB unlike its manifest, other
// key counts after the restart, a server that does not start) puts the old data back, as does the
// start-up recovery after a crash mid-swap; apps that share the instance do not roll it back;
// verifyBackup drills the RDB beside the running server.
import { link, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELPER_LABEL, kubeClientFor, listPods, listWorkloads, scaleAndWait } from '../../src/kube/index.js';
import type { OperationRecord } from '../../src/engine/operations/index.js';
import type { RedisServer } from '../../src/sim/index.js';
import { OP_FIELDS, backupLatest, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let redis: RedisServer;
const RESTORE = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ${OP_FIELDS} } }`;

beforeAll(async () => {
  s = await startSimApp({ apps: ['immich'], sizes: { photoFiles: 4, photoBytes: 256 << 10, dbRows: 50 } });
  redis = s.sim.databases.redis!;
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
}, 180_000);
afterAll(async () => { await s?.close(); });

const backup = (app: string) => backupLatest(s, app);

type KeyState = { type: string; value: unknown; ttl: 'none' | number };
/** Every key of every database with its type, value and TTL (ms left, or 'none'). */
async function redisState(): Promise<Record<string, KeyState>> {
  const out: Record<string, KeyState> = {};
  const dbs = [...(await redis.cli('info', 'keyspace')).matchAll(/^db(\d+):/gm)].map((m) => m[1]!);
  for (const db of dbs) {
    const cli = (...a: string[]) => redis.cli('-n', db, ...a);
    const keys = (await cli('--scan')).split('\n').filter(Boolean);
    for (const key of keys) {
      const type = await cli('type', key);
      const lines = async (...a: string[]) => (await cli(...a)).split('\n');
      let value: unknown;
      if (type === 'string') value = await cli('get', key);
      else if (type === 'hash') { const l = await lines('hgetall', key); value = Object.fromEntries(l.flatMap((_, i) => (i % 2 ? [] : [[l[i], l[i + 1]]]))); }
      else if (type === 'list') value = await lines('lrange', key, '0', '-1');
      else if (type === 'set') value = (await lines('smembers', key)).sort();
      else if (type === 'zset') value = await lines('zrange', key, '0', '-1', 'withscores');
      else value = `(${type})`;
      const pttl = Number(await cli('pttl', key));
      out[`${db}:${key}`] = { type, value, ttl: pttl < 0 ? 'none' : pttl };
    }
  }
  return out;
}

/** Same keys, types and values; a key with a TTL still has one, no longer than it had. */
function expectSameData(got: Record<string, KeyState>, want: Record<string, KeyState>): void {
  const strip = (st: Record<string, KeyState>) => Object.fromEntries(Object.entries(st).map(([k, v]) => [k, { ...v, ttl: v.ttl === 'none' ? 'none' : 'volatile' }]));
  expect(strip(got)).toEqual(strip(want));
  for (const [k, v] of Object.entries(want)) if (v.ttl !== 'none') expect(got[k]!.ttl as number).toBeLessThanOrEqual(v.ttl);
}

async function seed(): Promise<void> {
  await redis.cli('flushall');
  await redis.cli('set', 'str', 'hello world ✓');
  await redis.cli('set', 'counter', '41');
  await redis.cli('hset', 'user:1', 'name', 'Ada', 'lang', 'en', 'visits', '3');
  await redis.cli('rpush', 'queue', 'job-a', 'job-b', 'job-c', 'job-b');
  await redis.cli('sadd', 'tags', 'red', 'green', 'blue');
  await redis.cli('zadd', 'scores', '1.5', 'ann', '2', 'bob', '-3', 'cyd');
  await redis.cli('set', 'session:abc', 'token-1', 'EX', '3600');
  await redis.cli('hset', 'cache:page', 'html', '<p>x</p>');
  await redis.cli('pexpire', 'cache:page', '7200000');
  await redis.cli('-n', '3', 'set', 'other-db', 'db three');
  await redis.cli('-n', '3', 'sadd', 'other-set', 'x');
  for (let i = 0; i < 20; i++) await redis.cli('-n', '5', 'set', `bulk:${i}`, `value-${i}-`.repeat(200));
}

async function changeEverything(): Promise<void> {
  await redis.cli('set', 'str', 'changed after the backup');
  await redis.cli('incr', 'counter');
  await redis.cli('hset', 'user:1', 'visits', '99', 'extra', 'field');
  await redis.cli('del', 'queue');
  await redis.cli('srem', 'tags', 'green');
  await redis.cli('zadd', 'scores', '100', 'new');
  await redis.cli('persist', 'session:abc');
  await redis.cli('set', 'added-later', 'should go');
  await redis.cli('-n', '3', 'flushdb');
  await redis.cli('-n', '7', 'set', 'new-db', 'should go too');
}

async function replicas(ns: string): Promise<Record<string, number>> {
  const ws = await listWorkloads(kubeClientFor(s.sim.kubeconfigPath), ns);
  return Object.fromEntries(ws.map((w) => [`${w.kind}/${w.name}`, w.replicas]));
}

async function expectNoLeftovers(): Promise<void> {
  const entries = await readdir(s.sim.pvcDir('redis', 'redis-pvc'));
  expect(entries.filter((e) => e.startsWith('.wild-backup'))).toEqual([]);
  expect(await listPods(kubeClientFor(s.sim.kubeconfigPath), 'redis', `${HELPER_LABEL}=true`)).toEqual([]);
  const pods = await listPods(kubeClientFor(s.sim.kubeconfigPath), 'redis', 'app=redis');
  expect(pods.filter((p) => p.ready).length, 'the redis server runs').toBe(1);
}

async function log(opId: string): Promise<string> {
  const op = await s.gql<{ operation: { log: string[] } }>(`query($id: ID!) { operation(id: $id) { log(last: 100) } }`, { id: opId });
  return op.data!.operation.log.join('\n');
}

/** The manifest the server holds for a backup (the catalog keeps one object per backup). */
async function manifestOf(backupId: string) {
  const svc = s.app.services;
  const view = await svc.backups.get(await svc.store.requireInstance('test'), backupId);
  return view!.manifest!.artifacts.find((a) => a.kind === 'redis')!;
}

describe('redis restore', () => {
  let backupId = '';
  let nodeId = '';

  it('the backup records key counts per database, the sha256 and where the data lives', async () => {
    await seed();
    const b = await backup('redis');
    backupId = b.backupId;
    nodeId = b.id;
    const a = await manifestOf(backupId);
    expect(a.meta).toMatchObject({
      keys: 30, keyCountsExact: true, dbfilename: 'dump.rdb', appendonly: false, volume: { pvc: 'redis-pvc', path: '' },
      keyspace: { 0: { keys: 8, expires: 2 }, 3: { keys: 2, expires: 0 }, 5: { keys: 20, expires: 0 } },
    });
    expect(a.meta.sha256).toMatch(/^[0-9a-f]{64}$/);
  }, 120_000);

  it('brings the redis app back exactly as backed up (types, databases, TTLs), after a safety backup, and scales it back', async () => {
    const before = await redisState();
    const replicasBefore = await replicas('redis');
    await changeEverything();
    expect(await redisState()).not.toEqual(before);
    const podBefore = (await listPods(kubeClientFor(s.sim.kubeconfigPath), 'redis', 'app=redis'))[0]!.name;

    const rec = await s.runOperation(RESTORE, { input: { backupId: nodeId } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expectSameData(await redisState(), before);
    expect(await replicas('redis')).toEqual(replicasBefore);
    await expectNoLeftovers();
    const podAfter = (await listPods(kubeClientFor(s.sim.kubeconfigPath), 'redis', 'app=redis'))[0]!.name;
    expect(podAfter, 'the server was restarted on the restored RDB').not.toBe(podBefore);
    const text = await log(rec.id);
    expect(text).toMatch(/quiesced Deployment\/redis/);
    expect(text).toMatch(/redis: RDB of \d+ bytes, sha256 as recorded, redis-check-rdb OK, 30 keys as recorded/);
    expect(text).toMatch(/safety backup \S+ taken/);
  }, 240_000);

  it('verifyBackup drills the RDB beside the running server and leaves nothing behind', async () => {
    const live = await redisState();
    const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: nodeId });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    const v = await s.gql<{ node: { verification: { ok: boolean; details: string } } }>(
      `query($id: ID!) { node(id: $id) { ... on Backup { verification { ok details } } } }`, { id: nodeId });
    expect(v.data!.node.verification).toMatchObject({ ok: true, details: expect.stringMatching(/redis-check-rdb OK, 30 keys as recorded/) });
    expectSameData(await redisState(), live);
    await expectNoLeftovers();
  }, 120_000);

  it('an RDB that does not match its manifest is refused before anything is swapped', async () => {
    await changeEverything();
    const live = await redisState();
    const a = await manifestOf(backupId);
    const sha = a.meta.sha256;
    a.meta.sha256 = '0'.repeat(64); // the repository gives back other bytes than were backed up
    try {
      const rec = await s.runOperation(RESTORE, { input: { backupId: nodeId, safetyBackup: false } });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.message).toMatch(/^redis:dump: .*sha256/);
    } finally {
      a.meta.sha256 = sha;
    }
    expectSameData(await redisState(), live);
    expect(await replicas('redis')).toEqual({ 'Deployment/redis': 1 });
    await expectNoLeftovers();
  }, 240_000);

  it('a server that comes back with other key counts than recorded: swapped back, original data intact', async () => {
    const live = await redisState();
    const a = await manifestOf(backupId);
    const keyspace = a.meta.keyspace as Record<string, { keys: number; expires: number }>;
    const saved = structuredClone(keyspace);
    // Same total (the RDB check passes), another split across databases: only the restarted
    // server's own counts can tell, after the swap.
    keyspace['5'] = { keys: 19, expires: 0 };
    keyspace['9'] = { keys: 1, expires: 0 };
    try {
      const rec = await s.runOperation(RESTORE, { input: { backupId: nodeId, safetyBackup: false } });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.message).toMatch(/key counts differ after restart: db5 has 20 keys/);
      expect(await log(rec.id)).toMatch(/putting everything back/);
    } finally {
      a.meta.keyspace = saved;
    }
    expectSameData(await redisState(), live);
    expect(await replicas('redis')).toEqual({ 'Deployment/redis': 1 });
    await expectNoLeftovers();
  }, 240_000);

  it('a server that does not start on the restored RDB fails fast: old RDB back, server running on it', async () => {
    const live = await redisState();
    const dump = path.join(s.sim.pvcDir('redis', 'redis-pvc'), 'dump.rdb');
    let starts = 0;
    // The first start after the swap finds a damaged file (a disk fault after the check).
    redis.beforeStart = async () => {
      if (++starts === 1) await writeFile(dump, 'REDIS0011 not really an RDB');
    };
    try {
      const t0 = Date.now();
      const rec = await s.runOperation(RESTORE, { input: { backupId: nodeId, safetyBackup: false } });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.message).toMatch(/^swapping in redis:\S+: redis pod \S+ failed to start on the restored data/);
      expect(Date.now() - t0, 'no waiting for a timeout').toBeLessThan(60_000);
    } finally {
      redis.beforeStart = undefined;
    }
    expect(starts, 'started on the restored file, then on the old one').toBeGreaterThanOrEqual(2);
    expectSameData(await redisState(), live);
    expect(await replicas('redis')).toEqual({ 'Deployment/redis': 1 });
    await expectNoLeftovers();
  }, 240_000);

  it('a restore cut short in the middle of the swap (as a crash leaves it) is undone by the start-up recovery', async () => {
    const live = await redisState();
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const [w] = await listWorkloads(client, 'redis');
    await scaleAndWait(client, w!, 0);
    // Half a swap: the old dump has its second name aside, the restored one is live, and the server
    // is down; then the process died.
    const dir = s.sim.pvcDir('redis', 'redis-pvc');
    await mkdir(path.join(dir, '.wild-backup-old-c1'));
    await link(path.join(dir, 'dump.rdb'), path.join(dir, '.wild-backup-old-c1', 'dump.rdb'));
    await writeFile(path.join(dir, '.wild-backup-old-c1', '.wild-backup-swapping'), '');
    await mkdir(path.join(dir, '.wild-backup-restore-c1'));
    await rename(path.join(dir, 'dump.rdb'), path.join(dir, '.wild-backup-restore-c1', 'tmp'));
    await writeFile(path.join(dir, 'dump.rdb'), 'the restored file, never proven');
    const description = {
      kind: 'redis', namespace: 'redis', selector: 'app=redis', pvc: 'redis-pvc', path: '', liveDir: null, dbfilename: 'dump.rdb',
      aof: null, unsupported: null, sideDir: '.wild-backup-restore-c1', oldDir: '.wild-backup-old-c1', replicas: { 'Deployment/redis': 1 }, image: null,
    };
    const record = { instanceName: 'test', recovery: { namespace: 'redis', replicas: { 'Deployment/redis': 1 }, sides: [{ description, state: 'swapping' }] } };
    const lines: string[] = [];
    await s.app.services.restores.recover(record as unknown as OperationRecord, (l) => lines.push(l));
    expect(lines.join('\n')).toMatch(/put the old redis data back/);
    expectSameData(await redisState(), live);
    expect(await replicas('redis')).toEqual({ 'Deployment/redis': 1 });
    await expectNoLeftovers();
  }, 240_000);

  it('an app that shares redis (immich, opted in) backs it up but does not roll the shared instance back', async () => {
    const configPath = path.join(s.sim.instanceDir, 'config.yaml');
    const config = YAML.parse(await readFile(configPath, 'utf8')) as { apps: Record<string, Record<string, unknown>> };
    config.apps.immich!.backup = { databases: { redis: true } };
    await writeFile(configPath, YAML.stringify(config));
    const b = await backup('immich');
    await redis.cli('set', 'str', 'written after the immich backup');
    const live = await redisState();
    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, components: ['DATABASES'], safetyBackup: false } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await log(rec.id)).toMatch(/redis:dump is not restored: the RDB is the whole Redis instance, shared with other apps/);
    expectSameData(await redisState(), live);
    await expectNoLeftovers();
  }, 240_000);

  it('with appendonly (Redis 7 multi-part AOF) the restored data is what the server loads, and keeps after another restart', async () => {
    redis.appendonly = true; // the pod's next start runs with --appendonly yes
    await redis.cli('config', 'set', 'appendonly', 'yes');
    for (let i = 0; i < 100 && !/aof_rewrite_in_progress:0[\s\S]*aof_rewrite_scheduled:0/.test(await redis.cli('info', 'persistence')); i++) await new Promise((r) => setTimeout(r, 100));
    await seed();
    await redis.cli('set', 'aof-era', 'yes');
    const b = await backup('redis');
    expect((await manifestOf(b.backupId)).meta).toMatchObject({ appendonly: true, appenddirname: 'appendonlydir' });
    const before = await redisState();
    await changeEverything();

    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, safetyBackup: false } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expectSameData(await redisState(), before);
    await expectNoLeftovers();
    // The rebuilt AOF is the server's truth from now on: writes after the restore survive a restart.
    await redis.cli('set', 'after-restore', '1');
    const after = await redisState();
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const [pod] = await listPods(client, 'redis', 'app=redis');
    await client.core.deleteNamespacedPod({ namespace: 'redis', name: pod!.name, gracePeriodSeconds: 0 });
    for (let i = 0; i < 200; i++) {
      const ready = (await listPods(client, 'redis', 'app=redis')).filter((p) => p.ready && p.name !== pod!.name);
      if (ready.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expectSameData(await redisState(), after);
    redis.appendonly = false;
  }, 240_000);
});
