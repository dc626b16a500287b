// A restore drill's reading of an artifact it does not load (a whole-server dump, a cluster
// backup's files): the bytes come back from the repository, restic authenticating each piece.
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ArtifactRecord } from '../engine/backup/manifest.js';

/**
 * Reads `stream` to its end, through `through` (a check that watches the bytes pass, such as a
 * TarScanner) and `onChunk`, and fails unless it held as many bytes as the backup recorded.
 */
export async function readBackWhole(what: string, artifact: ArtifactRecord, stream: Readable, o: { through?: Transform; onChunk?: (chunk: Buffer) => void } = {}): Promise<number> {
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      o.onChunk?.(chunk);
      cb();
    },
  });
  await (o.through ? pipeline(stream, o.through, sink) : pipeline(stream, sink));
  if (bytes !== artifact.sizeBytes) throw new Error(`${what}: ${bytes} bytes read back, the backup recorded ${artifact.sizeBytes}`);
  return bytes;
}
