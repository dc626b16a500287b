// Named restic failures, mapped from exit codes and stderr. Every message and stderr tail kept
// here has passed through the redactor of the repository that produced it.

export interface ResticErrorDetails {
  /** restic's exit code (undefined when it was killed or never started). */
  exitCode?: number;
  /** The restic subcommand (backup, snapshots, ...). */
  command?: string;
  /** The last lines restic wrote to stderr, redacted. */
  stderrTail?: string;
  cause?: unknown;
}

export class ResticError extends Error {
  override name = 'ResticError';
  /** A stable machine-readable code for GraphQL's Error.code and operation records. */
  readonly code: string = 'RESTIC_FAILED';
  readonly exitCode: number | undefined;
  readonly command: string | undefined;
  readonly stderrTail: string;
  constructor(message: string, details: ResticErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.exitCode = details.exitCode;
    this.command = details.command;
    this.stderrTail = details.stderrTail ?? '';
  }
}

/** The repository password opens no key of the repository. */
export class ResticWrongPasswordError extends ResticError {
  override name = 'ResticWrongPasswordError';
  override readonly code = 'RESTIC_WRONG_PASSWORD';
}

/** The backend answers but holds no repository there (restic init has not run). */
export class ResticNotInitializedError extends ResticError {
  override name = 'ResticNotInitializedError';
  override readonly code = 'RESTIC_NOT_INITIALIZED';
}

/** `init` found a repository already there. */
export class ResticAlreadyInitializedError extends ResticError {
  override name = 'ResticAlreadyInitializedError';
  override readonly code = 'RESTIC_ALREADY_INITIALIZED';
}

/** Another restic process holds a conflicting lock (or a stale lock was left behind). */
export class ResticLockedError extends ResticError {
  override name = 'ResticLockedError';
  override readonly code = 'RESTIC_LOCKED';
}

/** A file of the repository that restic may find removed under it (see ResticVanishedFileError). */
export type VanishedFileType = 'lock' | 'snapshot' | 'index';

/** The words for such a file. */
export const vanishedFileWords: Record<VanishedFileType, string> = { lock: 'lock file', snapshot: 'snapshot', index: 'index file' };

/**
 * restic met a file of the repository that another restic removed between listing the files and
 * reading that one: a lock file (any restic removes its own as it exits), a snapshot that a
 * forget removed under a listing, an index file a prune replaced under a reader that takes no
 * lock (stats). restic 0.14 retries reading it for about 45 s before it goes on without it
 * (restic/restic#1523): one backup in eight, run side by side into a fresh repository, waited so
 * for a lock. Such a restic is stopped (ResticProcess, stopOnVanishedFile) and started again; a
 * backup's restic meets locks before it reads any input.
 */
export class ResticVanishedFileError extends ResticError {
  override name = 'ResticVanishedFileError';
  override readonly code = 'RESTIC_FILE_VANISHED';
  constructor(message: string, details: ResticErrorDetails, readonly file: { type: VanishedFileType; id: string }) {
    super(message, details);
  }
}

/**
 * restic's line for a retried read of a lock, snapshot or index file that is not there, as the backends
 * word it (local, sftp, S3 and MinIO, rest-server and rclone, Azure, GCS, B2). Groups: the type, the short id.
 */
export const VANISHED_FILE =
  /Load\(<(lock|snapshot|index)\/([0-9a-f]+)>, \d+, \d+\) returned error, retrying after [^:]*: .*(?:no such file or directory|does not exist|doesn't exist|not found|BlobNotFound|\b404\b)/i;

/**
 * Why a restic that failed before it read a byte of its input is worth starting again, or
 * undefined: a file of the repository read back damaged (another restic still writing it), or
 * a file removed under it.
 */
export function runAgainReason(err: unknown): string | undefined {
  if (err instanceof ResticInvalidDataError) return 'restic read a file of the repository back damaged before it read a byte (another restic was probably still writing it)';
  if (err instanceof ResticVanishedFileError) return `restic met ${err.file.type === 'index' ? 'an' : 'a'} ${vanishedFileWords[err.file.type]} that another restic had just removed, which restic 0.14 waits on for ~45 s (restic/restic#1523)`;
  return undefined;
}

/** The backend cannot be reached (connection refused, DNS, TLS, timeout). */
export class ResticUnreachableError extends ResticError {
  override name = 'ResticUnreachableError';
  override readonly code = 'RESTIC_UNREACHABLE';
}

/** The backend refused the credentials (or, for SFTP, the server's host key changed). */
export class ResticAccessDeniedError extends ResticError {
  override name = 'ResticAccessDeniedError';
  override readonly code = 'RESTIC_ACCESS_DENIED';
}

/** A snapshot or a path inside it does not exist. */
export class ResticNotFoundError extends ResticError {
  override name = 'ResticNotFoundError';
  override readonly code = 'RESTIC_NOT_FOUND';
}

/** `backup` exited 3: a snapshot was written but some source data could not be read. */
export class ResticPartialBackupError extends ResticError {
  override name = 'ResticPartialBackupError';
  override readonly code = 'RESTIC_PARTIAL_BACKUP';
}

/** The repository's storage is full (a local disk, an SFTP server's disk, a quota): nothing more can be written. */
export class ResticNoSpaceError extends ResticError {
  override name = 'ResticNoSpaceError';
  override readonly code = 'REPOSITORY_FULL';
}

/**
 * A file of the repository read back other than its name (its hash) says: restic's "load
 * <index/0afbc1f0>: invalid data returned". Most often the file was still being written: `rclone
 * serve restic` (rclone before 1.63) and the rest: and rclone: backends on top of it show a file
 * under its final name while it is uploaded, so a restic that loads the index while another
 * writes one reads it torn. restic 0.14 keeps what it read in its cache, where the torn copy would
 * fail every later run; ResticRepository removes it and runs again (see `file`).
 *
 * Also a blob that fails its authentication ("decrypting blob <id> failed: ciphertext verification
 * failed"): `file` is then `{ type: 'blob', id }`. restic 0.14 caches the packs that hold trees as
 * it downloads them, without checking them, and reads its copy from then on: a pack read damaged
 * once (the storage returned it so, then was mended) fails every later `dump`, `ls` and `stats` of
 * the snapshots whose trees it holds, while `check`, which reads without the cache, finds nothing.
 */
export class ResticInvalidDataError extends ResticError {
  override name = 'ResticInvalidDataError';
  override readonly code = 'RESTIC_INVALID_DATA';
  constructor(message: string, details: ResticErrorDetails, readonly file: { type: string; id: string }) {
    super(message, details);
  }
}

/** The caller aborted (AbortSignal); restic was stopped (SIGINT, then SIGKILL). */
export class ResticAbortError extends ResticError {
  override name = 'AbortError';
  override readonly code = 'ABORTED';
}

// Patterns of restic 0.14-0.18 and of the backends' libraries (minio-go, azure sdk, ssh, rclone).
const WRONG_PASSWORD = /wrong password or no key found/i;
// ENOSPC (local, sftp: "failure writing"), quotas (EDQUOT), S3 and MinIO, Azure, HTTP 507.
const NO_SPACE =
  /no space left on device|disk quota exceeded|not enough space|XMinioStorageFull|minimum free drive threshold|QuotaExceeded|InsufficientStorage|Insufficient Storage|\b507\b/i;
const LOCKED = /repository is already locked|unable to create lock in backend|failed to lock/i;
const ALREADY_INIT = /config file already exists|repository master key and config already initialized/i;
const HOST_KEY = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i;
const ACCESS_DENIED =
  /Permission denied \(|Permission denied, please try again|Too many authentication failures|401 Unauthorized|403 Forbidden|Access Denied|AccessDenied|InvalidAccessKeyId|Access Key Id you provided does not exist|SignatureDoesNotMatch|AuthenticationFailed|AuthorizationFailure|Server failed to authenticate|invalid_grant|bad_auth_token|unauthorized/i;
const UNREACHABLE =
  /connection refused|no such host|i\/o timeout|network is unreachable|no route to host|connection reset|host unreachable|TLS handshake|x509:|certificate signed by unknown authority|certificate is not valid|Connection timed out|Could not resolve hostname|Connection closed by|kex_exchange_identification|context deadline exceeded|dial tcp|server misbehaving|error talking HTTP to rclone|didn't find section in config file|unable to start the sftp session/i;
const NOT_FOUND_REPO =
  /does not exist|no such file or directory|not found|NoSuchKey|NoSuchBucket|BlobNotFound|ContainerNotFound|\b404\b/i;
const OPEN_CONFIG = /unable to open config file|Is there a repository at the following location/i;
// restic's handle ("<index/0afbc1f06a>") and, on the same line, the hash check's failure.
const INVALID_DATA = /<(index|snapshot|data|key)\/([0-9a-f]{6,64})>.*invalid data returned/;
// A blob whose authentication failed, or whose content is not what its id says.
const DAMAGED_BLOB = /decrypting blob ([0-9a-f]{64}) failed: ciphertext verification failed|blob ([0-9a-f]{64}) returned invalid hash/;
const NO_SNAPSHOT = /no matching ID found|invalid id|cannot dump file: path .* not found|path .* not found in snapshot|pathComponents|no snapshot found/i;

/** The ResticInvalidDataError that `text` reports, if it reports one. */
function invalidDataFailure(text: string, details: ResticErrorDetails, where: string): ResticInvalidDataError | undefined {
  const m = INVALID_DATA.exec(text);
  if (m) {
    const file = { type: m[1]!, id: m[2]! };
    return new ResticInvalidDataError(
      `the file ${file.type}/${file.id} of the repository${where} read back damaged or incomplete: another restic may have been writing it; if this stays, checkRepository tells what is damaged`,
      details, file,
    );
  }
  const blob = DAMAGED_BLOB.exec(text);
  if (!blob) return undefined;
  const file = { type: 'blob', id: (blob[1] ?? blob[2])! };
  return new ResticInvalidDataError(
    `a blob of the repository${where} read back damaged, from restic's cache or from the storage (${blob[0]}); if this stays, checkRepository tells what is damaged`,
    details, file,
  );
}

const UNREADABLE_SNAPSHOT = /^could not load snapshot ([0-9a-f]+): (.*)$/gm;

/** A snapshot that restic's `snapshots` could not read, with restic's words for why. */
export interface UnreadableSnapshot {
  id: string;
  reason: string;
}

// A snapshot removed between restic's listing of the folder and its read (a forget meanwhile) is
// gone, not damaged: its read fails as a missing file does.
const unreadableLines = (stderr: string): RegExpMatchArray[] =>
  [...stderr.matchAll(UNREADABLE_SNAPSHOT)].filter((line) => !NOT_FOUND_REPO.test(line[2]!));

/** Every snapshot a `snapshots` run could not read, from its stderr. */
export function unreadableSnapshots(stderr: string): UnreadableSnapshot[] {
  return unreadableLines(stderr).map((m) => ({ id: m[1]!, reason: m[2]! }));
}

/**
 * restic 0.14's `snapshots` leaves out a snapshot it cannot read, with a warning on stderr, and
 * exits 0. A listing without it would show a complete backup as incomplete (its manifest left
 * out) or missing an artifact, and retention removes incomplete backups after a day: such a
 * listing is a failure. A torn read (the file being written, or a torn copy in restic's cache) is
 * a ResticInvalidDataError, which ResticRepository clears from the cache and runs again. A snapshot
 * that was removed meanwhile is no failure.
 */
export function unreadableSnapshotFailure(stderr: string, displayUri: string): ResticError | undefined {
  const m = unreadableLines(stderr)[0];
  if (!m) return undefined;
  const details: ResticErrorDetails = { exitCode: 0, command: 'snapshots', stderrTail: stderr };
  const where = displayUri ? ` at ${displayUri}` : '';
  const invalidData = invalidDataFailure(m[0], details, where);
  if (invalidData) return invalidData;
  return new ResticError(`restic could not read the snapshot ${m[1]} of the repository${where}: ${m[2]}`, details);
}

/** The most telling stderr line: restic's "Fatal:" line, else the last non-empty one. */
export function headline(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const fatal = lines.find((l) => l.startsWith('Fatal:'));
  return (fatal ?? lines[lines.length - 1] ?? '').replace(/^Fatal:\s*/, '');
}

/** Maps a failed restic run to a named error. `stderr` must be redacted already. */
export function classifyResticFailure(input: {
  exitCode: number | undefined;
  stderr: string;
  command: string;
  displayUri: string;
}): ResticError {
  const { exitCode, stderr, command, displayUri } = input;
  const details: ResticErrorDetails = { exitCode, command, stderrTail: stderr };
  const detail = headline(stderr);
  const where = displayUri ? ` at ${displayUri}` : '';

  if (exitCode === 12 || WRONG_PASSWORD.test(stderr)) {
    return new ResticWrongPasswordError(`wrong repository password: no key of the repository${where} opens with it`, details);
  }
  // Before LOCKED: a full disk also fails the lock file's write ("unable to create lock in backend").
  if (NO_SPACE.test(stderr)) {
    const line = stderr.split('\n').map((l) => l.trim().replace(/^Fatal:\s*/, '')).find((l) => NO_SPACE.test(l)) ?? detail;
    return new ResticNoSpaceError(`the repository${where} is out of space: ${line}`, details);
  }
  if (exitCode === 11 || LOCKED.test(stderr)) {
    return new ResticLockedError(
      `the repository${where} is locked by another restic process; retry when it has finished, or remove a stale lock with unlock`,
      details,
    );
  }
  if (command === 'init' && ALREADY_INIT.test(stderr)) {
    return new ResticAlreadyInitializedError(`a repository already exists${where}`, details);
  }
  if (HOST_KEY.test(stderr)) {
    return new ResticAccessDeniedError(
      `the SSH host key of the server${where} does not match the remembered one; remove it from the known_hosts of the data directory if the change is expected`,
      details,
    );
  }
  if (ACCESS_DENIED.test(stderr)) {
    return new ResticAccessDeniedError(`the storage backend${where} rejected the credentials: ${detail}`, details);
  }
  if (UNREACHABLE.test(stderr)) {
    return new ResticUnreachableError(`the storage backend${where} is unreachable: ${detail}`, details);
  }
  if (exitCode === 10 || (OPEN_CONFIG.test(stderr) && NOT_FOUND_REPO.test(stderr))) {
    return new ResticNotInitializedError(`no restic repository${where}: initialise it first`, details);
  }
  const invalidData = invalidDataFailure(stderr, details, where);
  if (invalidData) return invalidData;
  if ((command === 'dump' || command === 'snapshots' || command === 'forget') && NO_SNAPSHOT.test(stderr)) {
    return new ResticNotFoundError(`not found in the repository: ${detail}`, details);
  }
  if (command === 'backup' && exitCode === 3) {
    return new ResticPartialBackupError(`backup incomplete: some source data could not be read (${detail})`, details);
  }
  const exit = exitCode === undefined ? 'was killed' : `exited ${exitCode}`;
  return new ResticError(`restic ${command} failed (${exit})${detail ? `: ${detail}` : ''}`, details);
}
