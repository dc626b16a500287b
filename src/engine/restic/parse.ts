// restic's --json output, parsed line by line into typed values (snake_case in, camelCase out).
// Schemas are loose: newer restic adds fields, older lacks some; only what we use is required.
import { z } from 'zod';

const snapshotSchema = z.looseObject({
  id: z.string(),
  short_id: z.string().optional(),
  time: z.string(),
  hostname: z.string().default(''),
  username: z.string().optional(),
  tags: z.array(z.string()).nullish(),
  paths: z.array(z.string()).nullish(),
  tree: z.string().optional(),
  parent: z.string().optional(),
});

export interface Snapshot {
  id: string;
  shortId: string;
  /** ISO-8601 as restic wrote it (nanoseconds, UTC or local offset). */
  time: string;
  hostname: string;
  username?: string;
  tags: string[];
  paths: string[];
  tree?: string;
  parent?: string;
}

function toSnapshot(s: z.infer<typeof snapshotSchema>): Snapshot {
  return {
    id: s.id,
    shortId: s.short_id ?? s.id.slice(0, 8),
    time: s.time,
    hostname: s.hostname,
    username: s.username,
    tags: s.tags ?? [],
    paths: s.paths ?? [],
    tree: s.tree,
    parent: s.parent,
  };
}

export function parseSnapshots(json: unknown): Snapshot[] {
  return z.array(snapshotSchema).nullable().parse(json)?.map(toSnapshot) ?? [];
}

const backupStatusSchema = z.looseObject({
  message_type: z.literal('status'),
  seconds_elapsed: z.number().optional(),
  seconds_remaining: z.number().optional(),
  percent_done: z.number().optional(),
  total_files: z.number().optional(),
  files_done: z.number().optional(),
  total_bytes: z.number().optional(),
  bytes_done: z.number().optional(),
  error_count: z.number().optional(),
  current_files: z.array(z.string()).nullish(),
});

const backupSummarySchema = z.looseObject({
  message_type: z.literal('summary'),
  files_new: z.number().default(0),
  files_changed: z.number().default(0),
  files_unmodified: z.number().default(0),
  data_blobs: z.number().default(0),
  tree_blobs: z.number().default(0),
  data_added: z.number(),
  data_added_packed: z.number().optional(),
  total_files_processed: z.number().default(0),
  total_bytes_processed: z.number(),
  total_duration: z.number().default(0),
  snapshot_id: z.string().optional(),
});

const backupErrorSchema = z.looseObject({
  message_type: z.literal('error'),
  error: z.unknown().optional(),
  during: z.string().optional(),
  item: z.string().optional(),
});

/** restic's periodic backup status, plus the bytes we have fed to its stdin. */
export interface BackupProgress {
  bytesDone: number;
  /** Bytes read from the source stream so far (ours; restic's may lag behind). */
  bytesRead: number;
  secondsElapsed?: number;
  percentDone?: number;
  currentFiles: string[];
}

export interface BackupSummary {
  /** The full 64-hex snapshot id (restic 0.14 prints a short one; the client resolves it). */
  snapshotId: string;
  /** Bytes the repository grew by, before compression (restic's data_added). */
  dataAdded: number;
  /** Bytes after compression, where restic reports it (>= 0.15). */
  dataAddedPacked?: number;
  totalBytesProcessed: number;
  totalFilesProcessed: number;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dataBlobs: number;
  treeBlobs: number;
  durationSeconds: number;
  /** When its restic was started (ISO): restic's own time for the snapshot is a few milliseconds later. */
  startedAt: string;
}

export type BackupMessage =
  | { type: 'status'; status: z.infer<typeof backupStatusSchema> }
  | { type: 'summary'; summary: Omit<BackupSummary, 'snapshotId' | 'startedAt'> & { snapshotId?: string } }
  | { type: 'error'; message: string }
  | { type: 'other' };

export function parseBackupLine(json: unknown): BackupMessage {
  const type = (json as { message_type?: unknown } | null)?.message_type;
  if (type === 'status') {
    const r = backupStatusSchema.safeParse(json);
    return r.success ? { type: 'status', status: r.data } : { type: 'other' };
  }
  if (type === 'summary') {
    // Parsed inside restic's stdout listener, where a throw would end the server: a summary it
    // cannot read is an error of the backup (which then finished without a snapshot).
    const r = backupSummarySchema.safeParse(json);
    if (!r.success) {
      return { type: 'error', message: `unreadable summary (${r.error.issues.map((i) => i.path.join('.') || 'summary').join(', ')})` };
    }
    const s = r.data;
    return {
      type: 'summary',
      summary: {
        snapshotId: s.snapshot_id,
        dataAdded: s.data_added,
        dataAddedPacked: s.data_added_packed,
        totalBytesProcessed: s.total_bytes_processed,
        totalFilesProcessed: s.total_files_processed,
        filesNew: s.files_new,
        filesChanged: s.files_changed,
        filesUnmodified: s.files_unmodified,
        dataBlobs: s.data_blobs,
        treeBlobs: s.tree_blobs,
        durationSeconds: s.total_duration,
      },
    };
  }
  if (type === 'error') {
    const r = backupErrorSchema.safeParse(json);
    const err = r.success ? r.data.error : undefined;
    const message = typeof err === 'string' ? err : JSON.stringify(err ?? json);
    return { type: 'error', message: `${r.success && r.data.item ? `${r.data.item}: ` : ''}${message}` };
  }
  return { type: 'other' };
}

const statsSchema = z.looseObject({
  total_size: z.number(),
  total_file_count: z.number().optional(),
  total_blob_count: z.number().optional(),
  snapshots_count: z.number().optional(),
  total_uncompressed_size: z.number().optional(),
  compression_ratio: z.number().optional(),
  compression_progress: z.number().optional(),
  compression_space_saving: z.number().optional(),
});

export type StatsMode = 'raw-data' | 'restore-size';

export interface ResticStats {
  mode: StatsMode;
  /** raw-data: bytes stored (after compression); restore-size: bytes a full restore would write. */
  totalSize: number;
  totalFileCount?: number;
  totalBlobCount?: number;
  snapshotsCount: number;
  /** raw-data on restic >= 0.15 only. */
  totalUncompressedSize?: number;
  compressionRatio?: number;
}

export function parseStats(mode: StatsMode, json: unknown): ResticStats {
  const s = statsSchema.parse(json);
  return {
    mode,
    totalSize: s.total_size,
    totalFileCount: s.total_file_count,
    totalBlobCount: s.total_blob_count,
    snapshotsCount: s.snapshots_count ?? 0,
    totalUncompressedSize: s.total_uncompressed_size,
    compressionRatio: s.compression_ratio,
  };
}

const forgetGroupSchema = z.looseObject({
  tags: z.array(z.string()).nullish(),
  host: z.string().optional(),
  paths: z.array(z.string()).nullish(),
  keep: z.array(snapshotSchema).nullish(),
  remove: z.array(snapshotSchema).nullish(),
  reasons: z
    .array(z.looseObject({ snapshot: z.looseObject({ id: z.string().optional(), time: z.string() }).optional(), matches: z.array(z.string()).nullish() }))
    .nullish(),
});

export interface ForgetGroup {
  tags: string[];
  host: string;
  paths: string[];
  keep: Snapshot[];
  remove: Snapshot[];
  /** Why each kept snapshot is kept ("last snapshot", "daily snapshot", ...), in keep's order. */
  reasons: string[][];
}

export function parseForget(json: unknown): ForgetGroup[] {
  return (z.array(forgetGroupSchema).nullable().parse(json) ?? []).map((g) => ({
    tags: g.tags ?? [],
    host: g.host ?? '',
    paths: g.paths ?? [],
    keep: (g.keep ?? []).map(toSnapshot),
    remove: (g.remove ?? []).map(toSnapshot),
    reasons: (g.reasons ?? []).map((r) => r.matches ?? []),
  }));
}

/** `init`: restic >= 0.15 prints {"message_type":"initialized","id":...}; 0.14 prints text. */
export function parseInitOutput(stdout: string): { repositoryId?: string } {
  for (const line of stdout.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('{')) {
      try {
        const obj = JSON.parse(trimmed) as { id?: unknown };
        if (typeof obj.id === 'string') return { repositoryId: obj.id };
      } catch {
        // not JSON after all
      }
    }
    const m = /created restic repository ([0-9a-f]+)/.exec(trimmed);
    if (m) return { repositoryId: m[1] };
  }
  return {};
}
