// PVC restore: a helper pod mounting the volume extracts the tar beside the live data (a hidden
// directory on the same volume), the listing is checked against the manifest as the bytes pass,
// then the live entries move aside and the restored ones into place. The old entries are removed
// only when the whole restore succeeded. Files absent from the backup are gone afterwards; modes
// and mtimes are the backed-up ones (tar -p as root).
import type { Readable } from 'node:stream';
import { createHelperPod, deleteHelperPod, findPvcMount, listPvcs, namespaceExists, waitForHelperPod, type KubeClient } from '../../kube/index.js';
import { createdThenAbortable, filledOrDiscarded, type ArtifactRestorer, type RestoreTarget, type SideDescription, type SideRestore } from '../../engine/restore/side.js';
import { podText, programMissing, streamIntoPod, type PodTarget } from '../exec-source.js';
import { TarScanner, type TarListing } from './tar-scan.js';
import { ensureRoomFor, sideCopyBytes } from '../free-space.js';

/**
 * The restore's (and a drill's) working directories at the volume root: the extracted backup, and
 * the live entries moved aside until commit or discard. PVC backups leave both out (pvc.ts).
 */
export const RESTORE_DIR_PREFIX = '.wild-backup-restore-';
export const OLD_DIR_PREFIX = '.wild-backup-old-';

const ENTRIES = '"$D"/* "$D"/.[!.]* "$D"/..?*';
/**
 * Scripts run with values as positional args only: $1 root, $2 restore dir name, $3 old dir name.
 * SWAP_IN gives the root the backup's mode; the root's own is kept as the mode of $3 (made with it,
 * never changed: no file in $3 that a live entry of the same name could overwrite), and SWAP_BACK
 * gives it back.
 */
const SWAP_IN = `set -e; cd "$1"; m=$(stat -c %a "$2"); mkdir -p -m "$(stat -c %a .)" "$3"
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
function handle(client: KubeClient, first: Helper | undefined, d: PvcDescription, image?: string, listing?: () => TarListing, recorded?: Record<string, unknown>): SideRestore {
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
      if (!got) return `volume ${d.pvc}: restored`;
      if (recorded?.listingSha256 && (got.files !== recorded.files || got.bytes !== recorded.bytes || got.listingSha256 !== recorded.listingSha256)) {
        throw new Error(`volume ${d.pvc}: restored ${got.files} files / ${got.bytes} bytes, backup had ${String(recorded.files)} files / ${String(recorded.bytes)} bytes (listing differs)`);
      }
      return `volume ${d.pvc}: ${got.files} files, ${got.bytes} bytes, listing as recorded`;
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
    await ensureRoomFor(t.client, { namespace: t.app.name, pod: mount.pod, container: mount.container }, mount.mountPath, sideCopyBytes(artifact), `the restored copy of volume ${artifact.name}, written beside its live data on the same volume`, signal)
      .catch((err: unknown) => { if (!programMissing(err)) throw err; }); // an image without df: the helper checks
  },
  async restoreSide(t: RestoreTarget, artifact, stream: Readable, suffix, signal) {
    const namespace = t.app.name;
    const pvc = artifact.name;
    const pod = await helperFor(t.client, namespace, pvc, t.helperImage, signal);
    try {
      await ensureRoomFor(t.client, pod.target, pod.root, sideCopyBytes(artifact), `the restored copy of volume ${pvc}, written beside its live data on the same volume`, signal);
    } catch (err) {
      await pod.release().catch(() => undefined);
      throw err;
    }
    const d: PvcDescription = { kind: 'pvc', namespace, pvc, restoreDir: `${RESTORE_DIR_PREFIX}${suffix}`, oldDir: `${OLD_DIR_PREFIX}${suffix}` };
    const scanner = new TarScanner();
    const h = handle(t.client, pod, d, t.helperImage, () => scanner.result(), artifact.meta);
    return filledOrDiscarded(h, async () => {
      await createdThenAbortable(() => podText(t.client, pod.target, ['sh', '-c', 'cd "$1" && rm -rf -- "$2" && mkdir -- "$2"', 'wild-backup', pod.root, d.restoreDir]), signal);
      stream.once('error', (e) => scanner.destroy(e));
      scanner.on('error', () => undefined); // surfaced through the exec's own failure
      const into = `${pod.root.replace(/\/+$/, '')}/${d.restoreDir}`;
      await streamIntoPod(t.client, pod.target, ['tar', '-x', '-p', '-f', '-', '-C', into], stream.pipe(scanner), artifact.sizeBytes, signal);
    }, t);
  },
  async fromDescription(t, desc) {
    const d = desc as PvcDescription;
    return handle(t.client, undefined, d, t.helperImage);
  },
};
