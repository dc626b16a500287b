// A restic that reads a file of the repository back damaged ("load <index/…>: invalid data
// returned"). `rclone serve restic` (rclone 1.60 here) shows a file under its final name while it
// is being uploaded, so a restic starting while another writes its index reads that index torn;
// restic 0.14 also keeps the torn copy in its cache, where it would fail every later run. Wild
// Backup removes the cached copy and runs again; a backup runs the artifact (and the manifest)
// again, its source opened anew.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BackupCatalog, readAll } from '../../src/engine/backup/catalog.js';
import { runBackup } from '../../src/engine/backup/pipeline.js';
import type { ArtifactSource } from '../../src/engine/backup/source.js';
import type { TaskContext } from '../../src/engine/operations/index.js';
import { ResticRepository, type ResticSpawnInfo } from '../../src/engine/restic/index.js';
import type { Logger } from '../../src/util/log.js';
import { startRcloneRestServer, type RcloneRestFixture } from '../fixtures/servers/rclone.js';
import { registerSecret } from '../helpers/leaks.js';
import { commandSource } from '../helpers/sources.js';

const password = `repo-${randomBytes(8).toString('hex')}`;
registerSecret(password);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const dirs: string[] = [];
const tempDir = async (prefix: string) => {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function taskContext(onLog: (line: string) => void = () => undefined): TaskContext & { logs: string[] } {
  const logs: string[] = [];
  return {
    logs, operationId: 'op-invalid-data', signal: new AbortController().signal,
    progress: () => undefined, setBackupId: () => undefined, saveRecovery: async () => undefined,
    log: (line) => { logs.push(line); onLog(line); },
  };
}

describe('a torn index on rest: (rclone serve restic)', () => {
  let server: RcloneRestFixture;
  const auth = { user: 'wild', pass: `rest-${randomBytes(8).toString('hex')}` };
  const credentials = () => ({ rest: { username: auth.user, password: auth.pass } });

  beforeAll(async () => {
    server = await startRcloneRestServer(auth);
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A request to the REST server with its basic auth; resolves with the status and body. */
  const rest = (method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const req = request(`${server.url}${path}`, { method, auth: `${auth.user}:${auth.pass}`, headers }, (res) => {
        readAll(res, 1e8).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
      });
      req.on('error', reject);
      req.end();
    });
  const listIndex = async (repoPath: string): Promise<Array<{ name: string; size: number }>> =>
    JSON.parse((await rest('GET', `/${repoPath}/index/`, { Accept: 'application/vnd.x.restic.rest.v2' })).body.toString()) as Array<{ name: string; size: number }>;

  it('runs the artifact and the manifest again, the source opened anew, once the index another restic was writing is whole', async () => {
    const repoPath = 'torn';
    const settings = { repository: `rest:${server.url}/${repoPath}`, password, credentials: credentials() };
    // Another writer, with a cache of its own: its index is what our restics read torn.
    const writer = new ResticRepository({ settings, dataDir: await tempDir('wb-torn-writer-') });
    await writer.init();
    await writer.backupStdin({ stdin: Readable.from([randomBytes(300_000)]), filename: 'other/data.bin', host: 'other' });
    const [index] = await listIndex(repoPath);
    expect(index).toBeDefined();
    const whole = (await rest('GET', `/${repoPath}/index/${index!.name}`)).body;
    expect(whole.length).toBe(index!.size);
    expect((await rest('DELETE', `/${repoPath}/index/${index!.name}`)).status).toBe(200);

    // The writer uploads that index again, half of it now: the server lists it, torn.
    const upload = request(`${server.url}/${repoPath}/index/${index!.name}`, { method: 'POST', auth: `${auth.user}:${auth.pass}`, headers: { 'Content-Length': String(whole.length) } });
    const uploaded = new Promise<number>((resolve, reject) => {
      upload.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      upload.on('error', reject);
    });
    const half = Math.floor(whole.length / 2);
    upload.write(whole.subarray(0, half));
    for (let i = 0; i < 100 && !(await listIndex(repoPath)).some((f) => f.name === index!.name && f.size === half); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await listIndex(repoPath)).toContainEqual({ name: index!.name, size: half });
    let finished = false;
    const finishUpload = () => {
      if (finished) return;
      finished = true;
      upload.end(whole.subarray(half));
    };

    // Our backup, with a cache of its own. The upload ends once our artifact is to run again.
    const dataDir = await tempDir('wb-torn-ours-');
    const spawned: ResticSpawnInfo[] = [];
    const repo = new ResticRepository({ settings, dataDir, onSpawn: (info) => spawned.push(info) });
    const catalog = new BackupCatalog(join(dataDir, 'manifests'));
    const payload = join(dataDir, 'payload');
    let opens = 0;
    const inner = commandSource('postgres', 'gitea', ['sh', '-c', `head -c 2000000 /dev/urandom > ${payload} && cat ${payload}`], 2_000_000);
    const source: ArtifactSource = { ...inner, open: (signal) => { opens++; return inner.open(signal); } };
    // The manifest's restic starts beside the artifact's and reads the same torn index: the upload
    // ends once the artifact runs again and that first manifest restic has failed (15 s at most).
    const manifestResticGone = async () => {
      for (let i = 0; i < 300; i++) {
        const first = spawned.find((p) => p.argv.includes('artifact:manifest'));
        if (first && !existsSync(`/proc/${first.pid}`)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const ctx = taskContext((line) => { if (line.includes('starting this artifact again')) void manifestResticGone().then(finishUpload); });
    try {
      const result = await runBackup({ repo, catalog, instance: 'home', app: 'gitea', sources: [source], skipped: [], ctx });
      expect(await uploaded).toBe(200);
      // Once, or twice on a loaded machine when the manifest's restic took over a second longer to fail.
      const runsAgain = ctx.logs.filter((l) => l.includes('starting this artifact again')).length;
      expect(runsAgain).toBeGreaterThanOrEqual(1);
      expect(opens).toBe(runsAgain + 1);
      expect(ctx.logs.some((l) => l.startsWith('manifest:') && l.includes('writing it again'))).toBe(true);
      // One snapshot per artifact and the manifest, nothing left of the first runs.
      const snaps = await repo.snapshots({ tags: [`backup:${result.backupId}`], refresh: true });
      expect(snaps.map((s) => s.paths[0]).sort()).toEqual(['/gitea/backup.json', '/gitea/postgres-gitea.bin']);
      const pg = snaps.find((s) => s.paths[0] === '/gitea/postgres-gitea.bin')!;
      expect(sha(await readAll(repo.dump(pg.id, '/gitea/postgres-gitea.bin'), 1e8))).toBe(sha(await readAll(createReadStream(payload), 1e8)));
      expect(result.manifest.artifacts[0]!.sizeBytes).toBe(2_000_000);
      // The repository is whole, and so is our cache: restic check reads every index.
      expect((await repo.check()).ok).toBe(true);
    } finally {
      finishUpload();
      await catalog.close();
    }
  }, 120_000);
});

/** A new local repository whose info and warn log lines are kept (message, then the fields as JSON). */
async function localRepository(prefix: string): Promise<{ dataDir: string; logs: string[]; repo: ResticRepository }> {
  const dataDir = await tempDir(prefix);
  const logs: string[] = [];
  const keep = (m: string, f?: object): void => { logs.push(`${m} ${JSON.stringify(f ?? {})}`); };
  const log: Logger = { info: keep, warn: keep, error: () => undefined, debug: () => undefined };
  const repo = new ResticRepository({ settings: { repository: join(dataDir, 'repo'), password, credentials: {} }, dataDir, log });
  await repo.init();
  return { dataDir, logs, repo };
}

describe('a damaged file in the restic cache (local repository)', () => {
  it('is removed and the command runs again, instead of failing every later run', async () => {
    const { dataDir, logs, repo } = await localRepository('wb-torn-cache-');
    const data = randomBytes(200_000);
    const { snapshotId } = await repo.backupStdin({ stdin: Readable.from([data]), filename: 'a/data.bin', host: 'home' });
    // A torn copy of the index in restic's cache, as a read of a half-written file leaves it.
    const cacheRoot = join(dataDir, 'cache', 'restic');
    const [repoId] = await readdir(cacheRoot).then((names) => names.filter((n) => /^[0-9a-f]{64}$/.test(n)));
    const [indexName] = await readdir(join(dataDir, 'repo', 'index'));
    const cached = join(cacheRoot, repoId!, 'index', indexName!.slice(0, 2), indexName!);
    const size = (await stat(join(dataDir, 'repo', 'index', indexName!))).size;
    const tearCachedIndex = async () => {
      await mkdir(join(cached, '..'), { recursive: true });
      await copyFile(join(dataDir, 'repo', 'index', indexName!), cached);
      await truncate(cached, size - 16);
    };
    const removed = () => logs.filter((l) => l.startsWith('removed a damaged file from the restic cache') && l.includes(`index/${indexName}`)).length;
    const ranAgain = (command: string) => logs.filter((l) => l.startsWith('a file of the repository read back damaged, trying again') && l.includes(`"command":"${command}"`)).length;

    // A command with output only (stats): run again once the cached copy is gone.
    await tearCachedIndex();
    const stats = await repo.stats('raw-data');
    expect(stats.totalSize).toBeGreaterThan(0);
    expect([removed(), ranAgain('stats')]).toEqual([1, 1]);
    // The copy restic cached again is whole.
    expect((await stat(cached)).size).toBe(size);

    // A dump (a restore's stream): run again before its first byte; the reader gets every byte.
    await tearCachedIndex();
    expect(sha(await readAll(repo.dump(snapshotId, '/a/data.bin'), 1e8))).toBe(sha(data));
    expect([removed(), ranAgain('dump')]).toEqual([2, 1]);
    expect((await stat(cached)).size).toBe(size);

    // Damaged in the repository itself: check, which reads it without our cache under the
    // exclusive lock, reports it at once, as its finding.
    logs.length = 0;
    const stored = join(dataDir, 'repo', 'index', indexName!);
    await truncate(stored, size - 16);
    const checked = await repo.check();
    expect(checked.ok).toBe(false);
    expect(checked.messages.join('\n')).toContain(`load <index/${indexName!.slice(0, 10)}>: invalid data returned`);
    expect(logs.filter((l) => l.startsWith('a file of the repository read back damaged, trying again'))).toEqual([]);
  }, 60_000);
});

describe('a damaged pack in the restic cache (local repository)', () => {
  it('goes with the other cached packs and the command runs again: a restore is not failed by a copy the storage no longer holds', async () => {
    const { dataDir, logs, repo } = await localRepository('wb-damaged-pack-');
    const data = randomBytes(300_000);
    const { snapshotId } = await repo.backupStdin({ stdin: Readable.from([data]), filename: 'a/data.bin', host: 'home' });
    // restic caches the pack holding the snapshot's trees as a dump reads it.
    expect(sha(await readAll(repo.dump(snapshotId, '/a/data.bin'), 1e8))).toBe(sha(data));
    const cacheRoot = join(dataDir, 'cache', 'restic');
    const cachedPacks = async () => (await readdir(cacheRoot, { recursive: true })).filter((f) => /\/data\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(f));
    const [pack] = await cachedPacks();
    expect(pack).toBeDefined();
    const stored = join(dataDir, 'repo', 'data', basename(pack!).slice(0, 2), basename(pack!));
    const whole = await readFile(stored);
    // The cached copy damaged, as a read of a pack the storage returned damaged leaves it (the
    // storage's own file is whole again): every blob's ciphertext fails its authentication.
    const damageCachedPack = () => writeFile(join(cacheRoot, pack!), Buffer.alloc(whole.length, 0x55));
    const removed = () => logs.filter((l) => l.startsWith('removed the cached packs from the restic cache')).length;
    const ranAgain = (command: string) => logs.filter((l) => l.startsWith('a file of the repository read back damaged, trying again') && l.includes(`"command":"${command}"`) && l.includes('blob/')).length;

    // A dump (a restore's stream): run again before its first byte; the reader gets every byte.
    await damageCachedPack();
    expect(sha(await readAll(repo.dump(snapshotId, '/a/data.bin'), 1e8))).toBe(sha(data));
    expect([removed(), ranAgain('dump')]).toEqual([1, 1]);
    // restic cached the pack again, whole.
    expect(sha(await readFile(join(cacheRoot, pack!)))).toBe(sha(whole));

    // A command with output only (stats walks every tree).
    await damageCachedPack();
    const stats = await repo.stats('restore-size');
    expect(stats.totalSize).toBe(data.length);
    expect([removed(), ranAgain('stats')]).toEqual([2, 1]);

    // Damaged in the repository itself (and not cached): the runs again fail too, and the error
    // names the blob; check, which reads without our cache, reports it.
    await writeFile(stored, Buffer.alloc(whole.length, 0x55));
    await rm(join(cacheRoot, pack!));
    await expect(readAll(repo.dump(snapshotId, '/a/data.bin'), 1e8)).rejects.toMatchObject({ code: 'RESTIC_INVALID_DATA', file: { type: 'blob' } });
    expect(ranAgain('dump')).toBe(3);
    const checked = await repo.check();
    expect(checked.ok).toBe(false);
  }, 60_000);
});

describe('a snapshot restic cannot read (local repository)', () => {
  it('is never left out of a listing unsaid: a torn cached copy is removed and the listing runs again; a damaged file is named as unreadable', async () => {
    const { dataDir, logs, repo } = await localRepository('wb-torn-snap-');
    const a = await repo.backupStdin({ stdin: Readable.from([randomBytes(1000)]), filename: 'a/one.bin', host: 'home', tags: ['artifact:manifest'] });
    const b = await repo.backupStdin({ stdin: Readable.from([randomBytes(1000)]), filename: 'a/two.bin', host: 'home' });
    const both = [a.snapshotId, b.snapshotId].sort();
    expect((await repo.snapshots({ refresh: true })).map((s) => s.id).sort()).toEqual(both);
    const cacheRoot = join(dataDir, 'cache', 'restic');
    const [repoId] = await readdir(cacheRoot).then((names) => names.filter((n) => /^[0-9a-f]{64}$/.test(n)));
    const stored = join(dataDir, 'repo', 'snapshots', a.snapshotId);
    const cached = join(cacheRoot, repoId!, 'snapshots', a.snapshotId.slice(0, 2), a.snapshotId);
    const size = (await stat(stored)).size;

    // restic 0.14 alone would list only the other snapshot, exit 0, and keep the torn copy.
    await mkdir(join(cached, '..'), { recursive: true });
    await copyFile(stored, cached);
    await truncate(cached, size - 16);
    expect((await repo.snapshots({ refresh: true })).map((s) => s.id).sort()).toEqual(both);
    expect(logs.some((l) => l.startsWith('removed a damaged file from the restic cache') && l.includes(`snapshot/${a.snapshotId}`))).toBe(true);
    expect(logs.some((l) => l.startsWith('a file of the repository read back damaged, trying again') && l.includes('"command":"snapshots"'))).toBe(true);
    expect((await stat(cached)).size).toBe(size);

    // Damaged in the repository (read with the cached copy gone), so it stays damaged after the
    // runs again: the listing answers without it, and says so, naming it.
    const whole = await readFile(stored);
    await truncate(stored, size - 16);
    await rm(cached);
    const partial = await repo.allSnapshots({ refresh: true });
    expect(partial.map((s) => s.id)).toEqual([b.snapshotId]);
    expect(partial.unreadable).toEqual([{ id: a.snapshotId.slice(0, 8), reason: `load <snapshot/${a.snapshotId.slice(0, 10)}>: invalid data returned` }]);
    expect(logs.filter((l) => l.startsWith('snapshots restic cannot read are left out of the listing'))).toHaveLength(1);
    // It answers from the cache, and lists again behind itself once it is 30 s old: the file,
    // repaired meanwhile, is listed again.
    await writeFile(stored, whole);
    await rm(cached, { force: true });
    expect(await repo.allSnapshots()).toBe(partial);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 31_000);
      expect(await repo.allSnapshots()).toBe(partial);
    } finally {
      vi.useRealTimers();
    }
    await vi.waitFor(async () => expect((await repo.allSnapshots()).map((s) => s.id).sort()).toEqual(both), { timeout: 20_000, interval: 100 });
    expect((await repo.allSnapshots()).unreadable).toBeUndefined();
  }, 60_000);
});
