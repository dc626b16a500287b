// What every backup plugin hands the pipeline: a named byte stream of known kind, with an
// estimate first and facts for the manifest once the stream has ended cleanly.
import { Transform, type Readable } from 'node:stream';
import type { ArtifactRef } from './tags.js';

export interface OpenedArtifact {
  stream: Readable;
  /**
   * Resolves after the source has ended cleanly (the command's exit code was 0) with facts for the
   * manifest (row counts, file count, server version...); rejects, naming the artifact, otherwise.
   */
  finished: Promise<Record<string, unknown>>;
  /**
   * Resolves once the stream's last byte is out and the source ended cleanly, before facts that
   * take longer (row counts after a dump); rejects like `finished`. restic's stdin ends on this,
   * so its snapshot is written while those facts are gathered. Default: `finished`.
   */
  ended?: Promise<void>;
}

export interface ArtifactSource {
  readonly artifact: ArtifactRef;
  /** File extension inside the snapshot: ".pgdump", ".sql", ".rdb", ".tar". */
  readonly extension: string;
  /** Bytes expected (database size, `du` of the volume); null when unknown. */
  estimate(signal: AbortSignal): Promise<number | null>;
  open(signal: AbortSignal): Promise<OpenedArtifact>;
}

/**
 * Passes bytes through, counting them, and holds back end-of-stream until `finished` settles: a
 * source that fails after its last byte (non-zero exit) errors the stream instead of ending it,
 * so restic never commits a snapshot of a truncated dump.
 */
export function gatedCounter(finished: Promise<unknown>, onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      onBytes(total);
      cb(null, chunk);
    },
    flush(cb) {
      finished.then(() => cb(), (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))));
    },
  });
}
