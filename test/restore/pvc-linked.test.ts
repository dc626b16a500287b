// A volume restore needs room only for the files that changed. The side copy hard-links each file
// that is the same as the live one (size, mtime, mode, owner, and then its content, checked against
// the backup's bytes), so a volume more than half full, with no room for a whole second copy, is
// still restored exactly. A live file with the backup's size and time but other bytes is written
// from the backup in a second pass. A volume whose changed files do not fit fails with
// NOT_ENOUGH_SPACE, its data as it was; a drill there reads the backup back instead of failing.
// The volume is a real small filesystem (a tmpfs).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, readdir, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listWorkloads, kubeClientFor } from '../../src/kube/index.js';
import { treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let pvc = '';
let mounted = false;
const MiB = 1 << 20;
const LONG = `albums/${'a-rather-long-album-name-'.repeat(4)}/and-a-photo-name-that-takes-the-path-past-a-hundred-bytes.jpg`;

/** A small filesystem of its own for the volume, as a real PVC has; skipped where tmpfs cannot be mounted. */
async function mountSmallVolume(dir: string): Promise<boolean> {
  const aside = await mkdtemp(path.join(tmpdir(), 'wild-linked-'));
  execFileSync('cp', ['-a', `${dir}/.`, aside]);
  const mode = (await stat(dir)).mode & 0o7777;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    await rm(aside, { recursive: true, force: true });
    return false;
  }
  execFileSync('cp', ['-a', `${aside}/.`, dir]);
  await chmod(dir, mode);
  await rm(aside, { recursive: true, force: true });
  return true;
}

const write = (rel: string, bytes: number) => mkdir(path.dirname(path.join(pvc, rel)), { recursive: true }).then(() => writeFile(path.join(pvc, rel), randomBytes(bytes)));

async function freeAndTotal(): Promise<{ free: number; total: number }> {
  const st = await statfs(pvc);
  return { free: st.bavail * st.bsize, total: st.blocks * st.bsize };
}

async function log(id: string): Promise<string> {
  const op = await s.gql<{ operation: { log: string[] } }>(`query($id: ID!) { operation(id: $id) { log(last: 100) } }`, { id });
  return op.data!.operation.log.join('\n');
}

async function expectNothingLeft(): Promise<void> {
  expect((await readdir(pvc)).filter((n) => n.startsWith('.wild-backup'))).toEqual([]);
}

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
  pvc = s.sim.pvcDir('website', 'website-content');
  mounted = await mountSmallVolume(pvc);
  if (!mounted) return;
  // 120 MiB of "photos" on a 256 MiB volume: a whole second copy (and the reserve) does not fit.
  for (let i = 0; i < 40; i++) await write(`photos/IMG_${String(i).padStart(4, '0')}.jpg`, 3 * MiB);
  await write(LONG, 300_000);
  await write('shared/original.jpg', 200_000);
  await link(path.join(pvc, 'shared/original.jpg'), path.join(pvc, 'shared/same-inode.jpg'));
  await writeFile(path.join(pvc, 'empty.txt'), '');
  await write('private.key', 1000);
  await chmod(path.join(pvc, 'private.key'), 0o600);
}, 180_000);

afterAll(async () => {
  if (mounted) execFileSync('umount', ['-l', pvc]);
  await s?.close();
});

describe('a volume restore with little free space', () => {
  it('links the unchanged files, writes the changed ones, and brings the volume back exactly', async (t) => {
    if (!mounted) t.skip();
    const b = await backupLatest(s, 'website');
    const backedUp = await treeDigest(pvc);
    const pvcArtifact = (await s.app.services.backups.get(await s.app.services.store.requireInstance('test'), b.backupId))!.manifest!.artifacts.find((a) => a.kind === 'pvc')!;

    // What happens to a photo library: edits, deletions, new photos, a changed permission.
    await write('photos/IMG_0001.jpg', 2 * MiB);
    await write('photos/IMG_0002.jpg', 4 * MiB);
    for (const i of [3, 4, 5]) await rm(path.join(pvc, `photos/IMG_000${i}.jpg`));
    await write('photos/IMG_9000.jpg', 5 * MiB);
    await write('new-album/IMG_9001.jpg', MiB);
    await chmod(path.join(pvc, 'photos/IMG_0006.jpg'), 0o640);
    // Bytes changed under the same size and mtime (a bit flip, a tool that keeps times): only the
    // content check can tell. The other one is a file with two names, which is never linked: it is
    // written whatever its metadata says.
    for (const rel of ['photos/IMG_0007.jpg', 'shared/original.jpg']) {
      const f = path.join(pvc, rel);
      const st = await stat(f);
      await writeFile(f, randomBytes(st.size));
      await utimes(f, st.atime, st.mtime);
    }
    expect(await treeDigest(pvc)).not.toEqual(backedUp);

    // The premise: without linking, this restore is refused for want of room.
    const { free, total } = await freeAndTotal();
    const reserve = Math.max(64 * MiB, total * 0.05);
    expect(free, 'a whole copy does not fit').toBeLessThan(pvcArtifact.sizeBytes * 1.1 + reserve);

    const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: b.id });
    const text = await log(rec.id);
    expect(rec.status, `${JSON.stringify(rec.error)}\n${text}`).toBe('SUCCEEDED');
    expect(await treeDigest(pvc)).toEqual(backedUp);
    const [a, c] = await Promise.all([stat(path.join(pvc, 'shared/original.jpg')), stat(path.join(pvc, 'shared/same-inode.jpg'))]);
    expect(c.ino, 'the backup\'s two names of one file are one file again').toBe(a.ino);
    expect(a.nlink).toBe(2);
    // Written: the 2 edited photos, the 3 deleted, the chmod-ed one, the file with two names, then
    // the photo changed in place.
    // Kept: every other regular file of the backup (its second name of a file is a link entry).
    const m = /volume website-content: .* listing as recorded; (\d+) unchanged files \(([\d.]+) MiB\) kept from the live volume, their content checked, (\d+) written \([\d.]+ MiB\), 1 of them after their content differed from the backup's under the same size and time/.exec(text);
    expect(m, text).not.toBeNull();
    const files = Object.values(backedUp).filter((v) => v.startsWith('f ')).length;
    expect(Number(m![1])).toBe(files - 1 - 8);
    expect(Number(m![3])).toBe(8);
    await expectNothingLeft();
  }, 240_000);

  it('changed files that do not fit: NOT_ENOUGH_SPACE, the volume as it was, the app running again', async (t) => {
    if (!mounted) t.skip();
    const b = await backupLatest(s, 'website');
    // Every photo rewritten since: nothing can be linked, and 120 MiB do not fit beside them.
    for (let i = 0; i < 40; i++) if (i < 3 || i > 5) await write(`photos/IMG_${String(i).padStart(4, '0')}.jpg`, 3 * MiB);
    const before = await treeDigest(pvc);
    const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: b.id });
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code, JSON.stringify(rec.error)).toBe('NOT_ENOUGH_SPACE');
    expect(rec.error?.message).toMatch(/^pvc:website-content: not enough free space for the restored copy of volume website-content, .*: the files that differ from the live ones need more than the [\d.]+ MiB free beyond the reserve\. Nothing was changed/);
    expect(await treeDigest(pvc)).toEqual(before);
    await expectNothingLeft();
    const replicas = (await listWorkloads(kubeClientFor(s.sim.kubeconfigPath), 'website')).map((w) => w.replicas);
    expect(replicas.every((r) => r > 0), JSON.stringify(replicas)).toBe(true);
  }, 240_000);

  it('a drill on a volume without room for a scratch copy reads the backup back whole and checks it, instead of failing', async (t) => {
    if (!mounted) t.skip();
    const b = await backupLatest(s, 'website');
    const { free, total } = await freeAndTotal();
    const pvcArtifact = (await s.app.services.backups.get(await s.app.services.store.requireInstance('test'), b.backupId))!.manifest!.artifacts.find((a) => a.kind === 'pvc')!;
    expect(free, 'no room for a scratch copy').toBeLessThan(pvcArtifact.sizeBytes * 1.1 + Math.max(64 * MiB, total * 0.05));
    const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    const v = await s.gql<{ node: { verification: { ok: boolean; details: string } } }>(`query($id: ID!) { node(id: $id) { ... on Backup { verification { ok details } } } }`, { id: b.id });
    expect(v.data!.node.verification.ok).toBe(true);
    expect(v.data!.node.verification.details).toMatch(/volume website-content: \d+ files, \d+ bytes, listing as recorded; read back whole, not extracted: the volume has no room for a scratch copy beside its live data/);
    await expectNothingLeft();
  }, 240_000);
});
