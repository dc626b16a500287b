// A failed backup whose snapshots could not be forgotten (the repository was down) is remembered
// on disk and its snapshots are removed once the repository answers, also after a restart.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ResticRepository } from '../../src/engine/restic/index.js';
import { Leftovers } from '../../src/engine/backup/leftovers.js';
import { removeBackupSnapshots } from '../../src/engine/backup/pipeline.js';

let dir: string;
let repo: ResticRepository;
const backupId = '20261126T101010Z-beef';
const otherId = '20261126T101011Z-cafe';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wb-leftovers-'));
  repo = new ResticRepository({
    settings: { repository: join(dir, 'repo'), password: `pw-${randomBytes(8).toString('hex')}`, credentials: {} },
    dataDir: join(dir, 'data'),
  });
  await repo.init();
  for (const [id, name] of [[backupId, 'a'], [backupId, 'b'], [otherId, 'c']] as const) {
    await repo.backupStdin({ stdin: Readable.from([Buffer.from(name)]), filename: `app/${name}`, host: 'test', tags: ['wild-backup', `backup:${id}`] });
  }
}, 60_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const remove = (r: ResticRepository, id: string) => removeBackupSnapshots(r, id, () => undefined);

it('keeps the backup id while the repository is down and forgets its snapshots once it answers, after a restart', async () => {
  const file = join(dir, 'state', 'leftovers.json');
  let up = false;
  const open = async () => {
    if (!up) throw new Error('repository unreachable');
    return repo;
  };
  const first = new Leftovers(file, open, remove, 60_000);
  await first.add('test', backupId);
  await first.sweep();
  expect(await first.list('test')).toEqual([backupId]);
  first.close();
  expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject([{ instance: 'test', backupId }]);

  // A new server on the same data directory, the repository back.
  up = true;
  const second = new Leftovers(file, open, remove, 60_000);
  expect(await second.list()).toEqual([backupId]);
  await second.sweep();
  expect(await second.list()).toEqual([]);
  second.close();
  expect((await repo.snapshots({ tags: [`backup:${backupId}`], refresh: true })).length).toBe(0);
  // Only that backup's snapshots went.
  expect((await repo.snapshots({ tags: [`backup:${otherId}`], refresh: true })).length).toBe(1);
}, 60_000);

it('retries in the background until the repository answers', async () => {
  const file = join(dir, 'state2', 'leftovers.json');
  let up = false;
  const l = new Leftovers(file, async () => { if (!up) throw new Error('down'); return repo; }, remove, 200);
  try {
    await l.add('test', otherId);
    await new Promise((r) => setTimeout(r, 600));
    expect(await l.list()).toEqual([otherId]);
    up = true;
    await expect.poll(() => l.list(), { timeout: 20_000, interval: 100 }).toEqual([]);
    expect((await repo.snapshots({ tags: [`backup:${otherId}`], refresh: true })).length).toBe(0);
  } finally {
    l.close();
  }
}, 60_000);

it('backs off while the repository stays down, each retry waiting twice as long, and still removes them once it answers', async () => {
  const file = join(dir, 'state4', 'leftovers.json');
  let up = false;
  let asked = 0;
  const l = new Leftovers(file, async () => { asked++; if (!up) throw new Error('down'); return repo; }, remove, 100);
  try {
    await l.add('test', backupId);
    await new Promise((r) => setTimeout(r, 1650));
    // Retries at 0.1, 0.3, 0.7 and 1.5 s; every 0.1 s, it would have asked 16 times.
    expect(asked).toBeGreaterThanOrEqual(2);
    expect(asked).toBeLessThanOrEqual(5);
    up = true;
    await expect.poll(() => l.list(), { timeout: 20_000, interval: 100 }).toEqual([]);
  } finally {
    l.close();
  }
}, 60_000);

it('drops the leftovers of an instance that no longer exists', async () => {
  const l = new Leftovers(join(dir, 'state3', 'leftovers.json'), async () => null, remove, 60_000);
  await l.add('gone', backupId);
  await l.sweep();
  expect(await l.list()).toEqual([]);
  l.close();
});

it('a state file that cannot be written fails the sweep for its caller, not the server', async () => {
  // The state directory's place is taken by a file: every save fails (as on a full or read-only disk).
  const blocked = join(dir, 'blocked');
  await writeFile(blocked, '');
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  const l = new Leftovers(join(blocked, 'state', 'leftovers.json'), async () => { throw new Error('down'); }, remove, 60_000);
  try {
    await expect(l.add('test', backupId)).rejects.toThrow(/ENOTDIR/);
    expect(await l.list()).toEqual([backupId]); // kept in memory for the next sweep
    await expect(l.sweep('test')).rejects.toThrow(/ENOTDIR/);
    await expect(l.sweep()).rejects.toThrow(/ENOTDIR/); // queued behind nothing: the failed one let go
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    l.close();
  }
});
