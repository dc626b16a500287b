// The linked side copy of a volume restore, run with busybox's tools as the helper pod (alpine) runs
// it: the live listing (find, stat), the links tar makes through the side directory's symlink to the
// volume root (a long name takes a GNU long-link header), the content check (sha256sum -c, awk) and
// the second pass for a file whose bytes changed under the same size and time. The simulated
// cluster runs GNU tools; this runs the same scripts and streams under busybox.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHECK_LINKED, LIST_LIVE, LIVE_LINK, checkLine, liveLine } from '../../src/plugins/volumes/pvc-restore.js';
import { TarLinker } from '../../src/plugins/volumes/tar-link.js';
import { treeDigest } from '../helpers/compare.js';

let dir = '';
let bin = '';
const vol = () => path.join(dir, 'vol');
const LONG = `albums/${'an-album-with-a-long-name-'.repeat(4)}/a-photo-whose-path-is-longer-than-a-hundred-bytes.jpg`;
const hasBusybox = (() => { try { execFileSync('busybox', ['true']); return true; } catch { return false; } })();

/** Runs a script with busybox's sh and applets only (PATH holds nothing else). */
function bb(script: string, args: string[], stdin?: Readable): { out: Promise<string[]>; done: Promise<void> } {
  const p = spawn(path.join(bin, 'sh'), ['-c', script, 'wild-backup', ...args], { env: { PATH: bin }, stdio: ['pipe', 'pipe', 'inherit'] });
  if (stdin) stdin.pipe(p.stdin); else p.stdin.end();
  const lines: string[] = [];
  const out = (async () => { for await (const l of createInterface({ input: p.stdout })) lines.push(l); return lines; })();
  const done = new Promise<void>((resolve, reject) => p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`busybox ${script.slice(0, 40)}: exit ${code}`)))));
  return { out, done };
}

async function busyboxTar(archive: Readable, into: string): Promise<void> {
  const t = bb('tar -x -p -f - -C "$1"', [into], archive);
  await t.done;
}

beforeAll(async () => {
  if (!hasBusybox) return;
  dir = await mkdtemp(path.join(tmpdir(), 'wild-link-bb-'));
  bin = path.join(dir, 'bin');
  await mkdir(bin);
  execFileSync('busybox', ['--install', '-s', bin]);
});
afterAll(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

it.skipIf(!hasBusybox)('busybox: live listing, links through the symlink, content check and second pass restore the volume exactly', async () => {
  const v = vol();
  const put = async (rel: string, n: number) => { await mkdir(path.dirname(path.join(v, rel)), { recursive: true }); await writeFile(path.join(v, rel), randomBytes(n)); };
  for (let i = 0; i < 6; i++) await put(`photos/p${i}.jpg`, 50_000 + i);
  await put(LONG, 70_000);
  await put('pair/a.bin', 10_000);
  await link(path.join(v, 'pair/a.bin'), path.join(v, 'pair/b.bin'));
  await writeFile(path.join(v, 'empty'), '');
  await chmod(path.join(v, 'photos/p5.jpg'), 0o640);
  // The backup: busybox tar of the volume, as an alpine app pod makes it.
  const archive = execFileSync(path.join(bin, 'tar'), ['-c', '-f', '-', '-C', v, '.'], { env: { PATH: bin }, maxBuffer: 64 << 20 });
  const backedUp = await treeDigest(v);

  // Since: one photo edited, one changed under the same size and mtime, the pair too (its second
  // name gone: a file with other names is never linked, see below).
  await put('photos/p1.jpg', 1234);
  await rm(path.join(v, 'pair/b.bin'));
  await put('dup/x.bin', 5000);
  await link(path.join(v, 'dup/x.bin'), path.join(v, 'dup/y.bin'));
  for (const rel of ['photos/p2.jpg', 'pair/a.bin']) {
    const f = path.join(v, rel);
    const st = await stat(f);
    await writeFile(f, randomBytes(st.size));
    await utimes(f, st.atime, st.mtime);
  }

  const listing = bb(LIST_LIVE, [v, '*\n*', '*\\\\*']);
  await listing.done;
  const live = new Map<string, string>();
  for (const l of await listing.out) { const f = liveLine(l); if (f) live.set(f.name, f.meta); }
  // dup/x.bin and dup/y.bin, one file with two names, are left out.
  expect([...live.keys()].sort()).toEqual([LONG, 'empty', 'pair/a.bin', ...[0, 1, 2, 3, 4, 5].map((i) => `photos/p${i}.jpg`)].sort());

  const restoreDir = path.join(v, '.wild-backup-restore-x');
  await mkdir(restoreDir);
  await symlink('..', path.join(restoreDir, LIVE_LINK));
  const checklist = new PassThrough();
  const linker = new TarLinker({ live, via: LIVE_LINK, checklist, onEnd: () => checklist.end('wild-backup-end\n') });
  const check = bb(CHECK_LINKED, [v], checklist);
  await busyboxTar(Readable.from([archive]).pipe(linker), restoreDir);
  await check.done;
  const results = (await check.out).map(checkLine).filter((c) => c !== null);
  // Linked: p0, p2, p3, p4, p5, the long one, a.bin, empty (p1 was edited). p2 and a.bin differ.
  expect(linker.stats.linkedFiles).toBe(8);
  expect(results).toEqual(expect.arrayContaining([{ differs: 'photos/p2.jpg' }, { differs: 'pair/a.bin' }, { matched: 6 }]));
  expect(results).toHaveLength(3);
  expect((await stat(path.join(restoreDir, LONG))).ino, 'the long name is a link to the live file').toBe((await stat(path.join(v, LONG))).ino);
  await rm(path.join(restoreDir, LIVE_LINK));

  // The second pass: the files that differ, and the backup's other name of one of them.
  for (const rel of ['photos/p2.jpg', 'pair/a.bin', 'pair/b.bin']) await rm(path.join(restoreDir, rel));
  await busyboxTar(Readable.from([archive]).pipe(new TarLinker({ only: new Set(['photos/p2.jpg', 'pair/a.bin']) })), restoreDir);
  expect(await treeDigest(restoreDir)).toEqual(backedUp);
  expect((await stat(path.join(restoreDir, 'pair/b.bin'))).ino).toBe((await stat(path.join(restoreDir, 'pair/a.bin'))).ino);
  expect((await stat(path.join(restoreDir, 'photos/p0.jpg'))).ino, 'unchanged: the live file itself').toBe((await stat(path.join(v, 'photos/p0.jpg'))).ino);
}, 60_000);
