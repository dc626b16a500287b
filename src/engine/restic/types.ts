// Options and results of the restic client's calls.
import type { Readable } from 'node:stream';
import type { Logger } from '../../util/log.js';
import type { RepositorySettings } from '../../plugins/storage/settings.js';
import type { BackupProgress, ForgetGroup } from './parse.js';
import type { ResticSpawnInfo } from './process.js';

export interface ResticRepositoryOptions {
  settings: RepositorySettings;
  /** Wild Backup's state directory: restic's cache in <dataDir>/cache/restic, temp key files, known_hosts. */
  dataDir: string;
  /** The restic binary; default $WILD_BACKUP_RESTIC or "restic" on PATH. */
  binary?: string;
  /** Bound of status() and isInitialized(); default 20 s. Past it the repository counts as unreachable. */
  statusTimeoutMs?: number;
  /** Between SIGINT and SIGKILL when a call is aborted; default 5 s. */
  killGraceMs?: number;
  log?: Logger;
  /** Called with the pid and argv of every restic process (tests inspect /proc/<pid>/cmdline). */
  onSpawn?: (info: ResticSpawnInfo) => void;
  /** restic's CPU priority below the API's (nice increment); default $WILD_BACKUP_RESTIC_NICE or 10; 0 = the same. */
  nice?: number;
}

export interface CallOptions {
  /** Aborting stops restic (SIGINT, then SIGKILL) and rejects with ResticAbortError. */
  signal?: AbortSignal;
  /** Stops restic after this long and rejects with ResticUnreachableError. */
  timeoutMs?: number;
}

export interface RepositoryStatus {
  reachable: boolean;
  initialized: boolean;
  /** Redacted, for display; undefined when the repository is usable. */
  error?: string;
  /** The error's code (RESTIC_WRONG_PASSWORD, RESTIC_UNREACHABLE, VALIDATION, ...). */
  errorCode?: string;
}

export interface SnapshotQuery extends CallOptions {
  /** Only snapshots carrying every one of these tags. */
  tags?: string[];
  host?: string;
  /** Ask restic even when the cache could answer. */
  refresh?: boolean;
}

export interface BackupStdinOptions extends CallOptions {
  /** Read with backpressure; destroyed if the backup fails. Its error interrupts restic (no snapshot). */
  stdin: Readable;
  /** Relative path stored in the snapshot (restic stores "/" + filename): "gitea/postgres.sql". */
  filename: string;
  tags?: string[];
  host: string;
  /** restic's status, about twice a second. */
  onProgress?: (progress: BackupProgress) => void;
  /**
   * Look up the full snapshot id when restic reports a short one (restic 0.14): one more restic
   * process. Default true; callers writing many snapshots resolve them once with `snapshots`.
   */
  resolveId?: boolean;
  /**
   * Leave the cached snapshot listing as it is (default: forget it, so the next query lists
   * again). A caller writing several snapshots refreshes once at the end instead (`refresh()`).
   */
  keepCache?: boolean;
  /**
   * Stop restic with ResticVanishedFileError when it waits on a lock file that another restic
   * removed (before it reads any input), for the caller to run it again with its input opened again.
   */
  stopOnVanishedFile?: boolean;
}

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** restic duration such as "2y5m7d3h". */
  keepWithin?: string;
  keepTags?: string[];
}

export type ForgetTarget =
  | { snapshotIds: string[] }
  | { policy: RetentionPolicy; tags?: string[]; host?: string; /** restic's --group-by, e.g. "host,tags" */ groupBy?: string };

export interface ForgetOptions extends CallOptions {
  prune?: boolean;
  dryRun?: boolean;
}

export interface ForgetResult {
  /** Per group (policy mode), what restic keeps and removes. Empty in snapshot-id mode. */
  groups: ForgetGroup[];
  /** Ids removed (or that would be, with dryRun). */
  removedIds: string[];
}

export interface CheckOptions extends CallOptions {
  /** Also read this share of the pack files: a percentage (10 → "10%") or restic's "n/t" / "x%". */
  readDataSubset?: number | string;
}

export interface CheckResult {
  ok: boolean;
  /** restic's report (redacted): the errors found, or the steps it went through. */
  messages: string[];
}

/** Everything GraphQL's RepositoryStats needs, from two restic stats runs and the snapshot list. */
export interface RepositoryStatistics {
  /** Bytes stored in the repository (raw-data, after compression). */
  totalSize: number;
  /** Bytes stored before compression (restic >= 0.15). */
  totalUncompressedSize?: number;
  /** Sum of all snapshots' source bytes (restore-size). */
  logicalSize: number;
  /** logicalSize / totalSize (0 for an empty repository). */
  deduplicationRatio: number;
  compressionRatio?: number;
  snapshotCount: number;
  oldestSnapshotAt?: string;
  latestSnapshotAt?: string;
}
