// A streamed tar of named in-memory entries and small local files (config artifacts only:
// these are kilobytes; volumes and databases never pass through here).
import { readdir, readFile, lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pack } from 'tar-stream';

export interface TarEntry {
  name: string;
  content: Buffer | string;
  mode?: number;
  mtime?: Date;
}

/** Files of a directory tree, as entries under `prefix/` (symlinks and special files are skipped). */
export async function directoryEntries(dir: string, prefix: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  async function walk(rel: string): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(path.join(dir, rel))).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const r = path.join(rel, n);
      const st = await lstat(path.join(dir, r));
      if (st.isDirectory()) await walk(r);
      else if (st.isFile()) out.push({ name: path.posix.join(prefix, r.split(path.sep).join('/')), content: await readFile(path.join(dir, r)), mode: st.mode & 0o777, mtime: st.mtime });
    }
  }
  await walk('');
  return out;
}

export function tarStream(entries: TarEntry[]): Readable {
  const p = pack();
  void (async () => {
    try {
      for (const e of entries) {
        await new Promise<void>((resolve, reject) =>
          p.entry({ name: e.name, mode: e.mode ?? 0o600, mtime: e.mtime ?? new Date(0) }, e.content, (err) => (err ? reject(err) : resolve())),
        );
      }
      p.finalize();
    } catch (err) {
      p.destroy(err as Error);
    }
  })();
  return p as unknown as Readable;
}
