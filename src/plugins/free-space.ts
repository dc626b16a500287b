// Room for a side copy. A restore (and a restore drill) writes its copy beside the live data, on
// the same volume: a database server's volume shared by every app that uses it, or the app's own
// PVC. Filling it would stop that server for every app (PostgreSQL PANICs when it cannot write its
// WAL) or break the app itself, so the room is checked before the copy is made, and a restore that
// does not fit fails with a clear error that changes nothing.
import type { KubeClient } from '../kube/index.js';
import { podText, type PodTarget } from './exec-source.js';

/** Part of the filesystem left free after the copy (at least RESERVE_MIN_BYTES): the live data keeps growing meanwhile. */
const RESERVE_SHARE = 0.05;
const RESERVE_MIN_BYTES = 64 << 20;
/** The copy may be larger than the bytes recorded (a database's indexes, a filesystem's blocks). */
const GROWTH = 1.1;

export class NotEnoughSpaceError extends Error {
  readonly code = 'NOT_ENOUGH_SPACE';
  override name = 'NotEnoughSpaceError';
}

const gib = (n: number): string => (n >= 1 << 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${Math.max(1, Math.round(n / 2 ** 20))} MiB`);

/** Free and total bytes of the filesystem holding `dir` in the pod (POSIX `df -P`, busybox's too). */
export async function filesystemSpace(client: KubeClient, target: PodTarget, dir: string, signal?: AbortSignal): Promise<{ free: number; total: number }> {
  const out = await podText(client, target, ['df', '-P', '-k', dir], signal);
  // "Filesystem 1024-blocks Used Available Capacity Mounted on", then one line (a long device name may wrap it).
  const fields = out.split('\n').slice(1).join(' ').trim().split(/\s+/);
  const [total, , free] = fields.slice(1, 4).map(Number);
  if (!Number.isFinite(total) || !Number.isFinite(free)) throw new Error(`could not read the free space of ${dir} from df: ${out.slice(0, 200)}`);
  return { free: free! * 1024, total: total! * 1024 };
}

/** The bytes an artifact's side copy takes: the database's size when the backup recorded it, else the stream's. */
export function sideCopyBytes(artifact: { sizeBytes: number; meta?: Record<string, unknown> }): number {
  const db = artifact.meta?.databaseBytes;
  return Math.max(artifact.sizeBytes, typeof db === 'number' ? db : 0);
}

/**
 * Throws NotEnoughSpaceError unless the filesystem of `dir` has room for a copy of about `bytes`
 * and a reserve besides. `what` names the copy and the volume for the message. Returns the bytes
 * that may be written there before the reserve is reached.
 *
 * `shared`: bytes of the copy that may turn out to be the live data's own (a volume's unchanged
 * files, hard-linked): only the rest must fit now, and the copy is held to the room as it is written.
 */
export async function ensureRoomFor(client: KubeClient, target: PodTarget, dir: string, bytes: number, what: string, signal?: AbortSignal, shared?: number): Promise<number> {
  const { free, total } = await filesystemSpace(client, target, dir, signal);
  const reserve = Math.max(RESERVE_MIN_BYTES, Math.ceil(total * RESERVE_SHARE));
  const copy = Math.ceil(Math.max(0, bytes - (shared ?? 0)) * GROWTH);
  if (free < copy + reserve) {
    const least = shared === undefined ? '' : ' at least, for the files that differ from the live ones,';
    throw new NotEnoughSpaceError(`not enough free space for ${what}: it needs${least} about ${gib(copy)} and ${gib(reserve)} must stay free, but only ${gib(free)} of ${gib(total)} is free. ${NOTHING_CHANGED}`);
  }
  return free - reserve;
}

const NOTHING_CHANGED = 'Nothing was changed; free some space, or restore into another app (a clone)';

/** The failure of a copy that turned out larger, as it was written, than the room `ensureRoomFor` gave. */
export function outOfRoom(what: string, room: number): NotEnoughSpaceError {
  return new NotEnoughSpaceError(`not enough free space for ${what}: the files that differ from the live ones need more than the ${gib(room)} free beyond the reserve. ${NOTHING_CHANGED}`);
}
