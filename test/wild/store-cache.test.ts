// The data directory is read through caches checked by stat: a parsed file by (mtime, size,
// inode), a directory listing by the directory's (mtime, inode). The kernel stamps mtimes from a
// coarse clock, so a change in the same tick keeps the mtime: neither cache trusts an entry read
// less than RACY_MS after its last change. The tests forge that tick with utimes.
import { mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WildStore } from '../../src/wild/store.js';
import { RACY_MS } from '../../src/wild/yaml-file.js';
import { tempDataDir, type TempDataDir } from '../helpers/data-dir.js';

let data: TempDataDir;
beforeEach(async () => { data = await tempDataDir(); });
afterEach(async () => { await data.cleanup(); });

/** Rewrites `file` in place (same inode) with `text` and gives it the mtime `at`. */
async function rewrite(file: string, text: string, at: Date): Promise<void> {
  await writeFile(file, text);
  await utimes(file, at, at);
}

describe('data-directory caches', () => {
  it('a same-size rewrite within one mtime tick is seen; a settled file is read from the cache', async () => {
    const store = new WildStore(data.dir);
    const file = path.join(data.instanceDir(), 'apps', 'blog', 'manifest.yaml');
    const original = (await import('node:fs')).readFileSync(file, 'utf8');
    const a = original.replace(/description: .*/, 'description: "AAAA"');
    const b = original.replace(/description: .*/, 'description: "BBBB"');
    expect(a.length).toBe(b.length);
    const tick = new Date();
    await rewrite(file, a, tick);
    const home = (await store.instance('home'))!;
    expect((await store.app(home, 'blog'))!.manifest!.description).toBe('AAAA');
    const ino = (await stat(file)).ino;
    await rewrite(file, b, tick); // same inode, same size, same mtime: only the content differs
    expect((await stat(file)).ino).toBe(ino);
    expect((await store.app(home, 'blog'))!.manifest!.description).toBe('BBBB');

    // Settled (changed long before it was read): the cached value is handed out, the same frozen object.
    const old = new Date(Date.now() - 10 * RACY_MS);
    await utimes(file, old, old);
    const first = (await store.app(home, 'blog'))!.manifest!;
    const second = (await store.app(home, 'blog'))!.manifest!;
    expect(second).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(() => { (first as { description: string }).description = 'changed'; }).toThrow(TypeError);
  });

  it('an app directory added within one mtime tick of the listing is listed', async () => {
    const store = new WildStore(data.dir);
    const appsDir = path.join(data.instanceDir(), 'apps');
    const tick = new Date();
    await utimes(appsDir, tick, tick);
    expect(await store.appNames('home')).not.toContain('newapp');
    await mkdir(path.join(appsDir, 'newapp'));
    await utimes(appsDir, tick, tick); // the directory's mtime as if in the same tick
    expect(await store.appNames('home')).toContain('newapp');

    // Settled: the listing is kept while the directory's mtime stays; a change moves the mtime.
    const old = new Date(Date.now() - 10 * RACY_MS);
    await utimes(appsDir, old, old);
    const listed = await store.appNames('home');
    expect(await store.appNames('home')).toBe(listed);
    await mkdir(path.join(appsDir, 'another'));
    expect(await store.appNames('home')).toContain('another');
  });
});
