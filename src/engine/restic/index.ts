// The restic client: Wild Backup's storage engine (ARCHITECTURE §3-4). The public face of
// src/engine/restic; everything else in this folder is internal.
export { ResticRepository, type SnapshotListing } from './repository.js';
export type { UnreadableSnapshot } from './errors.js';
export type {
  ResticRepositoryOptions,
  CallOptions,
  RepositoryStatus,
  RepositoryStatistics,
  SnapshotQuery,
  BackupStdinOptions,
  RetentionPolicy,
  ForgetTarget,
  ForgetOptions,
  ForgetResult,
  CheckOptions,
  CheckResult,
} from './types.js';
export type { Snapshot, BackupProgress, BackupSummary, ResticStats, StatsMode, ForgetGroup } from './parse.js';
export type { ResticSpawnInfo } from './process.js';
export { detectResticVersion, featuresOf, type ResticVersion, type ResticFeatures } from './version.js';
export {
  ResticError,
  ResticWrongPasswordError,
  ResticNotInitializedError,
  ResticAlreadyInitializedError,
  ResticInvalidDataError,
  ResticLockedError,
  ResticVanishedFileError,
  runAgainReason,
  VANISHED_FILE,
  ResticUnreachableError,
  ResticAccessDeniedError,
  ResticNotFoundError,
  ResticPartialBackupError,
  ResticNoSpaceError,
  ResticAbortError,
} from './errors.js';
export { StorageValidationError, type ValidationIssue } from '../../plugins/storage/types.js';
