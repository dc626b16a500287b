// Operation records (persisted as instances/<n>/operations/<id>.json) and the task interface
// that every kind of long job implements. The engine owns the lifecycle; tasks only report.

export const OPERATION_KINDS = [
  'BACKUP_APP', 'BACKUP_CLUSTER', 'RESTORE_APP', 'INIT_REPOSITORY', 'CHECK_REPOSITORY',
  'APPLY_RETENTION', 'VERIFY_BACKUP', 'DELETE_BACKUP', 'CHANGE_REPOSITORY_PASSWORD',
] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

export const OPERATION_STATUSES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<OperationStatus> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
export const isTerminal = (s: OperationStatus): boolean => TERMINAL_STATUSES.has(s);

export interface OperationProgress {
  phase: string;
  bytesDone: number;
  /** An estimate while streaming; null while unknown. */
  bytesTotal: number | null;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
  currentItem: string | null;
}

export interface OperationErrorInfo {
  code: string;
  message: string;
}

export interface OperationRecord {
  version: 1;
  id: string;
  kind: OperationKind;
  status: OperationStatus;
  instanceName: string;
  appName: string | null;
  progress: OperationProgress;
  message: string | null;
  error: OperationErrorInfo | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** When this state was published (the time of the event that carried it); absent in old records. */
  updatedAt?: string;
  /** The backup made or restored, where there is one (its backupId). */
  backupId: string | null;
  /** What a task needs to undo after a crash (e.g. replicas to scale back); task-defined. */
  recovery: Record<string, unknown> | null;
}

export type ProgressUpdate = Partial<Omit<OperationProgress, 'bytesPerSecond' | 'etaSeconds'>>;

export interface TaskContext {
  readonly operationId: string;
  /** Aborted on cancel and on shutdown; tasks pass it to every call that can take long. */
  readonly signal: AbortSignal;
  progress(update: ProgressUpdate): void;
  log(line: string): void;
  setBackupId(backupId: string): void;
  /** Persists recovery data at once, before the task does what it would have to undo. */
  saveRecovery(data: Record<string, unknown> | null): Promise<void>;
}

export interface TaskResult {
  message?: string;
  backupId?: string;
}

/** One kind of long job. The engine decides the final status and owns cancellation. */
export interface OperationTask {
  readonly kind: OperationKind;
  readonly instance: string;
  readonly app?: string;
  /**
   * Work on one app is serialised. 'reject' answers a second submission for an app that has
   * active work with ConflictError; 'queue' waits its turn.
   */
  readonly onAppConflict?: 'reject' | 'queue';
  /**
   * Other apps of the instance this task works through: database server apps (`postgres`,
   * `mysql`, `redis`). `alter`: it creates, renames and drops databases there (a restore, a
   * drill), which would break the server's whole dump, so any work on that app itself conflicts
   * with it. `use`: it only needs the server up (a backup of an app's database), so only work that
   * stops that app (`stopsApp`) conflicts with it. Tasks that both only hold an app never conflict
   * over it: restores and backups of two apps on one server run side by side.
   */
  readonly alsoHolds?: ReadonlyArray<{ app: string; as: 'alter' | 'use' }>;
  /** The task stops its own app while it runs (a restore scales it to zero): see `alsoHolds`. */
  readonly stopsApp?: boolean;
  /** Exclusive work (prune, check) waits until nothing else runs on the instance, and blocks new work. */
  readonly exclusive?: boolean;
  /**
   * The backup id this task reads (a restore's source, a verification) or deletes. While the task
   * is queued or running, retention keeps that backup, and a deletion of it beside other work on
   * it (or other work beside its deletion) is refused with ConflictError.
   */
  readonly backup?: string;
  run(ctx: TaskContext): Promise<TaskResult | void>;
}

/** Called at start-up for each record that a crash left RUNNING, to put things back. */
export type RecoveryHook = (record: OperationRecord, log: (line: string) => void) => Promise<void>;
