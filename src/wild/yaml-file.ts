// Reading YAML files of the data directory safely: bounded size, bounded alias expansion,
// and errors that name the file and the path inside it.
import { statSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
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

/**
 * A file changed less than this long ago is read again rather than trusted to its stat: the kernel
 * stamps mtimes from a coarse clock (a few ms), so two writes in one tick, of the same size, would
 * look like one ("racy git"). Past this age a matching (mtime, size, inode) means the same bytes.
 */
export const RACY_MS = 1000;

/** What a stat says of a file's (or directory's) content, taken just before it was read. */
export interface Stamp {
  mtimeMs: number; size: number; ino: number;
  /** Read more than RACY_MS after the last change: what was read is what this stamp describes. */
  settled: boolean;
}

export function stampOf(st: Stats): Stamp {
  return { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, settled: Date.now() - st.mtimeMs > RACY_MS };
}

/** Whether what was read under `stamp` can stand for the file as `st` shows it now. */
export function stillValid(stamp: Stamp | undefined, st: Stats): boolean {
  return !!stamp?.settled && stamp.mtimeMs === st.mtimeMs && stamp.size === st.size && stamp.ino === st.ino;
}

interface CacheEntry {
  stamp: Stamp; value: unknown; error?: ConfigFileError;
  /** The value validated by each schema it was read with (zod is not run again on an unchanged file). */
  valid: WeakMap<object, { ok: true; data: unknown } | { ok: false; error: ConfigFileError }>;
}
const cache = new Map<string, CacheEntry>();

/**
 * The file's stat, or undefined when it does not exist. Synchronous on purpose: the data directory
 * is local, a stat of a file in the dentry cache takes microseconds, and the asynchronous one costs
 * a thread-pool round trip, a promise and, for a missing file, an Error with its stack: under load
 * (hundreds of queries a second, each checking a dozen files) that was a tenth of the server's CPU
 * (docs/benchmarks/load.md). A stat per read, never a remembered one, so no write is ever missed.
 */
export function statOrUndefined(file: string): Stats | undefined {
  return statSync(file, { throwIfNoEntry: false });
}

/** Freezes a parsed value all the way down: the cache hands the same object to every reader. */
function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
  }
  return v;
}

/**
 * Reads and validates a YAML file. Returns undefined when the file does not exist.
 * Parsed values, and files that do not parse, are cached by (mtime, size, inode) once settled
 * (RACY_MS): repeated queries neither re-parse an unchanged file nor pay again for a hostile one.
 */
export async function readYamlFile<T>(file: string, schema: z.ZodType<T>, displayName = file): Promise<T | undefined> {
  let st;
  try {
    st = statOrUndefined(file);
  } catch (err) {
    throw new ConfigFileError(displayName, [{ path: '', message: (err as Error).message }]);
  }
  if (!st) return undefined;
  if (!st.isFile()) throw new ConfigFileError(displayName, [{ path: '', message: 'is not a regular file' }]);
  if (st.size > MAX_YAML_BYTES) {
    throw new ConfigFileError(displayName, [{ path: '', message: `is ${st.size} bytes, larger than the ${MAX_YAML_BYTES}-byte limit` }]);
  }
  let hit = cache.get(file);
  if (hit && stillValid(hit.stamp, st)) {
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
      if (err instanceof ConfigFileError) cache.set(file, { stamp: stampOf(st), value: undefined, error: err, valid: new WeakMap() });
      throw err;
    }
    hit = { stamp: stampOf(st), value: raw, valid: new WeakMap() };
    cache.set(file, hit);
  }
  let checked = hit.valid.get(schema);
  if (!checked) {
    const parsed = schema.safeParse(hit.value ?? {});
    checked = parsed.success ? { ok: true, data: deepFreeze(parsed.data) } : { ok: false, error: new ConfigFileError(displayName, zodIssues(parsed.error)) };
    hit.valid.set(schema, checked);
  }
  if (!checked.ok) throw checked.error;
  // Every reader gets the same frozen value (a copy per query was a third of this function's cost);
  // code that wants to change it edits the file (writer.ts), never the value.
  return checked.data as T;
}
