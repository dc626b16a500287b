// How every restore plugin brings data back safely: first beside the live data (a side database,
// a side directory), checked against the manifest, and only then swapped in, with the old data
// kept until the whole restore has succeeded.
import type { Readable } from 'node:stream';
import type { KubeClient } from '../../kube/index.js';
import type { ArtifactRecord } from '../backup/manifest.js';
import type { InstanceInfo, AppInfo } from '../../wild/store.js';

export interface SideRestore {
  /** Plain data naming what exists beside the live data, saved for crash recovery. */
  readonly description: SideDescription;
  /** Throws when the restored copy does not match what the manifest recorded. */
  check(signal: AbortSignal): Promise<string>;
  // Each step below is bounded by its signal (the restore gives every step a deadline): a cluster
  // that stops answering must not hold the app at 0 replicas. Each is safe to run again after an
  // interruption at any point, since an interrupted step's effect in the pod is unknown.
  /** Puts the restored copy in place of the live data; the live data is kept aside. */
  swapIn(signal?: AbortSignal): Promise<void>;
  /** Undoes swapIn from any point of it (or does nothing): the data that was live before is live again. */
  swapBack(signal?: AbortSignal): Promise<void>;
  /** Drops the old data (after the whole restore succeeded). */
  commit(signal?: AbortSignal): Promise<void>;
  /** Drops the restored copy (when the restore did not get as far as swapping it in). */
  discard(signal?: AbortSignal): Promise<void>;
  /** Lets go of what the handle holds in the cluster (a helper pod), whatever state it is in. */
  close?(): Promise<void>;
}

export interface SideDescription {
  kind: string;
  [key: string]: unknown;
}

export interface RestoreTarget {
  client: KubeClient;
  inst: InstanceInfo;
  /** The app restored into (the source app, or a clone). */
  app: AppInfo;
  /** The app the backup was taken of. */
  sourceApp: string;
  helperImage?: string;
  /** A restore drill: the side copies are scratch, checked and dropped, never swapped in; the app runs. */
  drill?: boolean;
  /** How long a restore may go without progress before it fails STALLED (the restore's stallTimeoutMs). */
  stallMs?: number;
  /** How long a swap waits for a table lock another session holds (default DEFAULT_LOCK_WAIT_MS). */
  lockWaitMs?: number;
  /**
   * The replicas the target app's workloads had before the restore scaled them to 0 ("Kind/name"
   * -> replicas); unset in a restore drill. A restorer that must start a server to prove the swap
   * (redis) starts it with these.
   */
  quiesced?: Record<string, number>;
  /**
   * Told of a side before it is filled: the restore records it, so a crash mid-fill (the server
   * killed while the bytes stream) leaves a record to discard the half-filled side by.
   */
  announce?: (side: SideRestore) => Promise<void>;
  /** Told when an announced side was dropped after its fill failed: nothing is left to undo for it. */
  dropped?: (side: SideRestore) => Promise<void>;
}

export interface ArtifactRestorer {
  /**
   * The database server app (the app named after the engine, ARCHITECTURE §1) on which restoring
   * or loading this artifact creates, renames and drops databases. A restore or a drill of it
   * holds that app too (OperationTask.alsoHolds): the server's whole dump, run meanwhile, fails
   * on a table or database that changes under it (MariaDB: "Table definition has changed").
   */
  serverApp?: string;
  /**
   * Checks what can be checked before the restore stops the app (the room for the side copy):
   * a restore that cannot succeed fails with the app still running. restoreSide checks again.
   */
  preflight?(target: RestoreTarget, artifact: ArtifactRecord, signal: AbortSignal): Promise<void>;
  /**
   * Why this artifact is not restored into this target (the restore logs it and goes on without
   * it), or null. Restore drills do not ask: they check every restorable artifact.
   */
  notRestoredBecause?(target: RestoreTarget, artifact: ArtifactRecord): string | null;
  /**
   * For an artifact a restore drill cannot load (a whole-server dump), the check of its bytes as
   * they are read back, which gives the drill's line; undefined when the drill loads it as usual.
   */
  checkUnloaded?(artifact: ArtifactRecord): ((stream: Readable) => Promise<string>) | undefined;
  /**
   * Restores the artifact's bytes beside the live data. `again` reads the artifact once more from
   * the start (a restore gives it, a drill does not), for a restorer that must go back for some of it.
   */
  restoreSide(target: RestoreTarget, artifact: ArtifactRecord, stream: Readable, suffix: string, signal: AbortSignal, again?: () => Readable): Promise<SideRestore>;
  /** Rebuilds a handle from a saved description (crash recovery). */
  fromDescription(target: Pick<RestoreTarget, 'client' | 'inst' | 'helperImage'>, d: SideDescription): Promise<SideRestore>;
}

/** The restore stopped moving: the cluster (or the repository) stopped answering mid-stream. */
export class RestoreStalledError extends Error {
  readonly code = 'STALLED';
  override name = 'RestoreStalledError';
}

/**
 * Waits for work in the cluster that shows no progress of its own while it runs (the pod checking
 * a volume's live files after the stream has ended), asking the API server every 10 s meanwhile:
 * when it has not answered for `stallMs`, the wait fails STALLED, as a stream that stops does. A
 * cluster that stops answering must not hold the app at 0 replicas; a slow pod, answering, may.
 */
export async function whileClusterAnswers<T>(client: KubeClient, work: Promise<T>, stallMs: number | undefined, signal: AbortSignal): Promise<T> {
  if (stallMs === undefined) return work;
  let answered = Date.now();
  let asked = 0;
  let asking = false;
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (Date.now() - answered > stallMs) {
        clearInterval(timer);
        reject(new RestoreStalledError(`no progress for ${Math.round(stallMs / 1000)} s: the cluster stopped answering`));
      } else if (!asking && Date.now() - asked >= Math.min(10_000, stallMs / 4)) {
        asking = true;
        asked = Date.now();
        client.call((o) => client.versionApi.getCode({}, o), { timeoutMs: Math.min(10_000, stallMs / 2), signal })
          .then(() => { answered = Date.now(); }, () => undefined)
          .finally(() => { asking = false; });
      }
    }, Math.min(1000, stallMs / 4));
  });
  try {
    return await Promise.race([work, stalled]);
  } finally {
    clearInterval(timer);
  }
}

/** Bound of one removal of a side copy or of old data: a big volume's files can take long to remove. */
export const CLEANUP_STEP_MS = 2 * 60 * 60_000;

/** Aborts after `ms` with a reason that says so (AbortSignal.timeout's says only "timeout"). */
export function deadlineSignal(ms: number): AbortSignal {
  const c = new AbortController();
  setTimeout(() => c.abort(new Error(`the step got no answer within ${ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`}`)), ms).unref();
  return c.signal;
}

/**
 * Runs a clean-up step until it succeeds or the time is up: after a fault (a database server that
 * died mid-stream), the server may need a while to come back before its side copy can be dropped.
 */
export async function retrying<T>(fn: () => Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; onRetry?: (err: Error) => void } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      opts.onRetry?.(err as Error);
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 2000));
    }
  }
}

/**
 * Creates a side copy (a side database, a side directory) to the end, then sees an abort. Not cut
 * short by the signal: an abort mid-create kills the client, not the server's work, which could
 * then create the side copy after the discard has looked for it. Creating one is quick.
 */
export async function createdThenAbortable(create: () => Promise<unknown>, signal: AbortSignal): Promise<void> {
  await create();
  signal.throwIfAborted();
}

/**
 * Fills a fresh side copy; if that fails, the copy is dropped (waiting for the server to answer
 * again when the fault was the server itself) and the failure passed on.
 */
export async function filledOrDiscarded(side: SideRestore, fill: () => Promise<void>, target?: RestoreTarget): Promise<SideRestore> {
  try {
    await target?.announce?.(side);
    await fill();
  } catch (err) {
    await retrying(() => side.discard(deadlineSignal(CLEANUP_STEP_MS)))
      .then(() => target?.dropped?.(side), () => undefined); // else the restore's rollback (or its recovery) drops it
    throw err;
  }
  return side;
}
