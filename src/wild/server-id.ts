// The server id: a random name for this Wild Central, made once and kept in its data directory
// (<state>/server-id), so that it stays the same across restarts. Helper pods carry it as a label
// (src/kube/helper-pod.ts): a restarted server finds the ones an earlier run of itself left behind,
// and never touches those of another Wild Central using the same cluster.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './writer.js';
import type { DataPaths } from './paths.js';

/** What an id may look like: usable as a label value as it is. */
const SERVER_ID = /^[a-z0-9]{8,40}$/;

/** The data directory's server id, made (and written atomically) the first time. */
export async function loadServerId(paths: DataPaths): Promise<string> {
  try {
    const text = (await readFile(paths.serverIdFile, 'utf8')).trim();
    if (SERVER_ID.test(text)) return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Missing (first start) or unreadable as an id (a damaged file): a new one. The caller holds the
  // data directory's lock, so no other server writes it at the same time.
  const id = randomBytes(8).toString('hex');
  await writeFileAtomic(paths.serverIdFile, `${id}\n`, 0o644);
  return id;
}

/** A new id for one run of the server (one process start). */
export function newRunId(): string {
  return randomBytes(8).toString('hex');
}
