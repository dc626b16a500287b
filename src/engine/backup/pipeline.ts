// Streams a backup's artifacts (up to three at once) from their sources into restic (`backup --stdin`),
// then writes the manifest. Nothing is staged: bytes go from the source stream to restic's stdin
// with backpressure. If anything fails or is cancelled, every snapshot of the backup is forgotten.
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { runAgainReason, type BackupSummary, type ResticRepository, type Snapshot } from '../restic/index.js';
import type { TaskContext } from '../operations/index.js';
import { WildError } from '../../errors.js';
import { scrub } from '../../util/log.js';
import type { BackupCatalog } from './catalog.js';
import type { Leftovers } from './leftovers.js';
import { artifactNotes, artifactWarnings, manifestBytes, type ArtifactRecord, type BackupManifest } from './manifest.js';
import { gatedCounter, type ArtifactSource } from './source.js';
import { artifactFilename, MANIFEST_ARTIFACT, newBackupId, tagsFor } from './tags.js';

/** An artifact could not be backed up; the message names it and carries the cause's tail. */
export class ArtifactFailedError extends WildError {
  readonly code: string;
  override name = 'ArtifactFailedError';
  constructor(readonly artifact: string, cause: unknown) {
    const c = cause as { message?: string; code?: unknown };
    super(`${artifact}: ${scrub(c?.message ?? String(cause))}`);
    this.code = typeof c?.code === 'string' ? c.code : 'ARTIFACT_FAILED';
  }
}

/** No byte moved for too long: the repository or the source stopped answering. */
export class StalledError extends WildError {
  readonly code = 'STALLED';
  override name = 'StalledError';
}

/** Default stall bound: restic retries an unreachable backend for many minutes; we do not wait that long. */
export const DEFAULT_STALL_TIMEOUT_MS = 120_000;

/**
 * Default start bound: until restic has opened the repository (key, lock, index) and the source has
 * sent its first byte. Loading a terabyte repository's index on a small device over a slow link,
 * or pg_dump reading a large schema before its first byte, can take minutes; neither is a stall.
 */
export const DEFAULT_START_TIMEOUT_MS = 600_000;

export interface BackupRun {
  repo: ResticRepository;
  catalog: BackupCatalog;
  instance: string;
  /** null for a cluster backup. */
  app: string | null;
  sources: ArtifactSource[];
  skipped: BackupManifest['skipped'];
  reason?: string;
  ctx: TaskContext;
  /** An artifact under way that moves no byte for this long fails with StalledError. Default 2 minutes. */
  stallTimeoutMs?: number;
  /** An artifact not under way (see DEFAULT_START_TIMEOUT_MS) after this long fails with StalledError. Default 10 minutes. */
  startTimeoutMs?: number;
  /** Artifacts streamed at once. Default DEFAULT_ARTIFACT_CONCURRENCY. */
  concurrency?: number;
  /** Where a failed backup's snapshots go when the repository cannot forget them now. */
  leftovers?: Leftovers;
}

export interface BackupResult {
  backupId: string;
  manifest: BackupManifest;
}

/**
 * Three at once: the two big streams of a typical app (its database and its volume) side by side,
 * and the small ones (roles, config, a cache volume) in the third slot, so their restic start-ups
 * (each opens the repository: a key derivation and the index) overlap the big streams.
 */
export const DEFAULT_ARTIFACT_CONCURRENCY = 3;

/** Runs of an artifact whose restic read a file back damaged before it read a byte (see attempt in streamArtifacts). */
const ARTIFACT_RUNS = 3;
/** The wait before such an artifact runs again; and the bound on its source's closing before it. */
const RUN_AGAIN_WAIT_MS = 1_000;
const SOURCE_CLOSE_WAIT_MS = 10_000;

/** How long the first artifacts wait for estimates before they start (see runBackup). */
const ESTIMATE_GRACE_MS = 50;

const label = (s: ArtifactSource) => `${s.artifact.kind}:${s.artifact.name}`;

export async function runBackup(run: BackupRun): Promise<BackupResult> {
  const { repo, ctx, instance, app } = run;
  const backupId = newBackupId();
  const createdAt = new Date().toISOString();
  const scope = app ?? '_cluster';
  ctx.setBackupId(backupId);
  ctx.log(`backup ${backupId} of ${app ? `${instance}/${app}` : `instance ${instance}`} into ${repo.displayUri}`);
  const manifestArtifact = { kind: MANIFEST_ARTIFACT, name: '' };
  const manifestFile = artifactFilename(scope, manifestArtifact, '');
  // The manifest's restic starts while the last artifact streams: its start-up (key derivation,
  // index, lock: ~0.5 s) overlaps the stream, and it writes as soon as the manifest is known. A
  // failure destroys its input, which interrupts it without a snapshot (see the catch).
  const manifestInput = new PassThrough();
  manifestInput.on('error', () => undefined); // its destroy on a failure is seen by its restic
  // The end (the manifest's write, the listing) has the start bound once the artifacts are
  // written: a repository that accepts connections and never answers would hold restic forever.
  const startMs = run.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const ending = new AbortController();
  const endSignal = AbortSignal.any([ctx.signal, ending.signal]);
  let endTimer: NodeJS.Timeout | undefined;
  let manifestWrite: ReturnType<ResticRepository['backupStdin']> | undefined;
  const manifestTags = tagsFor({ instance, app, backupId, artifact: manifestArtifact });
  const writeManifest = (stdin: Readable, mayRunAgain: boolean) => repo.backupStdin({
    stdin, filename: manifestFile, host: instance, signal: endSignal, resolveId: false, keepCache: true, tags: manifestTags, stopOnVanishedFile: mayRunAgain,
  });
  const startManifest = (): void => {
    manifestWrite ??= writeManifest(manifestInput, true);
    manifestWrite.catch(() => undefined); // awaited below, or in the catch
  };

  // Estimates (database size, `du` of a volume) run while the streams start, not before them: a
  // slow `du` of a big volume delays nothing, and the operation has its total once all are in.
  const estimating = new AbortController();
  const estimates: Array<number | null | undefined> = run.sources.map(() => undefined);
  const estimated = Promise.all(run.sources.map(async (src, i) => {
    const e = await src.estimate(AbortSignal.any([ctx.signal, estimating.signal])).catch(() => null);
    estimates[i] = e;
    ctx.log(`${label(src)}: ${e === null ? 'no size known beforehand (its bytes are counted as they stream)' : `about ${e} bytes`}`);
  })).then(() => {
    if (estimating.signal.aborted) return;
    const known = estimates.filter((e): e is number => typeof e === 'number');
    ctx.progress({ bytesTotal: known.length > 0 ? known.reduce((a, b) => a + b, 0) : null });
  });
  // Local estimates (config files; sources without one) are in after a few milliseconds; those
  // still out after ESTIMATE_GRACE_MS measure something remote (a database, a volume).
  const firstPick = Promise.race([estimated, new Promise((r) => setTimeout(r, ESTIMATE_GRACE_MS).unref())]);

  try {
    ctx.progress({ bytesDone: 0 });
    await firstPick;
    const written: WrittenSnapshot[] = [];
    const records = await streamArtifacts(run, scope, backupId, estimates, startManifest, written).finally(() => estimating.abort());
    endTimer = setTimeout(() => ending.abort(new ArtifactFailedError('manifest', new StalledError(`the repository did not answer within ${Math.round(startMs / 1000)} s`))), startMs);

    ctx.progress({ phase: 'writing manifest', currentItem: manifestFile });
    const manifest: BackupManifest = {
      format: 'wild-backup/v1', backupId, kind: app ? 'APP' : 'CLUSTER', instance, app, createdAt,
      finishedAt: new Date().toISOString(), operationId: ctx.operationId, reason: run.reason ?? 'manual',
      artifacts: records, skipped: run.skipped,
    };
    const bytes = manifestBytes(manifest);
    startManifest();
    manifestInput.end(bytes);
    // A restic that read a file back damaged failed before it read its input (see attempt in
    // streamArtifacts); the manifest is known, so another restic writes it.
    let manifestSummary: Awaited<typeof manifestWrite> | undefined;
    for (let n = 1; !manifestSummary; n++) {
      try {
        manifestSummary = await manifestWrite!;
      } catch (err) {
        const why = runAgainReason(err);
        if (!why || n >= ARTIFACT_RUNS || endSignal.aborted) throw err;
        ctx.log(`manifest: ${why}; writing it again`);
        await sleep(RUN_AGAIN_WAIT_MS, undefined, { signal: endSignal }).catch(() => undefined);
        endSignal.throwIfAborted();
        manifestWrite = writeManifest(Readable.from([bytes]), n + 1 < ARTIFACT_RUNS);
      }
    }
    // Complete: every artifact's restic and then the manifest's reported its snapshot saved. A
    // query after the operation must see this backup, and queries never wait on restic (issue 8):
    // the backup's snapshots join the cached listing, their full ids (restic 0.14 prints short
    // ones) read from restic's cache, and a listing confirms them after the operation (when no
    // listing is cached, the next query joins that one). When an id is not found there, the
    // operation awaits that listing instead (~0.5 s: a restic start-up). The manifest is known
    // to the catalog by its short id, so no listing ever `restic dump`s it. A failed listing
    // fails nothing: the backup is written, and the next query lists again.
    ctx.progress({ phase: 'listing' });
    written.push({ summary: manifestSummary, filename: manifestFile, tags: manifestTags });
    await run.catalog.relistAfter(repo, backupId, manifestSummary.snapshotId, manifest, startMs, await fullSnapshots(repo, instance, written));
    const total = records.reduce((n, r) => n + r.sizeBytes, 0);
    ctx.progress({ phase: 'complete', bytesTotal: total, bytesDone: total });
    return { backupId, manifest };
  } catch (caught) {
    // The end's bound interrupted restic: the bound is the failure, not restic's interruption.
    const err: unknown = ending.signal.aborted && !ctx.signal.aborted ? ending.signal.reason : caught;
    // A manifest restic still waiting for its input is interrupted (no snapshot), and has exited
    // (leaving no lock) before the backup's snapshots are looked for.
    if (!manifestInput.writableEnded) manifestInput.destroy(err instanceof Error ? err : new Error(String(err)));
    await manifestWrite?.catch(() => undefined);
    if (!(await removeBackupSnapshots(repo, backupId, (l) => ctx.log(l)))) {
      await run.leftovers?.add(instance, backupId);
      ctx.log(`the snapshots of ${backupId} will be removed once the repository answers again`);
    }
    throw err;
  } finally {
    clearTimeout(endTimer);
  }
}

/**
 * Streams the sources into restic, up to `concurrency` at once, biggest first. The first failure
 * stops the others and is what the backup fails with. Records come back in the sources' order.
 * `estimates` fill in while this runs (undefined: not known yet).
 */
async function streamArtifacts(run: BackupRun, scope: string, backupId: string, estimates: ReadonlyArray<number | null | undefined>, onLastStarted: () => void, written: WrittenSnapshot[]): Promise<ArtifactRecord[]> {
  const { repo, ctx, instance, app } = run;
  const records: Array<ArtifactRecord | undefined> = new Array(run.sources.length);
  const counted = new Array<number>(run.sources.length).fill(0);
  const active = new Set<number>();
  const group = new AbortController();
  let failure: { err: unknown } | undefined;
  const stallMs = run.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const startMs = run.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;

  const report = () => {
    const names = [...active].map((i) => label(run.sources[i]!));
    const first = [...active][0];
    ctx.progress({
      bytesDone: counted.reduce((a, b) => a + b, 0),
      ...(names.length > 0 ? { phase: `backing up ${names.join(', ')}`, currentItem: artifactFilename(scope, run.sources[first!]!.artifact, run.sources[first!]!.extension) } : {}),
    });
  };

  /**
   * One run of an artifact: 'done', or why it is worth another run (runAgainReason) when its
   * restic failed before it opened the repository, so before it read a byte: a file read back
   * damaged (most often an index another restic was still writing), or a lock file that another
   * restic removed under it. The source is closed and may be opened again.
   */
  const attempt = async (i: number, mayRunAgain: boolean): Promise<'done' | { again: string }> => {
    const src = run.sources[i]!;
    const filename = artifactFilename(scope, src.artifact, src.extension);
    // One signal per artifact: the operation's cancel, another artifact's failure, or the watchdog.
    const stall = new AbortController();
    const signal = AbortSignal.any([ctx.signal, group.signal, stall.signal]);
    // Two clocks. Until the artifact is under way (restic has opened the repository: its first
    // status line; and the source has sent a byte or ended) the start bound; from then on, the
    // stall bound between two moves of a byte (restic's final writes after the end included).
    const startedAt = Date.now();
    let resticReady = false;
    let sourceAnswered = false;
    let lastMove = startedAt;
    const underWay = () => resticReady && sourceAnswered;
    const moved = () => { lastMove = Date.now(); };
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (underWay()) {
        if (now - lastMove > stallMs) stall.abort(new StalledError(`no progress for ${Math.round(stallMs / 1000)} s: the repository or the source stopped answering`));
      } else if (now - startedAt > startMs) {
        stall.abort(new StalledError(`did not start within ${Math.round(startMs / 1000)} s: ${resticReady ? 'the source sent nothing' : 'restic did not open the repository'}`));
      }
    }, Math.min(1000, stallMs / 4, startMs / 4));
    let opened: Awaited<ReturnType<ArtifactSource['open']>> | undefined;
    let writing: ReturnType<ResticRepository['backupStdin']> | undefined;
    try {
      // restic starts beside the source's opening (its key derivation and index take ~0.5 s, the
      // exec and the dump's first bytes take their own time); it reads once bytes arrive.
      let sourceEnded!: (p: Promise<unknown>) => void;
      const ended = new Promise<unknown>((res) => { sourceEnded = res; });
      ended.catch(() => undefined); // the counter's end waits on it; a failure reaches us through the source
      const counter = gatedCounter(ended, (n) => {
        counted[i] = n;
        sourceAnswered = true;
        moved();
        ctx.progress({ bytesDone: counted.reduce((a, b) => a + b, 0) });
      });
      ended.then(() => { sourceAnswered = true; moved(); }, () => undefined); // an empty source answered too
      const tags = tagsFor({ instance, app, backupId, artifact: src.artifact });
      writing = repo.backupStdin({
        stdin: counter, filename, host: instance, signal, resolveId: false, keepCache: true, tags, stopOnVanishedFile: mayRunAgain,
        onProgress: () => { if (!resticReady) { resticReady = true; moved(); } },
      });
      writing.catch(() => undefined); // awaited below; a source that cannot open interrupts it first
      try {
        opened = await src.open(signal);
      } catch (err) {
        // Never an end-of-file: restic is interrupted and writes nothing.
        counter.destroy(err instanceof Error ? err : new Error(String(err)));
        await writing.catch(() => undefined);
        throw err;
      }
      sourceEnded(opened.ended ?? opened.finished);
      // A failing source must fail restic's stdin (and so restic), never end it quietly.
      const feeding = pipeline(opened.stream, counter).catch((err: unknown) => { counter.destroy(err as Error); throw err; });
      const [summary, meta] = await Promise.all([writing, opened.finished, feeding]);
      records[i] = { kind: src.artifact.kind, name: src.artifact.name, filename, snapshotId: summary.snapshotId, sizeBytes: counted[i]!, addedBytes: summary.dataAdded, meta };
      written.push({ summary, filename, tags });
      ctx.log(`${label(src)}: ${counted[i]} bytes, repository grew by ${summary.dataAdded} bytes (snapshot ${summary.snapshotId.slice(0, 8)})`);
      for (const n of artifactNotes(records[i]!)) ctx.log(`${label(src)}: ${n}`);
      for (const w of artifactWarnings(records[i]!)) ctx.log(`${label(src)}: warning: ${w}`);
      return 'done';
    } catch (err) {
      // Close the source (its exec stream or process) whatever failed.
      opened?.stream.destroy();
      if (stall.signal.aborted) throw stall.signal.reason;
      if (mayRunAgain && !resticReady && !signal.aborted && writing) {
        // Whatever failed first, restic's own failure says whether it is worth another run.
        const why = runAgainReason(await writing.then(() => undefined, (e: unknown) => e));
        if (why && !signal.aborted) {
          // The source's end (a helper pod's removal) before it is opened again, within a bound.
          await Promise.race([opened?.finished.catch(() => undefined), sleep(SOURCE_CLOSE_WAIT_MS, undefined, { ref: false })]);
          return { again: why };
        }
      }
      throw err;
    } finally {
      clearInterval(watchdog);
    }
  };

  const one = async (i: number): Promise<void> => {
    const src = run.sources[i]!;
    active.add(i);
    report();
    try {
      for (let n = 1; ; n++) {
        const outcome = await attempt(i, n < ARTIFACT_RUNS);
        if (outcome === 'done') break;
        counted[i] = 0;
        report();
        ctx.log(`${label(src)}: ${outcome.again}; starting this artifact again`);
        await sleep(RUN_AGAIN_WAIT_MS, undefined, { signal: AbortSignal.any([ctx.signal, group.signal]) }).catch(() => undefined);
        if (ctx.signal.aborted || group.signal.aborted) return;
      }
    } catch (err) {
      if (!failure && !ctx.signal.aborted) failure = { err: new ArtifactFailedError(label(src), err) };
      if (!group.signal.aborted) group.abort(failure?.err);
    } finally {
      active.delete(i);
      report();
    }
  };

  // Biggest first, as far as known when a slot frees up. A source still estimating is one that
  // measures something remote (a database, a volume): it goes before those known to be small or
  // of no estimate (config, roles). Ties keep the plan's order.
  const remaining = run.sources.map((_, i) => i);
  const takeNext = (): number => {
    const rank = (i: number): number => (estimates[i] === undefined ? Infinity : estimates[i] ?? -1);
    let best = 0;
    for (let k = 1; k < remaining.length; k++) if (rank(remaining[k]!) > rank(remaining[best]!)) best = k;
    return remaining.splice(best, 1)[0]!;
  };
  const worker = async () => {
    while (remaining.length > 0 && !group.signal.aborted && !ctx.signal.aborted) {
      const i = takeNext();
      if (remaining.length === 0) onLastStarted();
      await one(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(run.concurrency ?? DEFAULT_ARTIFACT_CONCURRENCY, run.sources.length)) }, worker));
  ctx.signal.throwIfAborted();
  if (failure) throw failure.err;
  return records.map((r) => r!);
}

/** A snapshot one of the backup's restics wrote: restic's summary (a short id on restic 0.14) and what it was given. */
interface WrittenSnapshot {
  summary: Pick<BackupSummary, 'snapshotId' | 'startedAt'>;
  filename: string;
  tags: string[];
}

/**
 * The snapshots as a listing would show them, each full id read from restic's cache (see
 * ResticRepository.cachedSnapshotId); undefined when one is not found there. The time is when the
 * snapshot's restic started; the next listing brings restic's own, a few milliseconds later.
 */
async function fullSnapshots(repo: ResticRepository, host: string, written: readonly WrittenSnapshot[]): Promise<Snapshot[] | undefined> {
  const out: Snapshot[] = [];
  for (const w of written) {
    const id = await repo.cachedSnapshotId(w.summary.snapshotId);
    if (!id) return undefined;
    out.push({ id, shortId: id.slice(0, 8), time: w.summary.startedAt, hostname: host, tags: w.tags, paths: [`/${w.filename}`] });
  }
  return out;
}

/**
 * Forgets every snapshot tagged with the backup id (ours to remove: the backup did not complete).
 * False when the repository did not let us (the caller keeps the backup id as a leftover).
 */
export async function removeBackupSnapshots(repo: ResticRepository, backupId: string, log: (line: string) => void): Promise<boolean> {
  try {
    // Bounded: when the repository itself is what failed, this cannot succeed, and restic never
    // commits a snapshot whose upload failed; incomplete leftovers are also swept by retention.
    const snaps = await repo.snapshots({ tags: [`backup:${backupId}`], refresh: true, timeoutMs: 20_000 });
    if (snaps.length === 0) return true;
    await repo.forget({ snapshotIds: snaps.map((s) => s.id) }, { timeoutMs: 60_000 });
    log(`removed ${snaps.length} snapshot(s) of the incomplete backup ${backupId}`);
    return true;
  } catch (err) {
    log(`could not remove the snapshots of the incomplete backup ${backupId}: ${(err as Error).message}`);
    return false;
  }
}
