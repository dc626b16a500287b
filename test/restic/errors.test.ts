// restic's stderr (as restic 0.14 and its backends print it) mapped to named errors; version parsing.
import { describe, expect, it } from 'vitest';
import {
  ResticAccessDeniedError,
  ResticError,
  ResticInvalidDataError,
  ResticLockedError,
  ResticNotFoundError,
  ResticNotInitializedError,
  ResticPartialBackupError,
  ResticUnreachableError,
  ResticWrongPasswordError,
  featuresOf,
} from '../../src/engine/restic/index.js';
import { classifyResticFailure, unreadableSnapshotFailure } from '../../src/engine/restic/errors.js';
import { parseResticVersion } from '../../src/engine/restic/version.js';

const classify = (stderr: string, exitCode = 1, command = 'snapshots') =>
  classifyResticFailure({ exitCode, stderr, command, displayUri: 's3:https://h/b' });

describe('classifyResticFailure', () => {
  it.each([
    ['Fatal: wrong password or no key found', ResticWrongPasswordError],
    ['unable to create lock in backend: repository is already locked by PID 9255 on vm by root (UID 0, GID 0)\nlock was created at 2026-11-26 19:31:01', ResticLockedError],
    ['Fatal: unable to open config file: stat /srv/nope/config: no such file or directory\nIs there a repository at the following location?', ResticNotInitializedError],
    ['Fatal: unable to open config file: Stat: The specified key does not exist.\nIs there a repository at the following location?', ResticNotInitializedError],
    ['Fatal: unable to open config file: <config/> does not exist\nIs there a repository', ResticNotInitializedError],
    ['Fatal: unable to open config file: blob.GetProperties: storage: service returned error: StatusCode=404, ErrorCode=404 The specified blob does not exist.', ResticNotInitializedError],
    ['Fatal: unable to open config file: Stat: Get "https://127.0.0.1:1/b/?location=": dial tcp 127.0.0.1:1: connect: connection refused\nIs there a repository at the following location?', ResticUnreachableError],
    ['Fatal: unable to open config file: Stat: Get "https://h/": x509: certificate signed by unknown authority', ResticUnreachableError],
    ['subprocess ssh: ssh: connect to host 127.0.0.1 port 2298: Connection refused\nFatal: unable to open repository at sftp:x: unable to start the sftp session, error: EOF', ResticUnreachableError],
    ['subprocess ssh: root@127.0.0.1: Permission denied (publickey,password).\nFatal: unable to open repository: unable to start the sftp session, error: EOF', ResticAccessDeniedError],
    ['Fatal: unable to open config file: unexpected HTTP response (401): 401 Unauthorized', ResticAccessDeniedError],
    ['Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not exist in our records.', ResticAccessDeniedError],
    ['subprocess ssh: Host key verification failed.', ResticAccessDeniedError],
  ])('%s', (stderr, expected) => {
    const err = classify(stderr);
    expect(err).toBeInstanceOf(expected);
    expect(err.message.length).toBeGreaterThan(10);
    expect(err.stderrTail).toBe(stderr);
  });

  it('uses the named exit codes of newer restic', () => {
    expect(classify('', 10)).toBeInstanceOf(ResticNotInitializedError);
    expect(classify('', 11)).toBeInstanceOf(ResticLockedError);
    expect(classify('', 12)).toBeInstanceOf(ResticWrongPasswordError);
  });

  it('maps exit 3 of backup to a partial backup, unknown failures to ResticError with the Fatal line', () => {
    expect(classify('error: read /x: input/output error', 3, 'backup')).toBeInstanceOf(ResticPartialBackupError);
    expect(classify('Fatal: no matching ID found for prefix "abcdef12"', 1, 'dump')).toBeInstanceOf(ResticNotFoundError);
    const generic = classify('some noise\nFatal: something odd happened\n', 1, 'check');
    expect(generic.constructor).toBe(ResticError);
    expect(generic.message).toBe('restic check failed (exited 1): something odd happened');
  });

  it('names the file restic read back damaged (a torn read), for its cache to lose it', () => {
    const err = classify('Fatal: load <index/0afbc1f06a>: invalid data returned', 1, 'backup');
    expect(err).toBeInstanceOf(ResticInvalidDataError);
    expect((err as ResticInvalidDataError).file).toEqual({ type: 'index', id: '0afbc1f06a' });
    expect(err.code).toBe('RESTIC_INVALID_DATA');
    expect(err.message).toBe('the file index/0afbc1f06a of the repository at s3:https://h/b read back damaged or incomplete: another restic may have been writing it; if this stays, checkRepository tells what is damaged');
    expect((classify('Load(<snapshot/5febcb4e17>, 0, 0) returned error, retrying after 552ms: invalid data returned') as ResticInvalidDataError).file).toEqual({ type: 'snapshot', id: '5febcb4e17' });
    expect(classify('Fatal: load <index/0afbc1f06a>: unexpected EOF')).not.toBeInstanceOf(ResticInvalidDataError);
  });

  it('names a blob that failed its authentication (restic 0.14 serves trees from its cache unchecked), for the cached packs to go', () => {
    const blob = 'd9b8a913ca6d76e5d11debb9388502cb2cc281d8d259808ca0030ac25121a68b';
    const line = `decrypting blob ${blob} failed: ciphertext verification failed`;
    const err = classify(`cannot dump file: cannot load subtree for "/a": ${line}`, 2, 'dump');
    expect(err).toBeInstanceOf(ResticInvalidDataError);
    expect((err as ResticInvalidDataError).file).toEqual({ type: 'blob', id: blob });
    expect(err.message).toBe(`a blob of the repository at s3:https://h/b read back damaged, from restic's cache or from the storage (${line}); if this stays, checkRepository tells what is damaged`);
    expect((classify(`error walking snapshot: blob ${blob} returned invalid hash`) as ResticInvalidDataError).file).toEqual({ type: 'blob', id: blob });
    expect(classify('decrypting blob d9b8a913 failed: ciphertext verification failed')).not.toBeInstanceOf(ResticInvalidDataError);
  });
});

describe('unreadableSnapshotFailure (restic 0.14 snapshots: a warning, exit 0)', () => {
  it('fails a listing that left out a snapshot it could not read; one removed meanwhile is no failure', () => {
    const torn = unreadableSnapshotFailure('could not load snapshot 6b8554d2: load <snapshot/6b8554d29d>: invalid data returned', 's3:https://h/b');
    expect(torn).toBeInstanceOf(ResticInvalidDataError);
    expect((torn as ResticInvalidDataError).file).toEqual({ type: 'snapshot', id: '6b8554d29d' });
    const other = unreadableSnapshotFailure('could not load snapshot 6b8554d2: Load(<snapshot/6b8554d29d>, 0, 0): unexpected HTTP response (500)', 's3:https://h/b');
    expect(other?.constructor).toBe(ResticError);
    expect(other?.message).toBe('restic could not read the snapshot 6b8554d2 of the repository at s3:https://h/b: Load(<snapshot/6b8554d29d>, 0, 0): unexpected HTTP response (500)');
    expect(unreadableSnapshotFailure('could not load snapshot 6b8554d2: open /r/snapshots/6b85: no such file or directory', '')).toBeUndefined();
    expect(unreadableSnapshotFailure('', '')).toBeUndefined();
  });
});

describe('restic version', () => {
  it('parses restic version output and derives features', () => {
    const v14 = parseResticVersion('restic 0.14.0 compiled with go1.19.8 on linux/amd64\n')!;
    expect(v14).toMatchObject({ major: 0, minor: 14, patch: 0 });
    expect(featuresOf(v14)).toMatchObject({ jsonInit: false, compressionStats: false, fullSnapshotIdInSummary: false, retryLock: false });
    const v18 = parseResticVersion('restic 0.18.0 compiled with go1.24.1 on linux/amd64')!;
    expect(featuresOf(v18)).toMatchObject({ jsonInit: true, compressionStats: true, fullSnapshotIdInSummary: true, namedExitCodes: true, jsonCheck: true });
    expect(parseResticVersion('nonsense')).toBeUndefined();
  });
});
