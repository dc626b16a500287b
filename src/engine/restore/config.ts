// Restoring an app's `config` artifact: its apps.<app> slices go back into config.yaml and
// secrets.yaml (comments and other apps untouched); the previous text is kept to undo.
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { parse } from 'yaml';
import type { WildStore } from '../../wild/store.js';
import { setPath, updateYamlFile, writeFileAtomic } from '../../wild/writer.js';

/** The files of a config artifact's tar, each whole (it is small: bounded by `limit`). */
export async function tarFiles(stream: Readable, limit = 8 << 20): Promise<Map<string, Buffer>> {
  const ex = extract();
  const files = new Map<string, Buffer>();
  let total = 0;
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c: Buffer) => {
        total += c.length;
        if (total > limit) ex.destroy(new Error('config artifact larger than expected'));
        chunks.push(c);
      });
      body.on('end', () => { files.set(header.name, Buffer.concat(chunks)); next(); });
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

/** The app's slices of a config artifact's config.yaml and secrets.yaml (undefined: not in it). */
export interface AppConfigSlices {
  config: unknown;
  secrets: unknown;
}

/**
 * Reads and parses the app's slices from a config artifact, writing nothing: a restore reads them
 * before it swaps anything in, so a bad artifact fails while there is nothing to undo.
 */
export async function readAppConfig(app: string, stream: Readable): Promise<AppConfigSlices> {
  const files = await tarFiles(stream);
  const slice = (name: string) => {
    const text = files.get(name)?.toString('utf8');
    const doc = text ? (parse(text) as { apps?: Record<string, unknown> }) : undefined;
    return doc?.apps?.[app];
  };
  return { config: slice('config.yaml'), secrets: slice('secrets.yaml') };
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
