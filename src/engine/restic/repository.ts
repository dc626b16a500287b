// ResticRepository: one restic repository (RepositorySettings + the data dir), every restic
// command as a typed method. Each call asks the storage plugin for a fresh environment (temp key
// files live only while restic runs), passes the password through the environment, and redacts.
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { logger, processSecrets, scrub, type Logger } from '../../util/log.js';
import { pluginForUri } from '../../plugins/storage/registry.js';
import type { RepositorySettings } from '../../plugins/storage/settings.js';
import { StorageValidationError, type PreparedBackend, type StorageBackendName, type StoragePlugin } from '../../plugins/storage/types.js';
import { SNAPSHOT_ID, backupArgs, checkArgs, checkTag, forgetArgs, invalid } from './args.js';
import { ResticAbortError, ResticError, ResticInvalidDataError, ResticLockedError, ResticVanishedFileError, ResticNotInitializedError, ResticUnreachableError, runAgainReason, unreadableSnapshotFailure, unreadableSnapshots, type UnreadableSnapshot } from './errors.js';
import {
  parseBackupLine,
  parseForget,
  parseInitOutput,
  parseSnapshots,
  parseStats,
  type BackupSummary,
  type ResticStats,
  type Snapshot,
  type StatsMode,
} from './parse.js';
import { ResticProcess, jsonLines, readLines } from './process.js';
import { repositoryCache } from './repository-cache.js';
import type {
  BackupStdinOptions,
  CallOptions,
  CheckOptions,
  CheckResult,
  ForgetOptions,
  ForgetResult,
  ForgetTarget,
  RepositoryStatistics,
  RepositoryStatus,
  ResticRepositoryOptions,
  SnapshotQuery,
} from './types.js';
import { detectResticVersion, featuresOf, type ResticFeatures, type ResticVersion } from './version.js';

const DEFAULT_STATUS_TIMEOUT_MS = 20_000;
/**
 * Runs of a command whose restic failed before it read a byte in a way worth running it again
 * (runAgainReason): the first and two more (after a file read back damaged, 1 s and 2 s later).
 */
const RUN_AGAIN_RUNS = 3;
const INVALID_DATA_WAIT_MS = 1_000;
/** restic's cache folders by the type its errors name. */
const CACHE_FOLDER: Record<string, string> = { index: 'index', snapshot: 'snapshots', data: 'data' };
/** A file restic caches is named by its id: a SHA-256, in hex (its temporary files are not). */
const CACHED_NAME = /^[0-9a-f]{64}$/;
// The child sees these of our environment, the plugin's variables and the password; nothing else
// (no stray AWS_* or RESTIC_* of the server's own environment).
const PASS_THROUGH_ENV = ['PATH', 'HOME', 'TMPDIR', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'SSL_CERT_FILE', 'SSL_CERT_DIR'];

interface RunOptions extends CallOptions {
  json?: boolean;
  noLock?: boolean;
  stdin?: Readable;
  onLine?: (line: string) => void;
  onStart?: (proc: ResticProcess) => void;
  extraEnv?: Record<string, string>;
  /** See ResticRunSpec.stopOnVanishedFile; run() sets it for every run of a command without input but the last. */
  stopOnVanishedFile?: boolean | (() => boolean);
  /** `snapshots` that failed because some snapshots could not be read: what it listed anyway. */
  onPartialListing?: (partial: { error: unknown; lines: string[]; unreadable: UnreadableSnapshot[] }) => void;
}

/**
 * A listing of every snapshot, as cached. `unreadable`: the snapshots restic could not read, left
 * out of it (a damaged file that stays damaged); such a listing is partial, and is listed again
 * after PARTIAL_RELIST_MS while it keeps answering.
 */
export type SnapshotListing = readonly Snapshot[] & { readonly unreadable?: readonly UnreadableSnapshot[]; readonly listedAt?: number };

/** How long a partial listing answers before the next query lists again behind it. */
const PARTIAL_RELIST_MS = 30_000;

/** `to` with the partial-listing facts of `from`. */
function sameFacts(from: SnapshotListing, to: Snapshot[]): SnapshotListing {
  return from.unreadable ? Object.assign(to, { unreadable: from.unreadable, listedAt: from.listedAt }) : to;
}

export class ResticRepository {
  readonly plugin: StoragePlugin;
  readonly backend: StorageBackendName;
  /** The repository URI with credentials stripped. */
  readonly displayUri: string;
  private readonly settings: RepositorySettings;
  private readonly binary: string;
  private readonly nice: number | undefined;
  private readonly log: Logger;
  private readonly cacheKey: string;
  /** The stale-lock sweep running or last run, and the one waiting to run after it. */
  private sweeping: Promise<void> = Promise.resolve();
  private sweepQueued: Promise<void> | undefined;

  /** Validates the settings at once: throws StorageValidationError listing every problem. */
  constructor(private readonly options: ResticRepositoryOptions) {
    this.settings = options.settings;
    this.plugin = pluginForUri(options.settings?.repository);
    const issues = this.plugin.validate(options.settings);
    if (issues.length > 0) throw new StorageValidationError(issues);
    this.backend = this.plugin.name;
    this.displayUri = this.plugin.displayUri(this.settings.repository);
    this.binary = options.binary ?? process.env.WILD_BACKUP_RESTIC ?? 'restic';
    this.nice = options.nice ?? niceFromEnv();
    this.log = options.log ?? logger('restic');
    const s = this.settings;
    this.cacheKey = createHash('sha256').update(JSON.stringify([s.repository, s.endpoint, s.region, s.port])).digest('hex');
  }

  version(): Promise<ResticVersion> {
    return detectResticVersion(this.binary);
  }

  async features(): Promise<ResticFeatures> {
    return featuresOf(await this.version());
  }

  /** Creates the repository. Throws ResticAlreadyInitializedError when one is there. */
  async init(opts: CallOptions = {}): Promise<{ repositoryId?: string }> {
    try {
      const lines = await this.run('init', [], opts);
      this.log.info('repository initialised', { repository: this.displayUri });
      return parseInitOutput(lines.join('\n'));
    } finally {
      this.invalidate();
    }
  }

  /**
   * Whether the repository can be reached and opened, within statusTimeoutMs: repository
   * problems are reported (redacted), never thrown; only an abort throws.
   */
  async status(opts: CallOptions = {}): Promise<RepositoryStatus> {
    try {
      await this.openConfig(opts);
      return { reachable: true, initialized: true };
    } catch (err) {
      if (err instanceof ResticAbortError) throw err;
      const code = (err as ResticError | StorageValidationError).code;
      return {
        reachable: !['RESTIC_UNREACHABLE', 'VALIDATION', 'RESTIC_FAILED'].includes(code),
        initialized: code === 'RESTIC_WRONG_PASSWORD' || code === 'RESTIC_LOCKED',
        error: scrub((err as Error).message),
        errorCode: code,
      };
    }
  }

  /** true/false within statusTimeoutMs; throws the named error when it cannot be known (unreachable, denied...). */
  async isInitialized(opts: CallOptions = {}): Promise<boolean> {
    try {
      await this.openConfig(opts);
      return true;
    } catch (err) {
      if (err instanceof ResticNotInitializedError) return false;
      throw err;
    }
  }

  /** `cat config` needs the backend, the repository and the password, and nothing more. */
  private async openConfig(opts: CallOptions): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? this.options.statusTimeoutMs ?? DEFAULT_STATUS_TIMEOUT_MS;
    await this.run('cat', ['config'], { ...opts, timeoutMs, noLock: true, json: false });
  }

  /** Snapshots, from the cache when it has them (shared per repository, cleared by our writes). */
  async snapshots(query: SnapshotQuery = {}): Promise<Snapshot[]> {
    for (const t of query.tags ?? []) checkTag(t);
    const all = await this.allSnapshots(query);
    const tags = query.tags ?? [];
    return all.filter((s) => tags.every((t) => s.tags.includes(t)) && (query.host === undefined || s.hostname === query.host));
  }

  /**
   * Every snapshot, as cached: the same array (never to be changed) until the listing is refreshed,
   * so what is derived from it can be kept as long as it is the same.
   */
  async allSnapshots(query: Pick<SnapshotQuery, 'refresh' | 'signal' | 'timeoutMs'> = {}): Promise<SnapshotListing> {
    const cached = query.refresh ? undefined : repositoryCache.get<SnapshotListing>(this.cacheKey, 'snapshots');
    if (cached) {
      // A partial listing answers while the next one runs behind it: a backend that failed a read
      // may answer it now, and a file repaired by hand is seen.
      if (cached.unreadable && Date.now() - (cached.listedAt ?? 0) > PARTIAL_RELIST_MS) {
        this.sharedListing({ timeoutMs: query.timeoutMs }).catch(() => undefined);
      }
      return cached;
    }
    // One listing serves every waiting caller: restic gets the first caller's timeout, and each
    // caller's own signal and timeout bound its own wait.
    return this.waitShared(this.sharedListing({ timeoutMs: query.timeoutMs }), query);
  }

  /** The listing under way for the cache, or a new one (`stop`: what stops its restic). */
  private sharedListing(opts: { timeoutMs?: number; stop?: AbortSignal }): Promise<SnapshotListing> {
    return repositoryCache.load(this.cacheKey, 'snapshots', () => this.listSnapshots(opts));
  }

  /**
   * restic's listing of every snapshot. restic 0.14 leaves out a snapshot it cannot read, with a
   * warning, and exits 0: that fails the run (see unreadableSnapshotFailure), and a torn copy is
   * dropped from the cache and listed again. When that does not mend it, the snapshot is damaged
   * where it is stored, and the listing answers without it, naming it in `unreadable`: the other
   * backups stay listed and restorable, while whatever removes backups (retention, the clean-up
   * after a crash) refuses to decide from a partial listing (BackupService.listToRemoveFrom).
   */
  private async listSnapshots(opts: { timeoutMs?: number; stop?: AbortSignal }): Promise<SnapshotListing> {
    let partial: { error: unknown; lines: string[]; unreadable: UnreadableSnapshot[] } | undefined;
    try {
      const lines = await this.run('snapshots', [], { timeoutMs: opts.timeoutMs, signal: opts.stop, noLock: true, onPartialListing: (p) => { partial = p; } });
      return parseSnapshots(jsonLines(lines)[0] ?? []);
    } catch (err) {
      if (!partial || partial.error !== err) throw err;
      const { lines, unreadable } = partial;
      this.log.warn('snapshots restic cannot read are left out of the listing', { repository: this.displayUri, snapshots: unreadable.map((u) => u.id) });
      return Object.assign(parseSnapshots(jsonLines(lines)[0] ?? []), { unreadable, listedAt: Date.now() });
    }
  }

  /** Forgets what is cached about the repository (our own writes do this themselves). */
  invalidate(): void {
    repositoryCache.invalidate(this.cacheKey);
  }

  /**
   * Lists the snapshots again after our own writes and caches the new list. Queries meanwhile keep
   * the previous list instead of waiting on restic (issue 8: a query never waits on restic when
   * the cache can answer); a writer that must be seen by the next query waits for this before it
   * reports done. When the listing fails the previous list is dropped, so the next query lists.
   * `opts.signal` stops the listing itself.
   */
  async refresh(opts: CallOptions = {}): Promise<Snapshot[]> {
    repositoryCache.supersede(this.cacheKey);
    try {
      // The signal stops restic itself: this settles once it has exited.
      return [...(await this.waitShared(this.sharedListing({ timeoutMs: opts.timeoutMs, stop: opts.signal }), { timeoutMs: opts.timeoutMs }))];
    } catch (err) {
      repositoryCache.invalidate(this.cacheKey);
      throw err;
    }
  }

  /** Whether a snapshot listing is cached (queries answer from it without restic). */
  hasCachedListing(): boolean {
    return repositoryCache.get(this.cacheKey, 'snapshots') !== undefined;
  }

  /**
   * Snapshots our own restics just wrote (full ids, see cachedSnapshotId) join the cached listing
   * at once, so queries see them without a listing; the caller lists again (refresh) to confirm
   * them. False when no listing is cached: the next query lists.
   */
  addToListing(written: readonly Snapshot[]): boolean {
    return repositoryCache.update<SnapshotListing>(this.cacheKey, 'snapshots', (all) => {
      const known = new Set(all.map((s) => s.id));
      return sameFacts(all, [...all, ...written.filter((s) => !known.has(s.id))]);
    });
  }

  /**
   * The full id of a snapshot one of our restics wrote, from the short id restic 0.14 reports: the
   * name of the copy restic keeps in its cache (every restic we run has one), so no restic runs.
   * Undefined unless exactly one cached snapshot has that prefix.
   */
  async cachedSnapshotId(shortId: string): Promise<string | undefined> {
    if (!SNAPSHOT_ID.test(shortId)) return undefined;
    const ids = new Set((await this.cachedCopies('snapshot', shortId)).map((p) => basename(p)).filter((n) => CACHED_NAME.test(n)));
    return ids.size === 1 ? [...ids][0] : undefined;
  }

  /** Streams `stdin` into a new snapshot; resolves with restic's summary and the full snapshot id. */
  async backupStdin(opts: BackupStdinOptions): Promise<BackupSummary> {
    // The input is ours from here, even when its arguments are refused: its error reaches restic
    // (ResticProcess interrupts it, or sees it destroyed before it started), and until restic is
    // started nothing else listens to it. An 'error' nobody listens to would end the server.
    opts.stdin.on('error', () => undefined);
    const { filename, args } = backupArgs(opts);
    let proc: ResticProcess | undefined;
    let summary: (Omit<BackupSummary, 'snapshotId' | 'startedAt'> & { snapshotId?: string }) | undefined;
    let startedAt = '';
    const errors: string[] = [];
    try {
      await this.run('backup', args, {
        ...opts,
        stdin: opts.stdin,
        extraEnv: { RESTIC_PROGRESS_FPS: '2' },
        onStart: (p) => {
          proc = p;
          startedAt = p.spawnedAt.toISOString();
        },
        onLine: (line) => {
          const [json] = jsonLines([line]);
          if (json === undefined) return;
          const msg = parseBackupLine(json);
          if (msg.type === 'status') {
            opts.onProgress?.({
              bytesDone: msg.status.bytes_done ?? 0,
              bytesRead: proc?.bytesFed ?? 0,
              secondsElapsed: msg.status.seconds_elapsed,
              percentDone: msg.status.percent_done,
              currentFiles: msg.status.current_files ?? [],
            });
          } else if (msg.type === 'summary') summary = msg.summary;
          else if (msg.type === 'error') errors.push(msg.message);
        },
      });
    } finally {
      if (!opts.keepCache) this.invalidate();
    }
    if (!summary?.snapshotId) {
      throw new ResticError(`restic backup finished without a snapshot${errors.length ? `: ${scrub(errors.join('; '))}` : ''}`, { command: 'backup' });
    }
    const snapshotId = summary.snapshotId.length === 64 || opts.resolveId === false ? summary.snapshotId : await this.resolveSnapshotId(summary.snapshotId, opts);
    this.log.info('backup stored', { repository: this.displayUri, snapshotId, filename, dataAdded: summary.dataAdded, bytes: summary.totalBytesProcessed });
    return { ...summary, snapshotId, startedAt };
  }

  /** restic 0.14 reports the short id in the summary; the rest of Wild Backup keys on the full one. */
  private async resolveSnapshotId(shortId: string, opts: CallOptions): Promise<string> {
    const cached = await this.cachedSnapshotId(shortId);
    if (cached) return cached;
    const lines = await this.run('snapshots', [shortId], { signal: opts.signal, noLock: true });
    const found = parseSnapshots(jsonLines(lines)[0] ?? []).find((s) => s.id.startsWith(shortId));
    if (!found) throw new ResticError(`snapshot ${shortId} was written but cannot be listed`, { command: 'snapshots' });
    return found.id;
  }

  /**
   * `restic dump <snapshot> <path>` as a stream with backpressure (restic blocks while the reader
   * is slow). Errors (named, redacted) arrive as the stream's error, after the bytes restic wrote;
   * destroying the stream stops restic.
   */
  dump(snapshotId: string, path: string, opts: CallOptions = {}): Readable {
    let proc: ResticProcess | undefined;
    let finished = false;
    const out = new Readable({
      read() {
        proc?.child.stdout.resume();
      },
      destroy(err, callback) {
        if (!finished) proc?.stop('consumer');
        callback(err);
      },
    });
    const bad = !(SNAPSHOT_ID.test(snapshotId) || snapshotId === 'latest')
      ? invalid('snapshotId', 'must be a hex snapshot id')
      : !path.startsWith('/')
        ? invalid('path', 'must be absolute, as stored in the snapshot')
        : undefined;
    if (bad) {
      process.nextTick(() => out.destroy(bad));
      return out;
    }
    // A restic that read a file back damaged, or met a vanished file, before its first byte (see
    // run) runs again; after its first byte the reader has part of the file, and the error is the reader's.
    let emitted = 0;
    const launch = (runNo: number): void => {
      this.start('dump', [snapshotId, path], { ...opts, json: false, stopOnVanishedFile: () => emitted === 0 && runNo < RUN_AGAIN_RUNS })
        .then(({ process: p, prepared }) => {
          proc = p;
          if (out.destroyed) p.stop('consumer');
          p.child.stdout.on('data', (chunk: Buffer) => {
            emitted += chunk.length;
            if (!out.push(chunk)) p.child.stdout.pause();
          });
          p.wait()
            .then(
              () => {
                finished = true;
                out.push(null);
              },
              async (err: unknown) => {
                // The error reaches the reader once no lock of this restic is left behind.
                await this.afterFailure('dump', {}, p, err);
                if (runAgainReason(err) && emitted === 0 && runNo < RUN_AGAIN_RUNS && !out.destroyed && !opts.signal?.aborted) {
                  if (err instanceof ResticInvalidDataError) await this.waitToRunAgain('dump', err, runNo, opts.signal);
                  if (!out.destroyed && !opts.signal?.aborted) return launch(runNo + 1);
                }
                finished = true;
                out.destroy(err as Error);
              },
            )
            .finally(() => prepared.cleanup().catch(() => undefined));
        })
        .catch((err: unknown) => out.destroy(err as Error));
    };
    launch(1);
    return out;
  }

  /** `restic stats --mode raw-data` (bytes stored) or `restore-size` (bytes a restore writes). */
  async stats(mode: StatsMode, opts: CallOptions = {}): Promise<ResticStats> {
    const lines = await this.run('stats', ['--mode', mode], { ...opts, noLock: true });
    const [json] = jsonLines(lines);
    if (json === undefined) throw new ResticError('restic stats printed no JSON', { command: 'stats' });
    return parseStats(mode, json);
  }

  /** The figures of GraphQL's RepositoryStats, cached like snapshots until our next write. */
  async repositoryStats(opts: CallOptions & { refresh?: boolean } = {}): Promise<RepositoryStatistics> {
    const cached = opts.refresh ? undefined : repositoryCache.get<RepositoryStatistics>(this.cacheKey, 'stats');
    if (cached) return cached;
    const shared = repositoryCache.load(this.cacheKey, 'stats', async () => {
      const [raw, restore, snapshots] = await Promise.all([
        this.stats('raw-data', { timeoutMs: opts.timeoutMs }),
        this.stats('restore-size', { timeoutMs: opts.timeoutMs }),
        this.snapshots({ timeoutMs: opts.timeoutMs }),
      ]);
      const times = snapshots.map((s) => s.time).sort();
      return {
        totalSize: raw.totalSize,
        totalUncompressedSize: raw.totalUncompressedSize,
        logicalSize: restore.totalSize,
        deduplicationRatio: raw.totalSize > 0 ? restore.totalSize / raw.totalSize : 0,
        compressionRatio: raw.compressionRatio,
        snapshotCount: snapshots.length,
        oldestSnapshotAt: times[0],
        latestSnapshotAt: times[times.length - 1],
      };
    });
    return this.waitShared(shared, opts);
  }

  /** Removes snapshots by id, or by a keep policy; with prune also frees their data. */
  async forget(target: ForgetTarget, opts: ForgetOptions = {}): Promise<ForgetResult> {
    if ('snapshotIds' in target && target.snapshotIds.length === 0) return { groups: [], removedIds: [] };
    const args = forgetArgs(target, opts);
    try {
      const lines = await this.run('forget', args, opts);
      if ('snapshotIds' in target) return { groups: [], removedIds: [...target.snapshotIds] };
      const groups = jsonLines(lines).filter(Array.isArray).flatMap((json) => parseForget(json));
      return { groups, removedIds: groups.flatMap((g) => g.remove.map((s) => s.id)) };
    } finally {
      if (!opts.dryRun) this.invalidate();
    }
  }

  /** `restic check`: a damaged repository is a result (ok: false), not an exception. */
  async check(opts: CheckOptions = {}): Promise<CheckResult> {
    const args = checkArgs(opts.readDataSubset);
    try {
      const lines = await this.run('check', args, { ...opts, json: (await this.features()).jsonCheck });
      return { ok: true, messages: lines.map(scrub) };
    } catch (err) {
      // A file read back damaged is a finding; any other named error (password, lock, network)
      // says nothing about the data: rethrow.
      if (err instanceof ResticError && (err.constructor === ResticError || err instanceof ResticInvalidDataError) && err.exitCode === 1) {
        return { ok: false, messages: err.stderrTail.split('\n').filter(Boolean) };
      }
      throw err;
    }
  }

  /** Removes stale locks (all locks with removeAll: only when no other restic can be running). */
  /**
   * `restic prune`: frees the data no snapshot references any more (needs an exclusive lock).
   * It also removes the cache folders of repositories no restic of this server used for 30 days
   * (`--cleanup-cache`; restic touches a repository's folder each time it opens it): a repository
   * moved to another backend, or made anew, leaves its index and tree packs on Wild Central's
   * disk otherwise, and restic never removes them by itself.
   */
  async prune(opts: CallOptions = {}): Promise<string[]> {
    try {
      return await this.run('prune', ['--cleanup-cache'], { ...opts, json: false });
    } finally {
      this.invalidate();
    }
  }

  async unlock(opts: CallOptions & { removeAll?: boolean } = {}): Promise<void> {
    await this.run('unlock', opts.removeAll ? ['--remove-all'] : [], { ...opts, json: false });
  }

  /** `restic key list`: the repository's keys; `current` is the one this repository's password opened. */
  async keys(opts: CallOptions = {}): Promise<Array<{ id: string; current: boolean }>> {
    const [json] = jsonLines(await this.run('key', ['list'], opts));
    if (!Array.isArray(json)) throw new ResticError('restic key list printed no JSON', { command: 'key' });
    return json.map((k: { id?: unknown; current?: unknown }) => ({ id: String(k.id), current: k.current === true }));
  }

  /**
   * `restic key add`: a key for `password`, which goes to restic on its stdin (asked twice, as at a
   * terminal), never in an argv or a file. Not `--new-password-file /dev/stdin`: our stdin is a
   * socket, which Linux does not open by path.
   */
  async addKey(password: string, opts: CallOptions = {}): Promise<void> {
    if (/[\r\n]/.test(password)) throw invalid('password', 'must be one line');
    await this.run('key', ['add'], { ...opts, json: false, stdin: Readable.from([`${password}\n${password}\n`]) });
  }

  /** `restic key remove <id>`: restic refuses to remove the key it was opened with. */
  async removeKey(id: string, opts: CallOptions = {}): Promise<void> {
    if (!/^[0-9a-f]{8,64}$/.test(id)) throw invalid('keyId', `not a key id: ${JSON.stringify(id)}`);
    await this.run('key', ['remove', id], { ...opts, json: false });
  }

  // --- plumbing ---

  /**
   * Waits for a load shared with other callers (repositoryCache) only as long as this caller's own
   * bounds allow, whatever bounds the caller that started it gave restic: its signal rejects with
   * ResticAbortError, its timeoutMs with ResticUnreachableError (as restic's own timeout does).
   */
  private waitShared<T>(shared: Promise<T>, opts: CallOptions): Promise<T> {
    const { signal, timeoutMs } = opts;
    if (!signal && timeoutMs === undefined) return shared;
    if (signal?.aborted) return Promise.reject(new ResticAbortError('cancelled'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => settle(() => reject(new ResticAbortError('cancelled')));
      const timer = timeoutMs === undefined ? undefined : setTimeout(
        () => settle(() => reject(new ResticUnreachableError(`no answer from the repository at ${this.displayUri} within ${Math.round(timeoutMs / 1000)} s`))),
        timeoutMs,
      );
      const settle = (then: () => void) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        then();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      shared.then((v) => settle(() => resolve(v)), (e: unknown) => settle(() => reject(e)));
    });
  }

  /**
   * Runs a command; when a lock stops it, stale locks are removed (`restic unlock`: only locks of
   * dead processes on this host, or not refreshed for 30 minutes; live ones stay) and it runs once
   * more. A restic that was killed (OOM, SIGKILL, a crash of this server) leaves its lock behind,
   * and restic 0.14 lets such a lock block every exclusive command (forget, prune, check) until
   * someone unlocks. When a file read back damaged (ResticInvalidDataError: most often one another
   * restic was still writing), it runs again after a wait, up to RUN_AGAIN_RUNS times; when it met
   * a lock, snapshot or index file that another restic had just removed (ResticVanishedFileError),
   * at once. A command fed from a stream cannot run twice, so it is not retried (the backup
   * pipeline retries an artifact whose restic failed so before it read a byte).
   */
  private async run(command: string, args: string[], opts: RunOptions): Promise<string[]> {
    // A command fed no input can simply run again; one fed input cannot (its caller may, see backupStdin).
    const mayRunAgain = () => !opts.stdin && !opts.signal?.aborted;
    for (let run = 1; ; run++) {
      try {
        // A command that waits on a vanished lock or snapshot is stopped and run again; its last
        // run is let wait (restic then goes on without that file).
        const stopOnVanishedFile = opts.stopOnVanishedFile ?? (mayRunAgain() && run < RUN_AGAIN_RUNS);
        return await this.runOnce(command, args, { ...opts, stopOnVanishedFile });
      } catch (err) {
        const stillAgain = mayRunAgain();
        if (err instanceof ResticVanishedFileError && stillAgain && run < RUN_AGAIN_RUNS) {
          this.log.info('restic met a file another restic had just removed, running it again', { command, repository: this.displayUri, file: `${err.file.type}/${err.file.id}` });
          continue;
        }
        // Not check: it holds the exclusive lock (no restic writes meanwhile) and reads without our
        // cache, so what it reads damaged is damaged, and is its finding (see check).
        if (err instanceof ResticInvalidDataError && stillAgain && command !== 'check' && run < RUN_AGAIN_RUNS) {
          await this.waitToRunAgain(command, err, run, opts.signal);
          if (opts.signal?.aborted) throw err;
          continue;
        }
        if (!(err instanceof ResticLockedError) || !stillAgain || command === 'unlock' || command === 'init') throw err;
        try {
          await this.runOnce('unlock', [], { signal: opts.signal, timeoutMs: opts.timeoutMs, json: false });
        } catch {
          throw err;
        }
        this.log.info('removed stale locks, trying again', { command, repository: this.displayUri });
        return this.runOnce(command, args, opts);
      }
    }
  }

  /** Before a command that read a file back damaged runs again: 1 s after the first run, 2 s after the second. */
  private async waitToRunAgain(command: string, err: ResticInvalidDataError, run: number, signal?: AbortSignal): Promise<void> {
    this.log.info('a file of the repository read back damaged, trying again', { command, repository: this.displayUri, file: `${err.file.type}/${err.file.id}` });
    await sleep(INVALID_DATA_WAIT_MS * run, undefined, { signal }).catch(() => undefined);
  }

  /**
   * After a failed run: sweeps stale locks if this restic took a lock and may have left it, and
   * removes from restic's cache a file it read back damaged. restic 0.14 caches index and snapshot
   * files as it downloads them and never checks its cache again: a torn copy left there would fail
   * every later run of this repository, even once the file in the repository is whole. The same
   * for the packs holding trees it caches: a blob read back damaged drops them (dropCachedFile).
   */
  private async afterFailure(command: string, opts: RunOptions, proc: ResticProcess, err: unknown): Promise<void> {
    if (err instanceof ResticInvalidDataError) await this.dropCachedFile(err.file);
    if (takesLock(command, opts) && proc.mayHaveLeftLock()) await this.sweepStaleLocks();
  }

  /** restic's cache: <dataDir>/cache/restic (a folder per repository id). */
  private cacheDir(): string {
    return join(this.options.dataDir, 'cache', 'restic');
  }

  /**
   * The paths of restic's cached copies of files (index, snapshot, pack) whose id starts with
   * `prefix`, or of every file of that type without one, in every repository's cache folder (ids
   * are hashes).
   */
  private async cachedCopies(type: string, prefix?: string): Promise<string[]> {
    const folder = CACHE_FOLDER[type];
    if (!folder || (prefix !== undefined && prefix.length < 2)) return [];
    const cacheDir = this.cacheDir();
    const found: string[] = [];
    for (const repoId of await readdir(cacheDir).catch(() => [] as string[])) {
      const typeDir = join(cacheDir, repoId, folder);
      const subs = prefix === undefined ? await readdir(typeDir).catch(() => [] as string[]) : [prefix.slice(0, 2)];
      for (const sub of subs) {
        for (const name of await readdir(join(typeDir, sub)).catch(() => [] as string[])) {
          if (prefix === undefined ? CACHED_NAME.test(name) : name.startsWith(prefix)) found.push(join(typeDir, sub, name));
        }
      }
    }
    return found;
  }

  /**
   * Removes the cached copies of a file restic named by its short id. A damaged blob names no
   * file: which pack holds it is in the (encrypted) index, and which cache folder is this
   * repository's is its id, which would take a restic run to learn. So every cached pack goes:
   * restic caches only the packs that hold trees, and downloads them again as it needs them.
   */
  private async dropCachedFile(file: { type: string; id: string }): Promise<void> {
    if (file.type === 'blob') return this.dropCachedPacks(file.id);
    try {
      for (const copy of await this.cachedCopies(file.type, file.id)) {
        await rm(copy, { force: true });
        this.log.info('removed a damaged file from the restic cache', { repository: this.displayUri, file: `${file.type}/${basename(copy)}` });
      }
    } catch (err) {
      this.log.warn('could not remove a damaged file from the restic cache', { repository: this.displayUri, file: `${file.type}/${file.id}`, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /**
   * Removes every pack in restic's cache (see dropCachedFile): the files only, not their folders,
   * where a restic running meanwhile may be saving a pack (a temporary file, then renamed); had its
   * folder gone, its save would fail, and restic 0.14 retries such a load for ~40 s.
   */
  private async dropCachedPacks(blobId: string): Promise<void> {
    try {
      const packs = await this.cachedCopies('data');
      for (const pack of packs) await rm(pack, { force: true });
      if (packs.length > 0) this.log.info('removed the cached packs from the restic cache, after a blob read back damaged', { repository: this.displayUri, blob: blobId.slice(0, 10), packs: packs.length });
    } catch (err) {
      this.log.warn('could not remove the cached packs from the restic cache', { repository: this.displayUri, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /**
   * `restic unlock` after a restic that may have left its lock (ResticProcess.mayHaveLeftLock), so
   * that a cancelled or failed command leaves the repository as it found it. It removes only
   * stale locks (of dead processes on this host, or not refreshed for 30 minutes): restics still
   * running keep theirs. Requests coalesce: one waiting sweep serves every request made before it
   * starts. Never throws: a lock it could not remove is removed by the next exclusive command.
   */
  private sweepStaleLocks(): Promise<void> {
    if (this.sweepQueued) return this.sweepQueued;
    const next = this.sweeping.then(async () => {
      this.sweepQueued = undefined;
      try {
        await this.run('unlock', [], { json: false, timeoutMs: DEFAULT_STATUS_TIMEOUT_MS });
      } catch (err) {
        this.log.warn('could not remove stale locks', { repository: this.displayUri, error: err instanceof Error ? err.message : String(err) });
      }
    });
    this.sweepQueued = next;
    this.sweeping = next;
    return next;
  }

  private async runOnce(command: string, args: string[], opts: RunOptions): Promise<string[]> {
    let started: { process: ResticProcess; prepared: PreparedBackend };
    try {
      started = await this.start(command, args, opts);
    } catch (err) {
      opts.stdin?.destroy();
      throw err;
    }
    const { process: proc, prepared } = started;
    opts.onStart?.(proc);
    try {
      const lines: string[] = [];
      readLines(proc.child.stdout, (line) => (opts.onLine ? opts.onLine(line) : lines.push(line)));
      await proc.wait();
      const unreadable = command === 'snapshots' ? unreadableSnapshotFailure(proc.stderr(), this.displayUri) : undefined;
      if (unreadable) {
        opts.onPartialListing?.({ error: unreadable, lines, unreadable: unreadableSnapshots(proc.stderr()) });
        throw unreadable;
      }
      return lines;
    } catch (err) {
      // Before the input is destroyed: its consumers' errors would arrive before restic's.
      await this.afterFailure(command, opts, proc, err);
      if (opts.stdin && !opts.stdin.destroyed) opts.stdin.destroy();
      throw err;
    } finally {
      await prepared.cleanup();
    }
  }

  private async start(command: string, args: string[], opts: RunOptions): Promise<{ process: ResticProcess; prepared: PreparedBackend }> {
    if (opts.signal?.aborted) throw new ResticAbortError(`restic ${command} was cancelled`, { command });
    const version = await this.version();
    const dataDir = this.options.dataDir;
    const prepared = await this.plugin.prepare(this.settings, { dataDir, resticVersion: version, signal: opts.signal });
    try {
      processSecrets.merge(prepared.secrets);
      const cacheDir = this.cacheDir();
      await mkdir(cacheDir, { recursive: true, mode: 0o700 });
      const env: Record<string, string> = { LC_ALL: 'C' };
      for (const key of PASS_THROUGH_ENV) {
        const v = process.env[key];
        if (v !== undefined) env[key] = v;
      }
      Object.assign(env, prepared.env, opts.extraEnv, { RESTIC_PASSWORD: this.settings.password });
      const argv = [
        ...(opts.json === false ? [] : ['--json']),
        ...(opts.noLock ? ['--no-lock'] : []),
        '--cache-dir', cacheDir,
        ...prepared.args,
        command,
        ...args,
      ];
      const proc = new ResticProcess({
        binary: this.binary,
        argv,
        env,
        command,
        displayUri: this.displayUri,
        redact: (text) => prepared.secrets.redact(scrub(text)),
        log: this.log,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        stdin: opts.stdin,
        stopOnVanishedFile: opts.stopOnVanishedFile,
        onSpawn: this.options.onSpawn,
        killGraceMs: this.options.killGraceMs,
        nice: this.nice,
        diagnostics: prepared.diagnostics,
      });
      return { process: proc, prepared };
    } catch (err) {
      await prepared.cleanup();
      throw err;
    }
  }
}

/** Whether the command locks the repository (restic 0.14: all but these, and --no-lock runs). */
function takesLock(command: string, opts: RunOptions): boolean {
  return !opts.noLock && !['unlock', 'init', 'version', 'cat'].includes(command);
}

/** $WILD_BACKUP_RESTIC_NICE (0-19) when set to one; else undefined (the default, RESTIC_NICE). */
function niceFromEnv(): number | undefined {
  const v = process.env.WILD_BACKUP_RESTIC_NICE;
  return v !== undefined && /^(1?[0-9])$/.test(v) ? Number(v) : undefined;
}
