// A restore drill's reading of an artifact it does not load (a whole-server dump, a cluster
// backup's files, an app's settings and its database roles): the bytes come back from the
// repository, restic authenticating each piece.
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ArtifactRecord } from '../engine/backup/manifest.js';
import { TarScanner } from './volumes/tar-scan.js';

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

/**
 * A drill of an artifact that nothing loads into scratch space (a cluster backup's, an app's
 * config or roles): its bytes are read back whole and must be as many as recorded; a tar (the
 * instance's or an app's files) must be whole and hold as many files as were put in.
 */
export async function checkReadBack(artifact: ArtifactRecord, stream: Readable): Promise<string> {
  const what = `${artifact.kind}:${artifact.name}`;
  const tar = artifact.filename.endsWith('.tar') ? new TarScanner() : undefined;
  const bytes = await readBackWhole(what, artifact, stream, { through: tar });
  if (!tar) return `${what}: ${bytes} bytes read back whole, as recorded`;
  const files = artifact.meta.files;
  const names = Array.isArray(files) ? (files as string[]) : null;
  const count = names ? names.length : typeof files === 'number' ? files : null;
  if (!tar.complete) throw new Error(`${what}: not a whole tar archive (no end-of-archive marker)`);
  if (count !== null && tar.listing.files !== count) throw new Error(`${what}: ${tar.listing.files} files in the archive, the backup recorded ${count}`);
  return `${what}: ${tar.listing.files} files${names ? ` (${names.join(', ')})` : ''}, ${bytes} bytes read back whole, as recorded`;
}
