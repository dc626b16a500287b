// Reading YAML files of the data directory safely: bounded size, bounded alias expansion,
// and errors that name the file and the path inside it.
import { stat, readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigFileError, type Issue } from '../errors.js';

/** Larger files are refused: no Wild Central config file comes near this. */
export const MAX_YAML_BYTES = 1024 * 1024;
/** YAML anchors may be reused this many times at most ("billion laughs" guard). */
const MAX_ALIAS_COUNT = 100;

export function zodIssues(error: z.ZodError): Issue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/** Parses YAML text into a plain value; throws ConfigFileError naming `file` (and line) on bad syntax. */
export function parseYamlText(text: string, file: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigFileError(
      file,
      doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}` : '', message: e.message.split('\n')[0] ?? e.message })),
    );
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    throw new ConfigFileError(file, [{ path: '', message: (err as Error).message }]);
  }
}

interface CacheEntry { mtimeMs: number; size: number; ino: number; value: unknown }
const cache = new Map<string, CacheEntry>();

/**
 * Reads and validates a YAML file. Returns undefined when the file does not exist.
 * Parsed values are cached by (mtime, size, inode), so repeated queries do not re-parse.
 */
export async function readYamlFile<T>(file: string, schema: z.ZodType<T>, displayName = file): Promise<T | undefined> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigFileError(displayName, [{ path: '', message: (err as Error).message }]);
  }
  if (!st.isFile()) throw new ConfigFileError(displayName, [{ path: '', message: 'is not a regular file' }]);
  if (st.size > MAX_YAML_BYTES) {
    throw new ConfigFileError(displayName, [{ path: '', message: `is ${st.size} bytes, larger than the ${MAX_YAML_BYTES}-byte limit` }]);
  }
  const hit = cache.get(file);
  let raw: unknown;
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size && hit.ino === st.ino) {
    raw = hit.value;
  } else {
    raw = parseYamlText(await readFile(file, 'utf8'), displayName);
    cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, value: raw });
  }
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigFileError(displayName, zodIssues(parsed.error));
  return parsed.data;
}
