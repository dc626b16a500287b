// PVC volumes: an uncompressed tar stream of the volume (restic deduplicates and compresses it),
// read from the running pod that mounts it, or from a helper pod when none runs. Other volumes
// mounted inside the PVC's mount path (a configMap file by subPath, say) are left out: they are
// not on the volume. Optional exclude patterns: apps.<app>.backup.exclude.
import type { V1Pod } from '@kubernetes/client-node';
import { EXEC_STDERR_LIMIT, createHelperPod, deleteHelperPod, waitForHelperPod, type KubeClient } from '../../kube/index.js';
import type { ArtifactSource } from '../../engine/backup/source.js';
import type { AppVolume } from '../../engine/cluster.js';
import type { AppInfo } from '../../wild/store.js';
import { execSource, podText, programMissing, type PodTarget } from '../exec-source.js';
import { OLD_DIR_PREFIX, RESTORE_DIR_PREFIX } from './pvc-restore.js';
import { TarScanner } from './tar-scan.js';

/** apps.<app>.backup.exclude: tar --exclude patterns (relative to the volume root). */
export function excludePatterns(app: AppInfo): string[] {
  const backup = app.config.backup as { exclude?: unknown } | undefined;
  const ex = backup?.exclude;
  return Array.isArray(ex) ? ex.filter((p): p is string => typeof p === 'string' && p.length > 0 && p.length < 1024) : [];
}

/** Mounts of other volumes that sit inside `mountPath` in the same container, as tar excludes. */
function nestedMounts(pod: V1Pod, container: string, mountPath: string): string[] {
  const c = pod.spec?.containers?.find((x) => x.name === container);
  const root = mountPath.replace(/\/+$/, '');
  return (c?.volumeMounts ?? [])
    .map((m) => m.mountPath.replace(/\/+$/, ''))
    .filter((p) => p !== root && p.startsWith(root + '/'))
    .map((p) => './' + p.slice(root.length + 1));
}

/**
 * A restore's or drill's working directories at the volume root (pvc-restore.ts), left behind by a
 * crash or a failed clean-up: never part of a backup, or a later restore would bring them back.
 * `./` anchors them at the root: members are named `./x` (`-C mount .`), and both GNU tar (unanchored
 * matching starts at a name's components) and busybox tar (the same, FNM_PATHNAME) then match
 * `./.wild-backup-old-x` but not `./sub/.wild-backup-old-x`.
 */
export const OWN_WORK_DIRS = [RESTORE_DIR_PREFIX, OLD_DIR_PREFIX].map((p) => `./${p}*`);

export function tarCommand(mountPath: string, excludes: string[]): string[] {
  // GNU tar and busybox tar both take these; --exclude values are argv, never shell text.
  return ['tar', '-c', '-f', '-', ...[...OWN_WORK_DIRS, ...excludes].map((e) => `--exclude=${e}`), '-C', mountPath, '.'];
}

export interface VolumeSourceOptions {
  client: KubeClient;
  app: AppInfo;
  volume: AppVolume;
  helperImage?: string;
}

/**
 * GNU tar's warnings on --create that leave its archive whole, for which it exits 1: a file
 * written, shrunk (padded with zeros) or removed while tar read it, as happens on a live app's
 * volume (a log file appended, a photo uploaded). busybox tar never exits for these, and its
 * exit 1 is a failure, which no line here matches.
 */
const TAR_CHANGED = /^tar: (.+): (file changed as we read it|File removed before we read it|File shrank by \d+ bytes?; padding with zeros)$/;

/**
 * The warnings to record when tar's exit 1 only says that files changed while it read them (the
 * backup holds each such file as tar read it); null for any other exit or any other line.
 */
export function tarChangedWhileRead(exitCode: number, stderr: string): string[] | null {
  if (exitCode !== 1) return null;
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const files: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = TAR_CHANGED.exec(line);
    if (m) files.push(m[1]!);
    // A tail kept full (EXEC_STDERR_LIMIT) may start inside a line: that line alone is let go.
    else if (!(i === 0 && Buffer.byteLength(stderr) >= EXEC_STDERR_LIMIT - 4)) return null;
  }
  if (files.length === 0) return null;
  // A directory whose entries changed is named too; the volume's own root is "." to tar.
  const named = files.map((f) => (f === '.' ? "the volume's top directory" : f));
  const shown = named.slice(0, 10).join(', ') + (named.length > 10 ? ` and ${named.length - 10} more` : '');
  return [`${files.length} ${files.length === 1 ? 'file' : 'files'} changed while tar read ${files.length === 1 ? 'it' : 'them'} (the app was writing): ${shown}; the backup holds ${files.length === 1 ? 'it' : 'each'} as read, the rest of the volume is whole`];
}

/** Where a volume's tar runs; `why` says why a running app's volume is read by a helper pod. */
interface Located { target: PodTarget; mountPath: string; excludes: string[]; cleanup?: () => Promise<void>; why?: string }

/** `du -s -k`'s answer in bytes. */
const duBytes = (out: string): number | null => Number(out.split(/\s+/)[0]) * 1024 || null;

/** Whether `program` runs in the pod: false only when its image has none (busybox tar, which has no --version, runs). */
async function runs(client: KubeClient, target: PodTarget, program: string, signal: AbortSignal): Promise<boolean> {
  try {
    await podText(client, target, [program, '--version'], signal);
  } catch (err) {
    if (programMissing(err)) return false;
  }
  return true;
}

export function pvcSource(o: VolumeSourceOptions): ArtifactSource {
  const { client, app, volume } = o;
  const patterns = excludePatterns(app);
  // The pod and path are found when the source opens (the estimate may run on another pod).
  const mount = volume.mount && !volume.mount.subPath ? volume.mount : undefined;
  const mountTarget = mount && { namespace: app.name, pod: mount.pod, container: mount.container };
  const throughHelper = async (signal: AbortSignal, nodeName?: string): Promise<Located> => {
    const helper = await createHelperPod(client, { namespace: app.name, pvc: volume.name, readOnly: true, image: o.helperImage, nodeName, signal });
    try {
      const running = await waitForHelperPod(client, helper, { namespace: app.name, pvc: volume.name, signal });
      return {
        target: { namespace: running.namespace, pod: running.name, container: running.container },
        mountPath: running.mountPath,
        excludes: patterns,
        cleanup: () => deleteHelperPod(client, helper),
      };
    } catch (err) {
      await deleteHelperPod(client, helper).catch(() => undefined);
      throw err;
    }
  };
  const locate = async (signal: AbortSignal): Promise<Located> => {
    if (!mount || !mountTarget) return throughHelper(signal);
    const [pod, tarRuns] = await Promise.all([
      client.call((c) => client.core.readNamespacedPod({ namespace: app.name, name: mount.pod }, c), { signal, timeoutMs: 15_000 }),
      runs(client, mountTarget, 'tar', signal),
    ]);
    if (tarRuns) return { target: mountTarget, mountPath: mount.mountPath, excludes: [...nestedMounts(pod, mount.container, mount.mountPath), ...patterns] };
    // The app's image has no tar (a distroless image): a helper pod reads the volume, on the
    // app's node, the one node that can mount a ReadWriteOnce volume while the app runs.
    const why = `tar cannot run in ${app.name}/${mount.pod} (its image has none)`;
    if (volume.accessModes?.includes('ReadWriteOncePod')) {
      throw new Error(`${why}, and volume ${volume.name} is ReadWriteOncePod, so no other pod can mount it while the app runs: stop the app (scale it to 0) for its backup, and a helper pod reads it`);
    }
    return { ...(await throughHelper(signal, pod.spec?.nodeName)), why };
  };
  // Where the tar runs, once open has found it: a helper pod's `du` waits for it.
  let opened!: (l: Located) => void;
  const whenOpened = new Promise<Located>((resolve) => { opened = resolve; });
  let scanned: TarScanner | undefined;
  return {
    artifact: { kind: 'pvc', name: volume.name },
    extension: '.tar',
    async estimate(signal) {
      // No running pod mounts the whole volume (the app is stopped): `du` runs in the helper pod
      // that open starts, not in one started just for an estimate. The volume's capacity (a 250 GiB
      // claim holding 60 MB, say) would give the progress a percent and an ETA off by its ratio.
      // A running app's image without du (a distroless one) has no tar either: its volume is read,
      // and measured, in the helper pod that open starts.
      const inApp = mount && mountTarget && await podText(client, mountTarget, ['du', '-s', '-k', mount.mountPath], signal).catch((err: unknown) => {
        if (programMissing(err)) return null;
        throw err;
      });
      if (inApp) return duBytes(inApp);
      const l = await untilAborted(whenOpened, signal);
      const out = await podText(client, l.target, ['du', '-s', '-k', l.mountPath], signal).catch((err: unknown) => {
        if (!signal.aborted) return null; // the helper went with the stream's end
        throw err;
      });
      if (out !== null) return duBytes(out);
      // A small volume's stream can end, and its helper pod go, before that du runs: its size is
      // then known exactly. The claim's capacity (10 GiB for 235 KB) is the answer only when not.
      return scanned?.writableFinished ? scanned.archiveBytes : volume.capacityBytes ?? null;
    },
    async open(signal) {
      const l = await locate(signal);
      opened(l);
      const source = execSource({
        client, target: l.target, artifact: { kind: 'pvc', name: volume.name }, extension: '.tar',
        command: tarCommand(l.mountPath, l.excludes),
        acceptExit: tarChangedWhileRead,
        through: () => {
          const scanner = new TarScanner();
          scanned = scanner;
          return { transform: scanner, result: () => ({ ...scanner.result(), excludes: l.excludes, pod: l.target.pod, ...(l.why ? { helperBecause: l.why, notes: [`${l.why}: read by the helper pod ${l.target.pod} on the app's node, the app still running`] } : {}) }) };
        },
        cleanup: l.cleanup,
      });
      return source.open(signal);
    },
  };
}

/** `p`, or the signal's reason once it is aborted first. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}
