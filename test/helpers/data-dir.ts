// Builds throwaway Wild Central data directories for tests.
import { cp, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scanDataDir } from './leaks.js';

export const EXAMPLE_DATA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/data');

export interface TempDataDir {
  dir: string;
  instanceDir(name?: string): string;
  write(rel: string, text: string, mode?: number): Promise<string>;
  cleanup(): Promise<void>;
}

/** A copy of examples/data (instance "home") in a temp dir, without any server state. */
export async function tempDataDir(opts: { fromExample?: boolean } = {}): Promise<TempDataDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wild-data-'));
  if (opts.fromExample ?? true) {
    await cp(path.join(EXAMPLE_DATA, 'instances'), path.join(dir, 'instances'), {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}operations`),
    });
  } else {
    await mkdir(path.join(dir, 'instances'), { recursive: true });
  }
  return {
    dir,
    instanceDir: (name = 'home') => path.join(dir, 'instances', name),
    async write(rel, text, mode = 0o644) {
      const file = path.join(dir, rel);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, text, { mode });
      return file;
    },
    async cleanup() {
      // What the server left behind (operation records, logs, config) must hold no secret.
      scanDataDir(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
