// The restic client on a local repository: what a user notices when things go wrong or are
// cancelled (typed errors, no half snapshot, restic stopped), backpressure on dump, retention,
// check and locks.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ResticAbortError,
  ResticLockedError,
  ResticNotFoundError,
  ResticNotInitializedError,
  ResticRepository,
  type ResticSpawnInfo,
} from '../../src/engine/restic/index.js';
import { SecretScan, randomStream, sha256Of } from '../storage/helpers.js';
import { lockFiles } from '../helpers/faults.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A point where a test's source stops sending until released. Whatever a test's checks say, its
// source is let go after it: a restic left waiting would hold its lock over the tests that follow.
const unreleased = new Set<() => void>();
function holdPoint(): { hold: Promise<void>; release: () => void } {
  let release!: () => void;
  const hold = new Promise<void>((r) => { release = () => { unreleased.delete(release); r(); }; });
  unreleased.add(release);
  return { hold, release };
}
afterEach(() => { for (const release of [...unreleased]) release(); });

describe('restic client (local repository)', () => {
  const scan = new SecretScan();
  const password = `pw-${randomBytes(10).toString('hex')}`;
  const spawned: ResticSpawnInfo[] = [];
  let dir: string;
  let repo: ResticRepository;

  const backup = (stdin: Readable, opts: { signal?: AbortSignal; tags?: string[]; filename?: string } = {}) =>
    repo.backupStdin({ stdin, filename: opts.filename ?? 'app/file.bin', host: 'wild-test', tags: opts.tags ?? ['wild-backup'], signal: opts.signal });

  /** The repository's lock files (not the temp file an interrupted lock save leaves). */
  const locks = () => lockFiles(join(dir, 'repo'));

  /** Resolves once restic has read `bytes` of the stream (the stream then waits on `hold`). */
  async function untilRead(source: ReturnType<typeof randomStream>, bytes: number) {
    while (source.sent() < bytes) await sleep(20);
    await sleep(200);
  }

  beforeAll(async () => {
    scan.captureLogs();
    dir = await mkdtemp(join(tmpdir(), 'wb-restic-'));
    repo = new ResticRepository({
      settings: { repository: join(dir, 'repo'), password, credentials: {} },
      dataDir: join(dir, 'data'),
      killGraceMs: 3_000,
      onSpawn: (s) => spawned.push(s),
    });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('says clearly that a repository is not initialised', async () => {
    const err = await repo.snapshots().catch((e: unknown) => e);
    scan.record(err);
    expect(err).toBeInstanceOf(ResticNotInitializedError);
    expect((err as Error).message).toBe(`no restic repository at ${join(dir, 'repo')}: initialise it first`);
    expect(await repo.isInitialized()).toBe(false);
    await repo.init();
    expect(await repo.snapshots()).toEqual([]);
  });

  it('cancels a running backup: AbortError, restic gone, no snapshot written', async () => {
    const { hold, release } = holdPoint();
    const source = randomStream(4 * 1024 * 1024, { holdAfter: 512 * 1024, hold });
    const controller = new AbortController();
    const running = backup(source.stream, { signal: controller.signal, tags: ['aborted'] });
    await untilRead(source, 512 * 1024);
    const pid = spawned.at(-1)!.pid;
    const started = Date.now();
    controller.abort();
    const err = await running.catch((e: unknown) => e);
    release();
    expect(err).toBeInstanceOf(ResticAbortError);
    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(await repo.snapshots({ tags: ['aborted'] })).toEqual([]);
  });

  it('runs behind the API: every restic thread 10 nice steps lower and under SCHED_BATCH, and its session\'s scheduling group too', async () => {
    const { hold, release } = holdPoint();
    const source = randomStream(1024 * 1024, { holdAfter: 256 * 1024, hold });
    const running = backup(source.stream, { tags: ['behind'] });
    await untilRead(source, 256 * 1024);
    const pid = spawned.at(-1)!.pid;
    // Field n of a /proc stat line, counted as proc(5) does (fields after the comm's ')' start at 3):
    // 19 is the nice value, 41 the scheduling policy (0 SCHED_OTHER, 3 SCHED_BATCH).
    const field = (stat: string, n: number) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3]);
    const NICE = 19, POLICY = 41;
    const ownStat = readFileSync('/proc/self/stat', 'utf8');
    const own = field(ownStat, NICE);
    const threadStats = () => readdirSync(`/proc/${pid}/task`).map((tid) => readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
    // The bytes can sit in the pipe before restic's runtime has started its threads (a loaded machine).
    for (let i = 0; i < 200 && threadStats().length < 2; i++) await sleep(50);
    const stats = threadStats();
    const threads = stats.map((st) => field(st, NICE));
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('restic');
    expect(threads.length).toBeGreaterThan(1);
    expect(new Set(threads)).toEqual(new Set([Math.min(19, own + 10)]));
    expect(field(ownStat, POLICY)).toBe(0);
    expect(new Set(stats.map((st) => field(st, POLICY)))).toEqual(new Set([3]));
    // Its own session (detached) is its own autogroup on kernels that group by session.
    if (existsSync(`/proc/${pid}/autogroup`)) expect(readFileSync(`/proc/${pid}/autogroup`, 'utf8')).toMatch(/ nice 10\n?$/);
    release();
    expect((await running).snapshotId).toMatch(/^[0-9a-f]{8}/);
  });

  it('a failing source stream interrupts restic: the source error, no short snapshot', async () => {
    let fail!: (err: Error) => void;
    const source = randomStream(4 * 1024 * 1024, { holdAfter: 256 * 1024, hold: new Promise<void>((_, reject) => (fail = reject)) });
    const running = backup(source.stream, { tags: ['broken-source'] });
    await untilRead(source, 256 * 1024);
    fail(new Error('pod exec stream broke'));
    await expect(running).rejects.toThrow('pod exec stream broke');
    expect(await repo.snapshots({ tags: ['broken-source'] })).toEqual([]);
    expect(await locks(), 'no lock left behind').toEqual([]);
  });

  it('a restic killed mid-stream leaves no lock behind once the call has failed', async () => {
    const { hold, release } = holdPoint();
    const source = randomStream(1024 * 1024, { holdAfter: 128 * 1024, hold });
    const running = backup(source.stream, { tags: ['killed'] });
    await untilRead(source, 128 * 1024);
    for (let i = 0; i < 300 && (await locks()).length === 0; i++) await sleep(50);
    expect((await locks()).length, 'the backup holds its lock').toBe(1);
    // SIGKILL: restic cannot remove its own lock.
    process.kill(spawned.at(-1)!.pid, 'SIGKILL');
    const err = await running.catch((e: unknown) => e);
    release();
    expect((err as Error).message).toMatch(/was killed/);
    expect(await locks(), 'the stale lock was removed').toEqual([]);
  });

  it('reports a locked repository at once, typed; the work goes through once the lock is gone', async () => {
    const { hold, release } = holdPoint();
    const source = randomStream(1024 * 1024, { holdAfter: 128 * 1024, hold });
    const running = backup(source.stream, { tags: ['while-locked'], filename: 'app/locked.bin' });
    await untilRead(source, 128 * 1024);
    // The bytes can sit in the pipe before restic has opened the repository: wait for its lock.
    for (let i = 0; i < 300 && (await locks()).length === 0; i++) await sleep(50);
    expect((await locks()).length, 'the backup holds its lock').toBe(1);
    const started = Date.now();
    // check needs an exclusive lock; the running backup holds a shared one.
    const err = await repo.check().catch((e: unknown) => e);
    scan.record(err);
    expect(err).toBeInstanceOf(ResticLockedError);
    expect(Date.now() - started).toBeLessThan(10_000);
    release();
    const summary = await running;
    expect(summary.totalBytesProcessed).toBe(1024 * 1024);
    await repo.unlock();
    expect(await repo.check({ readDataSubset: 50 })).toMatchObject({ ok: true });
  });

  it('dump respects backpressure: restic waits for a slow reader, bytes come back whole', async () => {
    const size = 6 * 1024 * 1024;
    const source = randomStream(size);
    const { snapshotId } = await backup(source.stream, { tags: ['dump'], filename: 'app/big.bin' });
    const out = repo.dump(snapshotId, '/app/big.bin');
    await new Promise((r) => out.once('readable', r));
    await sleep(1_000);
    // Unread: only our small buffer fills; restic blocks on the pipe instead of filling memory.
    expect(out.readableLength).toBeLessThan(256 * 1024);
    expect(await sha256Of(out)).toEqual({ hex: source.digest(), bytes: size });
  });

  it('sums up the repository for GraphQL, cached until our next write', async () => {
    const all = await repo.snapshots();
    const stats = await repo.repositoryStats();
    expect(stats).toMatchObject({ snapshotCount: all.length, logicalSize: 2 * 1024 * 1024 + 6 * 1024 * 1024 });
    expect(stats.totalSize).toBeGreaterThan(0);
    expect(stats.deduplicationRatio).toBeCloseTo(stats.logicalSize / stats.totalSize);
    expect(stats.oldestSnapshotAt! <= stats.latestSnapshotAt!).toBe(true);
    const runs = spawned.length;
    expect(await repo.repositoryStats()).toEqual(stats);
    expect(spawned.length).toBe(runs);
  });

  it('dump of an unknown snapshot fails with a typed error on the stream', async () => {
    const err = await sha256Of(repo.dump('0123456789abcdef', '/app/big.bin')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResticNotFoundError);
  });

  it('destroying a dump stops restic', async () => {
    const [snap] = await repo.snapshots({ tags: ['dump'] });
    const out = repo.dump(snap!.id, '/app/big.bin');
    await new Promise((r) => out.once('readable', r));
    const pid = spawned.at(-1)!.pid;
    out.destroy();
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await sleep(100);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });

  it('forgets by policy (dry run first) and by id; listings follow at once', async () => {
    for (let i = 0; i < 3; i++) await backup(randomStream(10_000).stream, { tags: ['retention'], filename: 'app/r.bin' });
    const dry = await repo.forget({ policy: { keepLast: 1 }, tags: ['retention'] }, { dryRun: true });
    expect(dry.groups).toHaveLength(1);
    expect(dry.groups[0]!.keep).toHaveLength(1);
    expect(dry.removedIds).toHaveLength(2);
    expect(await repo.snapshots({ tags: ['retention'] })).toHaveLength(3);

    const done = await repo.forget({ policy: { keepLast: 1 }, tags: ['retention'] }, { prune: true });
    expect(done.removedIds).toEqual(dry.removedIds);
    const left = await repo.snapshots({ tags: ['retention'] });
    expect(left.map((s) => s.id)).toEqual(dry.groups[0]!.keep.map((s) => s.id));

    await repo.forget({ snapshotIds: [left[0]!.id] });
    expect(await repo.snapshots({ tags: ['retention'] })).toEqual([]);
  }, 120_000);

  it('prune removes the cache folders of repositories unused for 30 days, and nothing else', async () => {
    const cache = join(dir, 'data', 'cache', 'restic');
    const [own] = (await readdir(cache)).filter((n) => /^[0-9a-f]{64}$/.test(n));
    expect(own).toBeDefined();
    // A repository this server used 40 days ago (moved to another backend since), one used 20 days ago.
    const folder = async (days: number) => {
      const d = join(cache, randomBytes(32).toString('hex'));
      await mkdir(join(d, 'data', 'ab'), { recursive: true });
      await writeFile(join(d, 'version'), '1\n');
      await writeFile(join(d, 'data', 'ab', randomBytes(32).toString('hex')), randomBytes(1000));
      const t = new Date(Date.now() - days * 86_400_000);
      await utimes(d, t, t);
      return d;
    };
    const stale = await folder(40);
    const recent = await folder(20);
    // Our own repository's folder, untouched for as long: restic marks it used as it opens it.
    const t = new Date(Date.now() - 40 * 86_400_000);
    await utimes(join(cache, own!), t, t);
    await repo.prune();
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(recent)).toBe(true);
    expect(existsSync(join(cache, own!, 'version'))).toBe(true);
  }, 60_000);

  it('left no temp files, and no secret in logs, errors or argv', async () => {
    expect(await readdir(join(dir, 'data', 'tmp')).catch(() => [])).toEqual([]);
    scan.record(...spawned.map((s) => s.argv.join(' ')));
    expect(scan.findings([password])).toEqual([]);
  });
});
