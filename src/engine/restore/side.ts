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
  /** Puts the restored copy in place of the live data; the live data is kept aside. */
  swapIn(signal?: AbortSignal): Promise<void>;
  /** Undoes swapIn: the data that was live before is live again. */
  swapBack(): Promise<void>;
  /** Drops the old data (after the whole restore succeeded). */
  commit(): Promise<void>;
  /** Drops the restored copy (when the restore did not get as far as swapping it in). */
  discard(): Promise<void>;
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
}

export interface ArtifactRestorer {
  /** Restores the artifact's bytes beside the live data. */
  restoreSide(target: RestoreTarget, artifact: ArtifactRecord, stream: Readable, suffix: string, signal: AbortSignal): Promise<SideRestore>;
  /** Rebuilds a handle from a saved description (crash recovery). */
  fromDescription(target: Pick<RestoreTarget, 'client' | 'inst' | 'helperImage'>, d: SideDescription): Promise<SideRestore>;
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
 * Fills a fresh side copy; if that fails, the copy is dropped (waiting for the server to answer
 * again when the fault was the server itself) and the failure passed on.
 */
export async function filledOrDiscarded(side: SideRestore, fill: () => Promise<void>): Promise<SideRestore> {
  try {
    await fill();
  } catch (err) {
    await retrying(() => side.discard()).catch(() => undefined);
    throw err;
  }
  return side;
}
