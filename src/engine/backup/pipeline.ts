// Streams a backup's artifacts one by one from their sources into restic (`backup --stdin`),
// then writes the manifest. Nothing is staged: bytes go from the source stream to restic's stdin
// with backpressure. If anything fails or is cancelled, every snapshot of the backup is forgotten.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ResticRepository } from '../restic/index.js';
import type { TaskContext } from '../operations/index.js';
import { WildError } from '../../errors.js';
import { scrub } from '../../util/log.js';
import type { BackupCatalog } from './catalog.js';
import type { ArtifactRecord, BackupManifest } from './manifest.js';
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
  /** An artifact that moves no byte for this long fails with StalledError. Default 2 minutes. */
  stallTimeoutMs?: number;
}

export interface BackupResult {
  backupId: string;
  manifest: BackupManifest;
  manifestSnapshotId: string;
}

const label = (s: ArtifactSource) => `${s.artifact.kind}:${s.artifact.name}`;

export async function runBackup(run: BackupRun): Promise<BackupResult> {
  const { repo, ctx, instance, app } = run;
  const backupId = newBackupId();
  const createdAt = new Date().toISOString();
  const scope = app ?? '_cluster';
  ctx.setBackupId(backupId);
  ctx.log(`backup ${backupId} of ${app ? `${instance}/${app}` : `instance ${instance}`} into ${repo.displayUri}`);

  try {
    ctx.progress({ phase: 'estimating' });
    const estimates = await Promise.all(run.sources.map((s) => s.estimate(ctx.signal).catch(() => null)));
    const known = estimates.filter((e): e is number => e !== null);
    ctx.progress({ bytesTotal: known.length > 0 ? known.reduce((a, b) => a + b, 0) : null, bytesDone: 0 });
    for (const [i, e] of estimates.entries()) ctx.log(`${label(run.sources[i]!)}: about ${e ?? '?'} bytes`);

    const records: ArtifactRecord[] = [];
    let base = 0;
    for (const src of run.sources) {
      ctx.signal.throwIfAborted();
      const filename = artifactFilename(scope, src.artifact, src.extension);
      ctx.progress({ phase: `backing up ${label(src)}`, currentItem: filename });
      let opened: Awaited<ReturnType<ArtifactSource['open']>> | undefined;
      // One signal per artifact: the operation's cancel, or the stall watchdog.
      const stall = new AbortController();
      const signal = AbortSignal.any([ctx.signal, stall.signal]);
      const stallMs = run.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
      let lastMove = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastMove > stallMs) {
          stall.abort(new StalledError(`no progress for ${Math.round(stallMs / 1000)} s: the repository or the source stopped answering`));
        }
      }, Math.min(1000, stallMs / 4));
      try {
        opened = await src.open(signal);
        let counted = 0;
        const counter = gatedCounter(opened.finished, (n) => {
          counted = n;
          lastMove = Date.now();
          ctx.progress({ bytesDone: base + n });
        });
        // A failing source must fail restic's stdin (and so restic), never end it quietly.
        const feeding = pipeline(opened.stream, counter).catch((err: unknown) => { counter.destroy(err as Error); throw err; });
        const finished = opened.finished;
        const [summary, meta] = await Promise.all([
          repo.backupStdin({ stdin: counter, filename, host: instance, signal, tags: tagsFor({ instance, app, backupId, artifact: src.artifact }) }),
          finished,
          feeding,
        ]);
        records.push({ kind: src.artifact.kind, name: src.artifact.name, filename, snapshotId: summary.snapshotId, sizeBytes: counted, addedBytes: summary.dataAdded, meta });
        ctx.log(`${label(src)}: ${counted} bytes, repository grew by ${summary.dataAdded} bytes (snapshot ${summary.snapshotId.slice(0, 8)})`);
        base += counted;
      } catch (err) {
        // Close the source (its exec stream or process) whatever failed.
        opened?.stream.destroy();
        if (ctx.signal.aborted) throw err;
        throw new ArtifactFailedError(label(src), stall.signal.aborted ? stall.signal.reason : err);
      } finally {
        clearInterval(watchdog);
      }
    }

    ctx.progress({ phase: 'writing manifest', currentItem: artifactFilename(scope, { kind: MANIFEST_ARTIFACT, name: '' }, '') });
    const manifest: BackupManifest = {
      format: 'wild-backup/v1', backupId, kind: app ? 'APP' : 'CLUSTER', instance, app, createdAt,
      finishedAt: new Date().toISOString(), operationId: ctx.operationId, reason: run.reason ?? 'manual',
      artifacts: records, skipped: run.skipped,
    };
    const summary = await repo.backupStdin({
      stdin: Readable.from([Buffer.from(JSON.stringify(manifest, null, 2) + '\n')]),
      filename: artifactFilename(scope, { kind: MANIFEST_ARTIFACT, name: '' }, ''),
      host: instance,
      tags: tagsFor({ instance, app, backupId, artifact: { kind: MANIFEST_ARTIFACT, name: '' } }),
      signal: ctx.signal,
    });
    await run.catalog.remember(summary.snapshotId, manifest);
    ctx.progress({ phase: 'complete', bytesTotal: base, bytesDone: base });
    return { backupId, manifest, manifestSnapshotId: summary.snapshotId };
  } catch (err) {
    await removeBackupSnapshots(repo, backupId, (l) => ctx.log(l));
    throw err;
  }
}

/** Forgets every snapshot tagged with the backup id (ours to remove: the backup did not complete). */
export async function removeBackupSnapshots(repo: ResticRepository, backupId: string, log: (line: string) => void): Promise<void> {
  try {
    // Bounded: when the repository itself is what failed, this cannot succeed, and restic never
    // commits a snapshot whose upload failed; incomplete leftovers are also swept by retention.
    const snaps = await repo.snapshots({ tags: [`backup:${backupId}`], refresh: true, timeoutMs: 20_000 });
    if (snaps.length === 0) return;
    await repo.forget({ snapshotIds: snaps.map((s) => s.id) }, { timeoutMs: 60_000 });
    log(`removed ${snaps.length} snapshot(s) of the incomplete backup ${backupId}`);
  } catch (err) {
    log(`could not remove the snapshots of the incomplete backup ${backupId}: ${(err as Error).message}`);
  }
}
