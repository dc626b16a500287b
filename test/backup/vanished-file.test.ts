// restic 0.14 lists a folder of the repository, then reads each file: one that another restic
// removed in between it retries reading for ~45 s before it goes on without it (restic/restic#1523).
// Lock files vanish whenever a restic exits, snapshots when a forget runs beside a listing. Backups
// run side by side into one repository met it (one in eight in a burst of eight apps into a fresh
// repository: 46 s instead of 1 s for a static site). Wild Backup stops such a restic and runs it
// again (a backup's artifact with its source opened anew: it meets locks before it reads input).
// A dangling symlink is a file that restic lists and cannot read, every time: the test removes it
// as the run that follows our stop starts, as the real vanished file is gone by then.
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { BackupCatalog, readAll } from '../../src/engine/backup/catalog.js';
import { runBackup } from '../../src/engine/backup/pipeline.js';
import type { TaskContext } from '../../src/engine/operations/index.js';
import { ResticRepository, VANISHED_FILE, type ResticSpawnInfo } from '../../src/engine/restic/index.js';
import type { Logger } from '../../src/util/log.js';
import { registerSecret } from '../helpers/leaks.js';
import { commandSource } from '../helpers/sources.js';

const password = `repo-${randomBytes(8).toString('hex')}`;
registerSecret(password);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const spawnsOf = (spawned: ResticSpawnInfo[], command: string) => spawned.filter((s) => s.command === command).length;

/** restic waits ~45 s on such a lock; every case here must end well before. */
const RESTIC_WAIT_MS = 40_000;

/**
 * A new local repository; `plant()` puts a file restic lists and cannot read (a dangling symlink)
 * under locks/ or snapshots/, removed when the `nth` restic of `command` starts. restic's spawns
 * and our info log lines are kept.
 */
async function repositoryWithVanishingFile(folder: 'locks' | 'snapshots' | 'index' = 'locks', removeAt: { command: string; nth: number } = { command: 'unlock', nth: 1 }): Promise<{ dataDir: string; repo: ResticRepository; spawned: ResticSpawnInfo[]; logs: string[]; gone: () => boolean; plant: () => Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wb-vanished-'));
  dirs.push(dataDir);
  const logs: string[] = [];
  const keep = (m: string, f?: object): void => { logs.push(`${m} ${JSON.stringify(f ?? {})}`); };
  const log: Logger = { info: keep, warn: keep, error: () => undefined, debug: () => undefined };
  const spawned: ResticSpawnInfo[] = [];
  const file = join(dataDir, 'repo', folder, randomBytes(32).toString('hex'));
  let planted = false;
  const repo = new ResticRepository({
    settings: { repository: join(dataDir, 'repo'), password, credentials: {} }, dataDir, log,
    onSpawn: (info) => {
      spawned.push(info);
      if (planted && info.command === removeAt.command && spawnsOf(spawned, removeAt.command) >= removeAt.nth) { rmSync(file, { force: true }); planted = false; }
    },
  });
  await repo.init();
  const plant = async () => { await symlink(join(dataDir, 'not-there'), file); planted = true; };
  return { dataDir, repo, spawned, logs, gone: () => !planted, plant };
}

/** Our log's line for a command restic ran again after a file vanished under it. */
const ranAgain = (logs: string[], command: string, type: string) =>
  logs.filter((l) => l.startsWith('restic met a file another restic had just removed, running it again') && l.includes(`"command":"${command}"`) && l.includes(`"file":"${type}/`)).length;

describe('a file removed under a running restic', () => {
  it('a backup stops that restic and runs its artifact again, in seconds instead of ~45', async () => {
    const { dataDir, repo, spawned, gone, plant } = await repositoryWithVanishingFile();
    const catalog = new BackupCatalog(join(dataDir, 'manifests'));
    const payload = join(dataDir, 'payload');
    let opens = 0;
    const inner = commandSource('postgres', 'gitea', ['sh', '-c', `head -c 300000 /dev/urandom > ${payload} && cat ${payload}`], 300_000);
    const logs: string[] = [];
    const ctx: TaskContext = {
      operationId: 'op-lock-race', signal: new AbortController().signal,
      progress: () => undefined, setBackupId: () => undefined, saveRecovery: async () => undefined,
      log: (line) => { logs.push(line); },
    };
    await plant();
    const started = Date.now();
    try {
      const result = await runBackup({
        repo, catalog, instance: 'home', app: 'gitea', skipped: [], ctx,
        sources: [{ ...inner, open: (signal) => { opens++; return inner.open(signal); } }],
      });
      expect(Date.now() - started).toBeLessThan(RESTIC_WAIT_MS);
      expect(gone()).toBe(true);
      // The artifact's restic and the manifest's (started beside it) both met the lock; each was
      // stopped and run again, the artifact's source opened anew.
      const again = logs.filter((l) => l.includes('a lock file that another restic had just removed'));
      expect(again.length).toBeGreaterThanOrEqual(1);
      expect(again.every((l) => /^(postgres:gitea|manifest): .*restic\/restic#1523\); (starting this artifact|writing it) again$/.test(l))).toBe(true);
      expect(opens).toBe(1 + logs.filter((l) => l.startsWith('postgres:gitea:') && l.endsWith('starting this artifact again')).length);
      expect(spawnsOf(spawned, 'backup')).toBeGreaterThanOrEqual(3);
      // One snapshot per artifact and the manifest; the artifact's bytes are the source's.
      const snaps = await repo.snapshots({ tags: [`backup:${result.backupId}`], refresh: true });
      expect(snaps.map((s) => s.paths[0]).sort()).toEqual(['/gitea/backup.json', '/gitea/postgres-gitea.bin']);
      const pg = snaps.find((s) => s.paths[0] === '/gitea/postgres-gitea.bin')!;
      expect(sha(await readAll(repo.dump(pg.id, '/gitea/postgres-gitea.bin'), 1e8))).toBe(sha(await readFile(payload)));
      expect(result.manifest.artifacts[0]!.sizeBytes).toBe(300_000);
    } finally {
      await catalog.close();
    }
  }, 90_000);

  it('a command without input (forget) and a dump run again at once', async () => {
    const { repo, spawned, logs, gone, plant } = await repositoryWithVanishingFile();
    const data = randomBytes(100_000);
    const a = await repo.backupStdin({ stdin: Readable.from([data]), filename: 'a/data.bin', host: 'home' });
    const b = await repo.backupStdin({ stdin: Readable.from([data]), filename: 'b/data.bin', host: 'home' });

    await plant();
    let started = Date.now();
    await repo.forget({ snapshotIds: [b.snapshotId] });
    expect(Date.now() - started).toBeLessThan(RESTIC_WAIT_MS);
    expect(gone()).toBe(true);
    expect(ranAgain(logs, 'forget', 'lock')).toBe(1);
    expect(spawnsOf(spawned, 'forget')).toBe(2);
    expect((await repo.snapshots({ refresh: true })).map((s) => s.paths[0])).toEqual(['/a/data.bin']);

    // A dump (a restore's stream) before its first byte.
    await plant();
    started = Date.now();
    expect(sha(await readAll(repo.dump(a.snapshotId, '/a/data.bin'), 1e8))).toBe(sha(data));
    expect(Date.now() - started).toBeLessThan(RESTIC_WAIT_MS);
    expect(gone()).toBe(true);
    expect(spawnsOf(spawned, 'dump')).toBe(2);
  }, 90_000);

  it('an unlock (the sweep after a stopped restic) runs again at once too', async () => {
    const { repo, spawned, logs, gone, plant } = await repositoryWithVanishingFile('locks', { command: 'unlock', nth: 2 });
    await plant();
    const started = Date.now();
    await repo.unlock();
    expect(Date.now() - started).toBeLessThan(RESTIC_WAIT_MS);
    expect(gone()).toBe(true);
    expect(spawnsOf(spawned, 'unlock')).toBe(2);
    expect(ranAgain(logs, 'unlock', 'lock')).toBe(1);
  }, 90_000);

  it('a listing that meets a snapshot a forget just removed lists again at once', async () => {
    const { repo, spawned, logs, gone, plant } = await repositoryWithVanishingFile('snapshots', { command: 'snapshots', nth: 2 });
    const a = await repo.backupStdin({ stdin: Readable.from([randomBytes(1000)]), filename: 'a/data.bin', host: 'home' });
    await plant();
    const before = spawnsOf(spawned, 'snapshots');
    const started = Date.now();
    const listed = await repo.snapshots({ refresh: true });
    expect(Date.now() - started).toBeLessThan(RESTIC_WAIT_MS);
    expect(gone()).toBe(true);
    expect(listed.map((s) => s.shortId)).toEqual([a.snapshotId.slice(0, 8)]);
    expect(spawnsOf(spawned, 'snapshots') - before).toBe(2);
    expect(ranAgain(logs, 'snapshots', 'snapshot')).toBe(1);
  }, 90_000);

  it('repository stats that meet an index file a prune just replaced read again at once', async () => {
    const { repo, spawned, logs, gone, plant } = await repositoryWithVanishingFile('index', { command: 'stats', nth: 2 });
    await repo.backupStdin({ stdin: Readable.from([randomBytes(50_000)]), filename: 'a/data.bin', host: 'home' });
    await plant();
    const started = Date.now();
    const stats = await repo.stats('raw-data');
    expect(Date.now() - started).toBeLessThan(RESTIC_WAIT_MS);
    expect(gone()).toBe(true);
    expect(stats.totalSize).toBeGreaterThan(50_000);
    expect(spawnsOf(spawned, 'stats')).toBe(2);
    expect(ranAgain(logs, 'stats', 'index')).toBe(1);
  }, 90_000);

  it('knows restic\'s retry line for a missing lock as each backend words it', () => {
    const line = (tail: string) => `Load(<lock/1210ac6fdd>, 0, 0) returned error, retrying after 552.330144ms: ${tail}`;
    for (const tail of [
      'open /srv/repo/locks/1210ac6fdd48f87cbc330f95f06368d12ab2007d8bd3083365efce655f257d33: no such file or directory',
      'The specified key does not exist.',
      '<lock/1210ac6fdd> does not exist',
      'file does not exist',
      'storage: object doesn\'t exist',
      'b2_download_file_by_name: 404: File with such name does not exist.',
    ]) expect(VANISHED_FILE.test(line(tail)), tail).toBe(true);
    expect(VANISHED_FILE.exec('Load(<index/0a1b2c3d4e>, 0, 0) returned error, retrying after 1.08s: The specified key does not exist.')?.slice(1, 3)).toEqual(['index', '0a1b2c3d4e']);
    expect(VANISHED_FILE.exec('Load(<snapshot/c9d627ec98>, 0, 0) returned error, retrying after 552ms: open /r/snapshots/c9d6: no such file or directory')?.slice(1, 3)).toEqual(['snapshot', 'c9d627ec98']);
    // Other failures of a lock, or of another file, are restic's to retry.
    expect(VANISHED_FILE.test(line('dial tcp 10.0.0.2:9000: connect: connection refused'))).toBe(false);
    expect(VANISHED_FILE.test('Load(<data/1210ac6fdd>, 0, 0) returned error, retrying after 552ms: open x: no such file or directory')).toBe(false);
  });
});
