// Comparing a restored database with what its backup's manifest recorded.
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
