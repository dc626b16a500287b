// Comparing a restored database with what its backup's manifest recorded.
import type { Readable } from 'node:stream';
import type { ArtifactRecord } from '../../engine/backup/manifest.js';
import { readBackWhole } from '../read-back.js';
import { totalKeys, type Keyspace } from './redis.js';

/** Throws when tables or (exact) row counts differ; returns a one-line summary otherwise. */
export function compareRowCounts(what: string, restored: Record<string, number>, meta: Record<string, unknown> | undefined): string {
  const recorded = (meta?.rowCounts ?? null) as Record<string, number> | null;
  const tables = Object.keys(restored).length;
  const rows = Object.values(restored).reduce((a, b) => a + b, 0);
  if (!recorded) return `${what}: ${tables} tables, ${rows} rows (no counts recorded)`;
  const missing = Object.keys(recorded).filter((t) => !(t in restored));
  if (missing.length) throw new Error(`${what}: tables missing after restore: ${missing.slice(0, 10).join(', ')}`);
  if (meta?.rowCountsExact !== false) {
    const wrong = Object.entries(recorded).filter(([t, n]) => restored[t] !== n);
    if (wrong.length) throw new Error(`${what}: row counts differ: ${wrong.slice(0, 5).map(([t, n]) => `${t} has ${restored[t]}, backup had ${n}`).join('; ')}`);
  }
  return `${what}: ${tables} tables, ${rows} rows, as recorded`;
}

/** What the redis plugin records of the keyspace at backup time. */
export interface RecordedKeyspace { keyspace?: Keyspace; keyCountsExact?: boolean }

const describeKeyspace = (k: Keyspace): string => Object.entries(k).map(([db, v]) => `db${db} ${v.keys}`).join(', ') || 'empty';

/**
 * Compares the live server's keyspace with the backup's: every key without an expiry is back in its
 * database, and no more keys with an expiry than recorded (some may have expired since).
 */
export function compareKeyspace(restored: Keyspace, meta: RecordedKeyspace | undefined): string {
  const recorded = meta?.keyspace;
  if (!recorded) return `redis: ${totalKeys(restored)} keys (${describeKeyspace(restored)}; no counts recorded)`;
  if (meta.keyCountsExact === false) return `redis: ${totalKeys(restored)} keys (${describeKeyspace(restored)}; the backup's counts were not exact)`;
  const wrong: string[] = [];
  for (const db of new Set([...Object.keys(recorded), ...Object.keys(restored)])) {
    const r = restored[db] ?? { keys: 0, expires: 0 };
    const b = recorded[db] ?? { keys: 0, expires: 0 };
    if (r.keys - r.expires !== b.keys - b.expires || r.expires > b.expires) wrong.push(`db${db} has ${r.keys} keys (${r.expires} with expiry), backup had ${b.keys} (${b.expires})`);
  }
  if (wrong.length) throw new Error(`redis: key counts differ after restart: ${wrong.slice(0, 5).join('; ')}`);
  return `redis: ${totalKeys(restored)} keys (${describeKeyspace(restored)}), as recorded`;
}

/** The last n bytes of what was `before` followed by `chunk`, copied (the chunk's memory is not held). */
function lastBytes(before: Buffer, chunk: Buffer, n: number): Buffer {
  return Buffer.from(chunk.length >= n ? chunk.subarray(chunk.length - n) : Buffer.concat([before, chunk]).subarray(-n));
}

/** How a whole-server dump tool ends its output once it has dumped everything. */
export interface DumpEnding { tool: string; ending: RegExp }

const CREATE_DATABASE = Buffer.from('\nCREATE DATABASE ');
const KEPT_END = 512;

/**
 * A restore drill's check of a whole-server dump (pg_dumpall, mysqldump --all-databases), which a
 * drill cannot load: it is for rebuilding a server, and loading it would replace every database of
 * the server. Its bytes are read back from the repository (restic authenticates each piece), and
 * they must be as many as the backup recorded and end with the tool's completion line, which it
 * writes only once it has dumped everything. The CREATE DATABASE statements are counted as they pass.
 */
export async function checkServerDump(what: string, artifact: ArtifactRecord, stream: Readable, e: DumpEnding): Promise<string> {
  let databases = 0;
  // The needle's length less one byte of the previous chunk: a statement split between two chunks.
  let carry: Buffer = Buffer.alloc(0);
  let end: Buffer = Buffer.alloc(0);
  const bytes = await readBackWhole(what, artifact, stream, {
    onChunk(chunk) {
      const seam = Buffer.concat([carry, chunk.subarray(0, CREATE_DATABASE.length - 1)]);
      if (seam.indexOf(CREATE_DATABASE) !== -1) databases++;
      for (let i = chunk.indexOf(CREATE_DATABASE); i !== -1; i = chunk.indexOf(CREATE_DATABASE, i + 1)) databases++;
      carry = lastBytes(carry, chunk, CREATE_DATABASE.length - 1);
      end = lastBytes(end, chunk, KEPT_END);
    },
  });
  if (!e.ending.test(end.toString('latin1'))) throw new Error(`${what}: the dump does not end with ${e.tool}'s completion line: it was cut short`);
  return `${what}: ${bytes} bytes read back whole, ${databases} databases, ending with ${e.tool}'s completion line (a whole-server dump is not loaded by a drill: it is for rebuilding a server)`;
}
