// PVC restore: a helper pod mounting the volume extracts the tar beside the live data (a hidden
// directory on the same volume), the listing is checked against the manifest as the bytes pass,
// then the live entries move aside and the restored ones into place. The old entries are removed
// only when the whole restore succeeded. Files absent from the backup are gone afterwards; modes
// and mtimes are the backed-up ones (tar -p as root).
//
// In a restore (the app stopped), a file the same as the live one is not written again: the side
// copy takes a hard link to it (tar-link.ts), and its content is checked against the backup's
// bytes as they pass. So the copy needs room only for the files that changed, not the whole volume.
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHelperPod, deleteHelperPod, findPvcMount, listPvcs, namespaceExists, waitForHelperPod, type KubeClient } from '../../kube/index.js';
import { createdThenAbortable, filledOrDiscarded, whileClusterAnswers, type ArtifactRestorer, type RestoreTarget, type SideDescription, type SideRestore } from '../../engine/restore/side.js';
import { podLines, podText, programMissing, streamIntoPod, type PodTarget } from '../exec-source.js';
import { TarScanner, type TarListing } from './tar-scan.js';
import { TarLinker, type LiveListing } from './tar-link.js';
import { ensureRoomFor, NotEnoughSpaceError, outOfRoom, sideCopyBytes } from '../free-space.js';

/**
 * The restore's (and a drill's) working directories at the volume root: the extracted backup, and
 * the live entries moved aside until commit or discard. PVC backups leave both out (pvc.ts).
 */
export const RESTORE_DIR_PREFIX = '.wild-backup-restore-';
export const OLD_DIR_PREFIX = '.wild-backup-old-';
/** In the restore dir while it fills: a symlink to the volume root, through which tar links live files. */
export const LIVE_LINK = `${RESTORE_DIR_PREFIX}live`;

const ENTRIES = '"$D"/* "$D"/.[!.]* "$D"/..?*';
/**
 * Scripts run with values as positional args only: $1 root, $2 restore dir name, $3 old dir name.
 * SWAP_IN gives the root the backup's mode; the root's own is kept as the mode of $3 (made with it,
 * never changed: no file in $3 that a live entry of the same name could overwrite), and SWAP_BACK
 * gives it back.
 */
const SWAP_IN = `set -e; cd "$1"; m=$(stat -c %a "$2"); rm -f "$2/${LIVE_LINK}"; mkdir -p -m "$(stat -c %a .)" "$3"
for f in * .[!.]* ..?*; do case "$f" in "$2"|"$3") continue;; esac; if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" "$3/"; fi; done
touch "$3/.wild-backup-phase-b"
D="$2"; for f in ${ENTRIES}; do if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" ./; fi; done
chmod "$m" .`;
const SWAP_BACK = `set -e; cd "$1"; [ -d "$3" ] || exit 0
if [ -e "$3/.wild-backup-phase-b" ]; then mkdir -p "$2"
  for f in * .[!.]* ..?*; do case "$f" in "$2"|"$3") continue;; esac; if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" "$2/"; fi; done
  rm -f "$3/.wild-backup-phase-b"; fi
chmod "$(stat -c %a "$3")" .
D="$3"; for f in ${ENTRIES}; do if [ -e "$f" ] || [ -L "$f" ]; then mv -- "$f" ./; fi; done
rmdir "$3"`;

interface PvcDescription extends SideDescription {
  kind: 'pvc';
  namespace: string;
  pvc: string;
  restoreDir: string;
  oldDir: string;
}

interface Helper { target: PodTarget; root: string; release: () => Promise<void> }

/**
 * The live volume's regular files ($1 its root) with size, mtime, mode, owner and link count: this
 * server's work directories left out, and names a line cannot carry (a newline, $2; a backslash,
 * which sha256sum's lines escape, $3). GNU and busybox find and stat alike.
 */
export const LIST_LIVE = `cd "$1" && find . -xdev -path './.wild-backup-*' -prune -o -type f ! -path "$2" ! -path "$3" -exec stat -c '%s %Y %a %u %g %h %n' {} +`;

async function liveFiles(client: KubeClient, target: PodTarget, root: string, signal: AbortSignal): Promise<{ files: LiveListing; bytes: number }> {
  const files: LiveListing = new Map();
  let bytes = 0;
  await podLines(client, target, ['sh', '-c', LIST_LIVE, 'wild-backup', root, '*\n*', '*\\\\*'], (line) => {
    const f = liveLine(line);
    if (f) {
      files.set(f.name, f.meta);
      bytes += f.size;
    }
  }, signal);
  return { files, bytes };
}

/**
 * One line of LIST_LIVE: the file's name (without "./") and its metadata as TarLinker compares it;
 * null for a file with other names too. Linking it would give the restored copy the live tree's
 * sharing (two files of the backup made one by a dedup tool since), not the backup's.
 */
export function liveLine(line: string): { name: string; meta: string; size: number } | null {
  const m = /^(\d+) (\d+) ([0-7]+) (\d+) (\d+) (\d+) \.\/(.+)$/.exec(line);
  if (!m || m[6] !== '1') return null;
  return { name: m[7]!, meta: `${m[1]} ${m[2]} ${parseInt(m[3]!, 8).toString(8)} ${m[4]} ${m[5]}`, size: Number(m[1]) };
}

/** One line of CHECK_LINKED: how many matched (its last line), or a file that differs. */
export function checkLine(line: string): { matched: number } | { differs: string } | null {
  const ok = /^wild-backup-checked (\d+)$/.exec(line);
  const bad = /^\.\/(.*): FAILED/.exec(line);
  return ok ? { matched: Number(ok[1]) } : bad ? { differs: bad[1]! } : null;
}

/**
 * Checks the linked live files ("sha256  ./name" lines on stdin, then an end line; $1 the root)
 * against the backup's bytes. Prints the lines of those that differ and how many matched.
 */
export const CHECK_LINKED = `cd "$1" && awk '$0 == "wild-backup-end" { exit } { print }' | sha256sum -c - 2>/dev/null | awk '/: OK$/ { n++; next } { print } END { print "wild-backup-checked " n + 0 }'`;

async function checkLinked(client: KubeClient, target: PodTarget, root: string, checklist: Readable, signal: AbortSignal): Promise<{ matched: number; differ: string[] }> {
  const differ: string[] = [];
  let matched = -1;
  await podLines(client, target, ['sh', '-c', CHECK_LINKED, 'wild-backup', root], (line) => {
    const c = checkLine(line);
    if (c && 'matched' in c) matched = c.matched;
    else if (c) differ.push(c.differs);
  }, signal, checklist);
  return { matched, differ };
}

/** The drill's (or restore's) line for a volume whose listing is the backup's; throws when it is not. */
function listingChecked(pvc: string, got: TarListing, recorded?: Record<string, unknown>): string {
  if (recorded?.listingSha256 && (got.files !== recorded.files || got.bytes !== recorded.bytes || got.listingSha256 !== recorded.listingSha256)) {
    throw new Error(`volume ${pvc}: restored ${got.files} files / ${got.bytes} bytes, backup had ${String(recorded.files)} files / ${String(recorded.bytes)} bytes (listing differs)`);
  }
  return `volume ${pvc}: ${got.files} files, ${got.bytes} bytes, listing as recorded`;
}

/**
 * A drill's side copy is scratch, so on a volume without room for one (a big photo library on a
 * volume more than half full) the drill reads the backup's tar back whole and checks its listing,
 * and says it did not extract it, instead of failing for want of room at every drill. Nothing is
 * made in the cluster, so there is nothing to record, swap or drop.
 */
async function readBackOnly(pvc: string, recorded: Record<string, unknown>, stream: Readable, signal: AbortSignal): Promise<SideRestore> {
  const scanner = new TarScanner();
  await pipeline(stream, scanner, new Writable({ write: (_chunk, _enc, cb) => cb() }), { signal });
  const got = scanner.result();
  const refuse = (): Promise<void> => Promise.reject(new Error(`volume ${pvc} was read back, not restored: there is nothing to swap in`));
  return {
    description: { kind: 'pvc', pvc },
    check: async () => `${listingChecked(pvc, got, recorded)}; read back whole, not extracted: the volume has no room for a scratch copy beside its live data`,
    swapIn: refuse,
    swapBack: async () => undefined,
    commit: refuse,
    discard: async () => undefined,
  };
}

/** How long the preflight's du of a volume may take. */
const DU_BOUND_MS = 120_000;

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function helperFor(client: KubeClient, namespace: string, pvc: string, image?: string, signal?: AbortSignal): Promise<Helper> {
  const h = await createHelperPod(client, { namespace, pvc, image, readOnly: false, signal });
  try {
    const running = await waitForHelperPod(client, h, { namespace, pvc, signal });
    return { target: { namespace, pod: running.name, container: running.container }, root: running.mountPath, release: () => deleteHelperPod(client, h) };
  } catch (err) {
    await deleteHelperPod(client, h).catch(() => undefined);
    throw err;
  }
}

/**
 * The steps run in a helper pod that mounts the volume: the one that filled the side copy, or
 * (after it was released, or in a recovery) a new one, made when a step needs it. Commit and
 * discard release it; so does close, whatever happened.
 */
function handle(client: KubeClient, first: Helper | undefined, d: PvcDescription, image?: string, listing?: () => TarListing, recorded?: Record<string, unknown>, note?: () => string): SideRestore {
  let pod = first;
  const release = async (): Promise<void> => {
    const p = pod;
    pod = undefined;
    await p?.release();
  };
  const sh = async (script: string, signal?: AbortSignal) => {
    pod ??= await helperFor(client, d.namespace, d.pvc, image, signal);
    return podText(client, pod.target, ['sh', '-c', script, 'wild-backup', pod.root, d.restoreDir, d.oldDir], signal);
  };
  return {
    description: d,
    close: release,
    async check() {
      const got = listing?.();
      return got ? listingChecked(d.pvc, got, recorded) + (note?.() ?? '') : `volume ${d.pvc}: restored`;
    },
    async swapIn(signal) {
      await sh(SWAP_IN, signal);
    },
    async swapBack(signal) {
      await sh(SWAP_BACK, signal);
    },
    async commit(signal) {
      try {
        await sh('cd "$1" && rm -rf -- "$3" "$2"', signal);
      } finally {
        await release();
      }
    },
    async discard(signal) {
      try {
        await sh('cd "$1" && rm -rf -- "$2"', signal);
      } finally {
        await release();
      }
    },
  };
}

export const pvcRestorer: ArtifactRestorer = {
  async preflight(t, artifact, signal) {
    // A volume the target app does not have (a clone of another kind of app, a PVC renamed since
    // the backup) would leave the helper pod pending until its start bound, with the app stopped.
    const pvcs = await listPvcs(t.client, t.app.name, { signal, timeoutMs: 15_000 });
    if (!pvcs.some((p) => p.name === artifact.name)) {
      // No namespace at all: the app is not deployed (deleted, or a rebuilt cluster).
      if (pvcs.length === 0 && !(await namespaceExists(t.client, t.app.name, { signal, timeoutMs: 15_000 }))) {
        throw new Error(`${t.app.name} is not deployed (the cluster has no namespace ${t.app.name}): deploy it, then restore its volume ${artifact.name}`);
      }
      throw new Error(`${t.app.name} has no volume ${artifact.name} to restore into (namespace ${t.app.name} has ${pvcs.length > 0 ? `only ${pvcs.map((p) => p.name).join(', ')}` : 'no PersistentVolumeClaim'})`);
    }
    // Through a running pod that mounts the whole volume, if there is one (the app, still up);
    // else restoreSide checks through its helper pod, once the app is stopped.
    const mount = await findPvcMount(t.client, t.app.name, artifact.name, { signal, timeoutMs: 15_000 });
    if (!mount || mount.subPath) return;
    // The unchanged files will be linked, not copied: what must fit even if every live byte is
    // the backup's is checked now (du of the volume), the rest as the copy is written. A du that
    // cannot tell (none in the image, or slower than DU_BOUND_MS over a huge tree) leaves the
    // check to the helper pod, once the app is stopped.
    const target = { namespace: t.app.name, pod: mount.pod, container: mount.container };
    const du = await podText(t.client, target, ['du', '-s', '-k', '-x', mount.mountPath], AbortSignal.any([signal, AbortSignal.timeout(DU_BOUND_MS)])).catch(() => '');
    signal.throwIfAborted();
    const live = Number(du.split(/\s/)[0]) * 1024;
    if (!du || !Number.isFinite(live)) return;
    await ensureRoomFor(t.client, target, mount.mountPath, sideCopyBytes(artifact), `the restored copy of volume ${artifact.name}, written beside its live data on the same volume`, signal, live)
      .catch((err: unknown) => { if (!programMissing(err)) throw err; }); // an image without df: the helper checks
  },
  async restoreSide(t: RestoreTarget, artifact, stream: Readable, suffix, signal, again) {
    const namespace = t.app.name;
    const pvc = artifact.name;
    const what = `the restored copy of volume ${pvc}, written beside its live data on the same volume`;
    const pod = await helperFor(t.client, namespace, pvc, t.helperImage, signal);
    let live: { files: LiveListing; bytes: number } | undefined;
    let room: number;
    try {
      // A restore stopped the app, so nothing changes the live files it links; a drill, beside the
      // running app, writes every file (or, without room for them, reads them back: readBackOnly).
      if (t.quiesced && again) live = await liveFiles(t.client, pod.target, pod.root, signal).catch((err: unknown) => { if (programMissing(err)) return undefined; throw err; });
      room = await ensureRoomFor(t.client, pod.target, pod.root, sideCopyBytes(artifact), what, signal, live?.bytes);
    } catch (err) {
      await pod.release().catch(() => undefined);
      if (t.drill && err instanceof NotEnoughSpaceError) return readBackOnly(pvc, artifact.meta, stream, signal);
      throw err;
    }
    const d: PvcDescription = { kind: 'pvc', namespace, pvc, restoreDir: `${RESTORE_DIR_PREFIX}${suffix}`, oldDir: `${OLD_DIR_PREFIX}${suffix}` };
    const scanner = new TarScanner();
    // Lines wait here while the pod hashes a big live file (a video at disk speed): 1 MiB holds
    // ~12,000 of them, so the stream is not held up (and stalled) behind one file.
    const checklist = new PassThrough({ highWaterMark: 1 << 20 });
    const linker = live && new TarLinker({ live: live.files, via: LIVE_LINK, checklist, budget: room, overBudget: () => outOfRoom(what, room), onEnd: () => checklist.end('wild-backup-end\n') });
    let second: TarLinker | undefined;
    const note = linker && ((): string => {
      const st = linker.stats;
      const redone = second?.stats ?? { writtenFiles: 0, writtenBytes: 0 };
      return `; ${st.linkedFiles - redone.writtenFiles} unchanged files (${mib(st.linkedBytes)}) kept from the live volume, their content checked, ${st.writtenFiles + redone.writtenFiles} written (${mib(st.writtenBytes + redone.writtenBytes)})${redone.writtenFiles > 0 ? `, ${redone.writtenFiles} of them after their content differed from the backup's under the same size and time` : ''}`;
    });
    const h = handle(t.client, pod, d, t.helperImage, () => scanner.result(), artifact.meta, note);
    return filledOrDiscarded(h, async () => {
      await createdThenAbortable(() => podText(t.client, pod.target, ['sh', '-c', `cd "$1" && rm -rf -- "$2" && mkdir -- "$2"${linker ? ' && ln -s .. "$2/$3"' : ''}`, 'wild-backup', pod.root, d.restoreDir, LIVE_LINK]), signal);
      stream.once('error', (e) => scanner.destroy(e));
      scanner.on('error', () => undefined); // surfaced through the exec's own failure
      const into = `${pod.root.replace(/\/+$/, '')}/${d.restoreDir}`;
      const untar = ['tar', '-x', '-p', '-f', '-', '-C', into];
      if (!linker) {
        await streamIntoPod(t.client, pod.target, untar, stream.pipe(scanner), artifact.sizeBytes, signal);
        return;
      }
      scanner.once('error', (e) => linker.destroy(e));
      const stop = new AbortController();
      const checking = checkLinked(t.client, pod.target, pod.root, checklist, AbortSignal.any([signal, stop.signal]));
      checking.catch((err: unknown) => linker.destroy(err as Error));
      let checked: Awaited<typeof checking>;
      try {
        // Shorter than the backup's stream by the linked files' bytes: tar stops at its end marker.
        // The stream's own watchdog ends with it; the pod may still be checking the live files
        // (after a stream that had little to write, all of them), bounded while the cluster answers.
        await whileClusterAnswers(t.client, streamIntoPod(t.client, pod.target, untar, stream.pipe(scanner).pipe(linker), 'ends-itself', signal), t.stallMs, signal);
        checked = await whileClusterAnswers(t.client, checking, t.stallMs, signal);
      } catch (err) {
        stop.abort(err);
        await checking.catch(() => undefined);
        throw err;
      }
      const { matched, differ } = checked;
      if (matched + differ.length !== linker.stats.linkedFiles) {
        throw new Error(`volume ${pvc}: the content check of the ${linker.stats.linkedFiles} files kept from the live volume answered for ${Math.max(0, matched) + differ.length} of them`);
      }
      await podText(t.client, pod.target, ['rm', '-f', '--', `${into}/${LIVE_LINK}`], signal);
      if (differ.length === 0) return;
      // Rare: a live file with the backup's size, mtime and owner but other bytes. Written from the
      // backup in a second pass, and with it each name the backup hard-links to it.
      const only = new Set(differ);
      const names = [...only, ...linker.hardLinks.filter(([, to]) => only.has(to)).map(([name]) => name)];
      await podText(t.client, pod.target, ['sh', '-c', 'cd "$1" && while IFS= read -r f; do rm -f -- "./$f"; done', 'wild-backup', into], signal, `${names.join('\n')}\n`);
      const only2 = new TarLinker({ only, budget: room - linker.stats.onDisk, overBudget: () => outOfRoom(what, room) });
      const reread = again!();
      reread.once('error', (e) => only2.destroy(e));
      await streamIntoPod(t.client, pod.target, untar, reread.pipe(only2), 'ends-itself', signal);
      second = only2;
    }, t);
  },
  async fromDescription(t, desc) {
    const d = desc as PvcDescription;
    return handle(t.client, undefined, d, t.helperImage);
  },
};
