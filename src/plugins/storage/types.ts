// The storage plugin interface: one module per restic backend turns RepositorySettings into the
// environment and options of a restic child process, and validates them first.
import type { SecretSet } from '../../util/redact.js';
import type { RepositorySettings } from './settings.js';

/** One problem in the settings, with the dotted path of the field (`credentials.s3.secretAccessKey`). */
export interface ValidationIssue {
  path: string;
  message: string;
}

/** The settings are invalid; `issues` lists every problem, each with its path. Never carries a secret. */
export class StorageValidationError extends Error {
  override readonly name = 'StorageValidationError';
  readonly code = 'VALIDATION';
  constructor(readonly issues: ValidationIssue[]) {
    super(`invalid repository settings: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  }
}

/** What prepare() needs from its caller. */
export interface PrepareContext {
  /** Wild Backup's state directory: temp key files go under `<dataDir>/tmp`, SSH host keys in `<dataDir>/ssh`. */
  dataDir: string;
  /** restic's version, for options that only newer releases understand. */
  resticVersion?: { major: number; minor: number; patch: number };
  signal?: AbortSignal;
}

/** The restic environment of one invocation; call cleanup() when the process has exited. */
export interface PreparedBackend {
  /** Environment for restic, including RESTIC_REPOSITORY (never put on argv: it may hold credentials). */
  env: Record<string, string>;
  /** Global restic options (`-o key=value`, `--cacert`); never a secret. */
  args: string[];
  /** Every secret value this invocation uses, for redaction. */
  secrets: SecretSet;
  /**
   * What the backend's helper wrote on the side (ssh's log), read after restic failed: restic
   * relays a subprocess's stderr asynchronously and may exit before the telling line is out.
   */
  diagnostics?(): Promise<string>;
  /** Removes temp key files (idempotent). */
  cleanup(): Promise<void>;
}

export type StorageBackendName = 'local' | 's3' | 'b2' | 'sftp' | 'rest' | 'rclone' | 'azure' | 'gcs';

export interface StoragePlugin {
  readonly name: StorageBackendName;
  readonly description: string;
  /** The repository URI prefix this backend answers to: "/", "s3:", "b2:", ... */
  readonly uriPrefix: string;
  /** Credential fields it reads, relative to cloud.backup.credentials (e.g. "s3.accessKeyId"). */
  readonly credentialFields: string[];
  /** Non-secret settings it reads (cloud.backup.backend.* and friends). */
  readonly configFields: string[];
  matches(uri: string): boolean;
  /** Every problem of the settings for this backend (common checks included); empty when valid. */
  validate(settings: RepositorySettings): ValidationIssue[];
  /** Validates, then builds restic's environment; throws StorageValidationError on invalid settings. */
  prepare(settings: RepositorySettings, ctx: PrepareContext): Promise<PreparedBackend>;
  /** The URI for display: credentials stripped. */
  displayUri(uri: string): string;
}
