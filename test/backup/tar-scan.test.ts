// The tar scanner against GNU tar itself: file and byte counts and listing hashes that change
// exactly when names, modes, sizes or mtimes do.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, chmod, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarScanner } from '../../src/plugins/volumes/tar-scan.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wild-tarscan-'));
  await mkdir(path.join(dir, 'a/b/c'), { recursive: true });
  for (let i = 0; i < 50; i++) await writeFile(path.join(dir, 'a', `f${i}.txt`), 'x'.repeat(i * 100));
  await writeFile(path.join(dir, 'a/b/c', `${'long-name-'.repeat(20)}.bin`), Buffer.alloc(70_000, 7));
  await writeFile(path.join(dir, 'empty'), '');
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

async function scan(extra: string[] = []) {
  const scanner = new TarScanner();
  const tar = spawn('tar', ['-c', '-f', '-', ...extra, '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await pipeline(tar.stdout, scanner, new Writable({ write: (_c, _e, cb) => cb() }));
  return scanner.result();
}

describe('TarScanner', () => {
  it('counts files, directories and bytes of a GNU tar, long names included', async () => {
    const r = await scan();
    expect(r.files).toBe(52);
    expect(r.directories).toBe(4); // ., a, a/b, a/b/c
    expect(r.bytes).toBe(Array.from({ length: 50 }, (_, i) => i * 100).reduce((a, b) => a + b, 0) + 70_000);
  });

  it('gives the same listing hash for the same tree, in GNU and pax formats alike, and a new one on any change', async () => {
    const a = await scan();
    expect((await scan()).listingSha256).toBe(a.listingSha256);
    expect((await scan(['--format=pax'])).listingSha256).toBe(a.listingSha256);
    await chmod(path.join(dir, 'a/f1.txt'), 0o600);
    const b = await scan();
    expect(b.listingSha256).not.toBe(a.listingSha256);
    await utimes(path.join(dir, 'a/f2.txt'), new Date(1_000_000_000_000), new Date(1_000_000_000_000));
    expect((await scan()).listingSha256).not.toBe(b.listingSha256);
    const { stdout } = await promisify(execFile)('tar', ['--version']);
    expect(stdout).toContain('GNU tar');
  });
});
