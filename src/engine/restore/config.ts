// Restoring an app's `config` artifact: its apps.<app> slices go back into config.yaml and
// secrets.yaml (comments and other apps untouched); the previous text is kept to undo. Its app
// directory comes back too where the app has none, or a broken one (`restoreAppDir`).
import { chmod, mkdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { parse } from 'yaml';
import type { WildStore } from '../../wild/store.js';
import { setPath, updateYamlFile, writeFileAtomic } from '../../wild/writer.js';

/** A regular file of a config artifact's tar. */
export interface TarFile {
  content: Buffer;
  mode: number;
  mtime: Date;
}

/** The regular files of a config artifact's tar, each whole (it is small: bounded by `limit`). */
export async function tarFiles(stream: Readable, limit = 8 << 20): Promise<Map<string, TarFile>> {
  const ex = extract();
  const files = new Map<string, TarFile>();
  let total = 0;
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c: Buffer) => {
        total += c.length;
        if (total > limit) ex.destroy(new Error('config artifact larger than expected'));
        chunks.push(c);
      });
      body.on('end', () => {
        if (header.type === 'file') files.set(header.name, { content: Buffer.concat(chunks), mode: (header.mode ?? 0o644) & 0o777, mtime: header.mtime ?? new Date(0) });
        next();
      });
      // The extractor destroys an open entry with its own error (a tar cut short): heard here too.
      body.on('error', reject);
      body.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  stream.pipe(ex);
  stream.once('error', (e) => ex.destroy(e));
  await done;
  return files;
}

export interface ConfigUndo {
  undo(): Promise<void>;
}

/** A file of the app's directory, by its path inside that directory. */
export interface AppDirFile extends TarFile {
  path: string;
}

/**
 * The app's slices of a config artifact's config.yaml and secrets.yaml (undefined: not in it), and
 * its app directory's files (the artifact's `app/` entries).
 */
export interface AppConfigSlices {
  config: unknown;
  secrets: unknown;
  dir: AppDirFile[];
}

/**
 * Reads and parses the app's slices from a config artifact, writing nothing: a restore reads them
 * before it swaps anything in, so a bad artifact fails while there is nothing to undo.
 */
export async function readAppConfig(app: string, stream: Readable): Promise<AppConfigSlices> {
  const files = await tarFiles(stream);
  const slice = (name: string) => {
    const text = files.get(name)?.content.toString('utf8');
    const doc = text ? (parse(text) as { apps?: Record<string, unknown> }) : undefined;
    return doc?.apps?.[app];
  };
  const dir: AppDirFile[] = [];
  for (const [name, f] of files) {
    if (!name.startsWith('app/')) continue;
    const rel = path.posix.normalize(name.slice('app/'.length));
    // Only paths inside the directory: a damaged or hostile artifact writes nowhere else.
    if (rel === '.' || path.posix.isAbsolute(rel) || rel.split('/').some((p) => p === '' || p === '..')) {
      throw new Error(`config artifact has an app file outside the app directory: ${JSON.stringify(name.slice(0, 200))}`);
    }
    dir.push({ path: rel, ...f });
  }
  return { config: slice('config.yaml'), secrets: slice('secrets.yaml'), dir };
}

/** Writes the slices into the instance's files; a write that fails undoes those before it. */
export async function applyAppConfig(store: WildStore, instance: string, app: string, slices: AppConfigSlices): Promise<ConfigUndo> {
  const configFile = store.paths.configFile(instance);
  const secretsFile = store.paths.secretsFile(instance);
  const before = { config: await readFile(configFile, 'utf8'), secrets: await readFile(secretsFile, 'utf8').catch(() => null) };
  const undo: ConfigUndo = {
    async undo() {
      await writeFileAtomic(configFile, before.config, 0o644);
      if (before.secrets !== null) await writeFileAtomic(secretsFile, before.secrets, 0o600);
    },
  };
  try {
    if (slices.config !== undefined) await updateYamlFile(configFile, (doc) => setPath(doc, ['apps', app], slices.config), 0o644);
    if (slices.secrets !== undefined) await updateYamlFile(secretsFile, (doc) => setPath(doc, ['apps', app], slices.secrets), 0o600);
  } catch (err) {
    await undo.undo().catch(() => undefined);
    throw err;
  }
  return undo;
}

/**
 * Brings the app's directory back from its files: written beside it (`.<app>.restoring-<suffix>`,
 * a name no app can have), then renamed into place; a directory already there (a broken one) is
 * kept aside until `commit`, and `undo` puts it back. The caller has checked that `files` holds
 * the app's manifest.yaml.
 */
export async function restoreAppDir(appsDir: string, app: string, files: AppDirFile[], suffix: string): Promise<ConfigUndo & { commit(): Promise<void> }> {
  const live = path.join(appsDir, app);
  const fresh = path.join(appsDir, `.${app}.restoring-${suffix}`);
  const aside = path.join(appsDir, `.${app}.replaced-${suffix}`);
  await mkdir(fresh, { recursive: true, mode: 0o755 });
  let state: 'fresh' | 'swapped' = 'fresh';
  let kept = false;
  try {
    for (const f of files) {
      const to = path.join(fresh, ...f.path.split('/'));
      await mkdir(path.dirname(to), { recursive: true, mode: 0o755 });
      await writeFile(to, f.content, { mode: f.mode, flag: 'wx' });
      await chmod(to, f.mode); // as recorded, whatever the umask
      await utimes(to, f.mtime, f.mtime);
    }
    try {
      await rename(live, aside);
      kept = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await rename(fresh, live);
    state = 'swapped';
  } catch (err) {
    if (kept) await rename(aside, live).catch(() => undefined);
    await rm(fresh, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  return {
    async undo() {
      if (state !== 'swapped') return;
      await rm(live, { recursive: true, force: true });
      if (kept) await rename(aside, live);
      state = 'fresh';
    },
    async commit() {
      if (kept) await rm(aside, { recursive: true, force: true });
    },
  };
}
