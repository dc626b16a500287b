// Manifests that cannot be read (the repository's data damaged) are not read again by every query:
// a listing's failed reads wait a while before restic runs for them again. The wait counts from
// the end of the listing's last read, so reads that take long (a busy machine, a slow repository)
// do not run out one another's wait. Real restic on a local repository whose packs are damaged;
// the second manifest's read is held back (its restic starts late), as a slow read would be.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, expect, it } from 'vitest';
import { BackupCatalog } from '../../src/engine/backup/catalog.js';
import { tagsFor } from '../../src/engine/backup/tags.js';
import { ResticRepository } from '../../src/engine/restic/index.js';
import { registerSecret } from '../helpers/leaks.js';

const password = `repo-${randomBytes(8).toString('hex')}`;
registerSecret(password);
let dataDir = '';
afterAll(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// Margins for a loaded machine: timers fire late, never early.
const WAIT_MS = 4_000;
const HELD_MS = 5_000;

it("a listing's unreadable manifests are read again only after the wait, counted from its last read", async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'wb-catalog-unread-'));
  const repo = new ResticRepository({ settings: { repository: join(dataDir, 'repo'), password, credentials: {} }, dataDir });
  await repo.init();
  const ids = ['20261129T070000Z-aaaa', '20261129T070100Z-bbbb'];
  for (const backupId of ids) {
    const manifest = JSON.stringify({ backupId, padding: randomBytes(4000).toString('hex') });
    await repo.backupStdin({ stdin: Readable.from([Buffer.from(manifest)]), filename: 'website/backup.json', host: 'home', tags: tagsFor({ instance: 'home', app: 'website', backupId, artifact: { kind: 'manifest', name: 'website' } }) });
  }
  const listing = await repo.snapshots({ refresh: true });
  expect(listing).toHaveLength(2);
  // Every pack's blobs overwritten (its header kept): the files list, their contents fail to decrypt.
  const data = join(dataDir, 'repo', 'data');
  for (const f of await readdir(data, { recursive: true })) {
    const file = join(data, f);
    if (!(await stat(file)).isFile()) continue;
    const pack = await readFile(file);
    const blobs = pack.length - 4 - pack.readUInt32LE(pack.length - 4);
    await writeFile(file, Buffer.concat([Buffer.alloc(blobs, 0x55), pack.subarray(blobs)]));
  }

  // In the first listing, the second manifest's restic starts HELD_MS after the first one's read has failed.
  const first = listing.find((snap) => snap.tags.includes(`backup:${ids[0]}`))!;
  let reads = 0;
  let firstFailed!: () => void;
  const firstDone = new Promise<void>((r) => { firstFailed = r; });
  const slow = Object.create(repo) as ResticRepository;
  slow.dump = (id, file, opts) => {
    reads++;
    if (id === first.id || reads > 2) {
      const out = repo.dump(id, file, opts);
      out.once('error', () => firstFailed());
      out.once('end', () => firstFailed());
      return out;
    }
    const held = new PassThrough();
    void firstDone.then(() => new Promise((r) => setTimeout(r, HELD_MS))).then(() => {
      const out = repo.dump(id, file, opts);
      out.once('error', (err) => held.destroy(err));
      out.pipe(held);
    });
    return held;
  };

  const catalog = new BackupCatalog(join(dataDir, 'manifests'), { unreadRetryMs: WAIT_MS });
  try {
    const once = await catalog.list(slow, 'home', listing);
    expect(once.map((b) => [b.status, b.problem !== null])).toEqual([['INCOMPLETE', true], ['INCOMPLETE', true]]);
    expect(once[0]!.problem).toMatch(/could not be read: .*read again within 4 s/);
    expect(reads).toBe(2);
    // At once again: both answer from their failure. The first failed HELD_MS (> WAIT_MS) before
    // the listing's last read ended; counted from its own failure, it would be read again here.
    const again = await catalog.list(slow, 'home', listing);
    expect(again.map((b) => b.problem)).toEqual(once.map((b) => b.problem));
    expect(reads).toBe(2);
    // A query within the wait does not start it over; after it, both are read again (the
    // repository may answer by now).
    await new Promise((r) => setTimeout(r, 1_500));
    await catalog.list(slow, 'home', listing);
    expect(reads).toBe(2);
    await new Promise((r) => setTimeout(r, 3_000));
    await catalog.list(slow, 'home', listing);
    expect(reads).toBe(4);
  } finally {
    await catalog.close();
  }
}, 120_000);
