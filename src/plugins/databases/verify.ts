// Comparing a restored database with what its backup's manifest recorded.

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
