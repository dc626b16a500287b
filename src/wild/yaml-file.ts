// Reading YAML files of the data directory safely: bounded size, bounded alias expansion,
// and errors that name the file and the path inside it.
import { open, stat } from 'node:fs/promises';
import { LineCounter, isMap, isScalar, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigFileError, type Issue } from '../errors.js';

/** Larger files are refused: no Wild Central config file comes near this. */
export const MAX_YAML_BYTES = 1024 * 1024;
/** YAML anchors may be reused this many times at most ("billion laughs" guard). */
const MAX_ALIAS_COUNT = 100;

export function zodIssues(error: z.ZodError): Issue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/**
 * Duplicate keys, found in one pass. yaml's own `uniqueKeys` compares every key with every earlier
 * key of its map: a 1 MiB file of 100,000 keys held the event loop (every query) for minutes.
 */
function duplicateKeys(doc: Document, lines: LineCounter): Issue[] {
  const issues: Issue[] = [];
  visit(doc, {
    Map(_key, map) {
      if (!isMap(map)) return;
      const seen = new Set<string>();
      for (const pair of map.items) {
        const k = pair.key;
        // Keys that are collections are rare and cannot collide with a scalar: not compared.
        if (!isScalar(k)) continue;
        const id = `${typeof k.value}:${String(k.value)}`;
        if (seen.has(id)) {
          const at = k.range ? lines.linePos(k.range[0]) : undefined;
          issues.push({ path: at ? `line ${at.line}` : '', message: `Map keys must be unique ("${String(k.value).slice(0, 64)}" repeats)` });
          if (issues.length >= 10) return visit.BREAK;
        }
        seen.add(id);
      }
      return undefined;
    },
  });
  return issues;
}

/** Parses YAML text into a plain value; throws ConfigFileError naming `file` (and line) on bad syntax. */
export function parseYamlText(text: string, file: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter });
  if (doc.errors.length > 0) {
    throw new ConfigFileError(
      file,
      doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}` : '', message: e.message.split('\n')[0] ?? e.message })),
    );
  }
  const dups = duplicateKeys(doc, lineCounter);
  if (dups.length > 0) throw new ConfigFileError(file, dups);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    const message = err instanceof RangeError ? 'is nested too deeply to read' : (err as Error).message;
    throw new ConfigFileError(file, [{ path: '', message }]);
  }
}

/** Reads at most `max` bytes; a file that grew past the limit since stat() is refused, not read whole. */
async function readBounded(file: string, max: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > max) throw new Error(`is larger than the ${max}-byte limit`);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    await fh.close();
  }
}

interface CacheEntry {
  mtimeMs: number; size: number; ino: number; value: unknown; error?: ConfigFileError;
  /** The value validated by each schema it was read with (zod is not run again on an unchanged file). */
  valid: WeakMap<object, { ok: true; data: unknown } | { ok: false; error: ConfigFileError }>;
}
const cache = new Map<string, CacheEntry>();

/**
 * One stat() of a file at a time: concurrent queries (hundreds under load) share it instead of
 * queueing hundreds of stats on libuv's four threads. Our own writes end the sharing
 * (`forgetStat`), so a query after a write always sees it.
 */
const stats = new Map<string, Promise<import('node:fs').Stats>>();

export function sharedStat(file: string): Promise<import('node:fs').Stats> {
  let p = stats.get(file);
  if (!p) {
    p = stat(file);
    stats.set(file, p);
    const done = () => { if (stats.get(file) === p) stats.delete(file); };
    p.then(done, done);
  }
  return p;
}

/** A write of `file` just finished: the next read stats it afresh. */
export function forgetStat(file: string): void {
  stats.delete(file);
}

/**
 * Reads and validates a YAML file. Returns undefined when the file does not exist.
 * Parsed values, and files that do not parse, are cached by (mtime, size, inode): repeated queries
 * neither re-parse an unchanged file nor pay again for a hostile one.
 */
export async function readYamlFile<T>(file: string, schema: z.ZodType<T>, displayName = file): Promise<T | undefined> {
  let st;
  try {
    st = await sharedStat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigFileError(displayName, [{ path: '', message: (err as Error).message }]);
  }
  if (!st.isFile()) throw new ConfigFileError(displayName, [{ path: '', message: 'is not a regular file' }]);
  if (st.size > MAX_YAML_BYTES) {
    throw new ConfigFileError(displayName, [{ path: '', message: `is ${st.size} bytes, larger than the ${MAX_YAML_BYTES}-byte limit` }]);
  }
  let hit = cache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size && hit.ino === st.ino) {
    if (hit.error) throw hit.error;
  } else {
    let raw: unknown;
    try {
      let text: string;
      try {
        text = await readBounded(file, MAX_YAML_BYTES);
      } catch (err) {
        throw new ConfigFileError(displayName, [{ path: '', message: (err as Error).message }]);
      }
      raw = parseYamlText(text, displayName);
    } catch (err) {
      if (err instanceof ConfigFileError) cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, value: undefined, error: err, valid: new WeakMap() });
      throw err;
    }
    hit = { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, value: raw, valid: new WeakMap() };
    cache.set(file, hit);
  }
  let checked = hit.valid.get(schema);
  if (!checked) {
    const parsed = schema.safeParse(hit.value ?? {});
    checked = parsed.success ? { ok: true, data: parsed.data } : { ok: false, error: new ConfigFileError(displayName, zodIssues(parsed.error)) };
    hit.valid.set(schema, checked);
  }
  if (!checked.ok) throw checked.error;
  // Callers may change what they get: each gets its own copy of the cached value.
  return structuredClone(checked.data) as T;
}
