// backup.json: what a complete backup holds, written as the last snapshot of the backup.
// Verification and restore rely on it; a backup without it is incomplete.
import { z } from 'zod';

export const artifactRecordSchema = z.object({
  kind: z.string(),
  name: z.string(),
  /** Path inside the snapshot, without the leading "/". */
  filename: z.string(),
  /** As restic reported it: restic 0.14 prints an 8-hex short id; the catalog resolves it among the backup's snapshots. */
  snapshotId: z.string(),
  sizeBytes: z.number().nonnegative(),
  addedBytes: z.number().nonnegative().nullable(),
  /** Plugin-specific facts for verification: server version, per-table row counts, file count... */
  meta: z.record(z.string(), z.unknown()).default({}),
});
export type ArtifactRecord = z.infer<typeof artifactRecordSchema>;

export const backupManifestSchema = z.object({
  format: z.literal('wild-backup/v1'),
  backupId: z.string(),
  kind: z.enum(['APP', 'CLUSTER']),
  instance: z.string(),
  app: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string(),
  /** The operation that made it. */
  operationId: z.string().nullable(),
  /** Why it was made: "manual", "schedule", "safety" (before a restore). */
  reason: z.string().default('manual'),
  artifacts: z.array(artifactRecordSchema),
  /** What was deliberately left out, and why (e.g. a redis cache). */
  skipped: z.array(z.object({ kind: z.string(), name: z.string(), reason: z.string() })).default([]),
});
export type BackupManifest = z.infer<typeof backupManifestSchema>;

/** backup.json's bytes as the backup writes them (and so its size, for the manifest's own artifact). */
export function manifestBytes(manifest: BackupManifest): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
}

/** A written backup in a line, for its operation's message: what it holds and what it left out. */
export function backupSummary(m: BackupManifest): string {
  const n = m.artifacts.length;
  const bytes = m.artifacts.reduce((sum, a) => sum + a.sizeBytes, 0);
  const skipped = m.skipped.length > 0 ? `; skipped ${m.skipped.map((x) => `${x.kind}:${x.name}`).join(', ')}` : '';
  const warned = m.artifacts.filter((a) => artifactWarnings(a).length > 0).map((a) => `${a.kind}:${a.name}`);
  return `backup ${m.backupId}: ${n} ${n === 1 ? 'artifact' : 'artifacts'}, ${bytes} bytes${skipped}${warned.length > 0 ? `; warnings for ${warned.join(', ')} (see the log)` : ''}`;
}

/** A list of lines an artifact's source recorded in its meta, strings only. */
function metaLines(a: ArtifactRecord, key: 'warnings' | 'notes'): string[] {
  const v = a.meta[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** What a source recorded as worth knowing of a whole artifact (`meta.warnings`: files that changed while read). */
export const artifactWarnings = (a: ArtifactRecord): string[] => metaLines(a, 'warnings');

/** What the backup of an artifact did otherwise than usual, worth a line in the log (`meta.notes`). */
export const artifactNotes = (a: ArtifactRecord): string[] => metaLines(a, 'notes');

/** Manifests stay small; a larger file is not ours. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
