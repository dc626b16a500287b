// Redis restore, in place, for the redis app itself (the RDB is the whole instance; the apps that
// share it are not rolled back with one of them: see notRestoredBecause). Redis 7 refuses
// DEBUG RELOAD and has no "load this RDB" command, so the RDB is swapped on disk while the server
// is down: restic's stream goes into a side directory on the server's data volume (through its
// pod when it runs, else a helper pod with the server's own image, so redis-check-rdb is there),
// is checked (bytes and sha256 as recorded, redis-check-rdb, key count), then, with the server
// scaled to 0, the live dump is kept aside (hard link) and the restored one renamed over it (with
// appendonly, a fresh AOF directory whose base is that RDB, the old one moved aside); the server
// is scaled back up and its key counts per database compared with the manifest. Any failure: the
// server stopped again, the old files put back, the server started. The old files go at commit.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import { createHelperPod, deleteHelperPod, findReadyPod, listWorkloads, mountOf, scaleWorkload, waitForHelperPod, type HelperPod, type KubeClient } from '../../kube/index.js';
import type { ArtifactRecord } from '../../engine/backup/manifest.js';
import { quiesce, resume, type ReplicaMap } from '../../engine/restore/quiesce.js';
import { createdThenAbortable, filledOrDiscarded, type ArtifactRestorer, type RestoreTarget, type SideDescription, type SideRestore } from '../../engine/restore/side.js';
import { podText, streamIntoPod, type PodTarget } from '../exec-source.js';
import { parseKeyspace, redisLayout, totalKeys, type Keyspace, type RedisLayout } from './redis.js';
import { compareKeyspace, type RecordedKeyspace } from './verify.js';
import { engineServer, serverPod } from './server.js';

/** The app that *is* the Redis server (as the plugin's detection says); only it is restored in place. */
const SERVER_APP = 'redis';

interface RedisDescription extends SideDescription {
  kind: 'redis';
  namespace: string;
  selector: string;
  /** The PVC holding the data dir and the dir's path inside it; null when unknown (old backup, no PVC). */
  pvc: string | null;
  path: string | null;
  /** The data dir as the running server reported it (used when the PVC is unknown). */
  liveDir: string | null;
  dbfilename: string;
  /** With appendonly (Redis >= 7): the AOF directory and file base name to rebuild from the RDB. */
  aof: { dirname: string; filename: string } | null;
  /** Why this copy cannot be swapped in (found before anything changes), if so. */
  unsupported: string | null;
  sideDir: string;
  oldDir: string;
  /** The server's workloads and their replicas before the restore: what runs again after the swap. */
  replicas: ReplicaMap;
  image: string | null;
}

type RecordedMeta = Partial<RedisLayout> & RecordedKeyspace & { sha256?: string; rdbBytes?: number };

// Scripts get values as positional args only: $1 data dir, $2 side dir, $3 old dir, $4 dbfilename,
// $5 AOF dir name ('' without appendonly), $6 AOF file base name.
const PREPARE = 'set -e; cd "$1"; rm -rf -- "$2"; mkdir -- "$2"';
const WRITE = 'cat > "$1/$2/$4"';
const CHECK = `f="$1/$2/$4"; echo "size $(wc -c < "$f")"
if command -v redis-check-rdb >/dev/null 2>&1; then redis-check-rdb "$f" 2>&1; echo "exit $?"; else echo "no redis-check-rdb"; fi`;
/**
 * The live dump gets a second name in the old dir first (a hard link: the live name never goes
 * missing), then the restored file is renamed over it, atomically. The marker tells swapBack that
 * the swap began. The AOF directory moves aside as a whole, the rebuilt one into its place.
 */
const SWAP_IN = `set -e; cd "$1"; mkdir -p "$3"; touch "$3/.wild-backup-swapping"
if [ -e "$4" ] && [ ! -e "$3/$4" ]; then ln "$4" "$3/$4" 2>/dev/null || { cp -p "$4" "$3/$4.tmp"; mv "$3/$4.tmp" "$3/$4"; }; fi
if [ -n "$5" ]; then
  mkdir -p "$2/$5"; ln -f "$2/$4" "$2/$5/$6.1.base.rdb" 2>/dev/null || cp "$2/$4" "$2/$5/$6.1.base.rdb"
  printf 'file %s seq 1 type b\\n' "$6.1.base.rdb" > "$2/$5/$6.manifest"
  if [ -e "$5" ] && [ ! -e "$3/$5" ]; then mv -- "$5" "$3/$5"; fi
  if [ -e "$2/$5" ]; then rm -rf -- "$5"; mv -- "$2/$5" "$5"; fi
fi
mv -f -- "$2/$4" "$4"
sync`;
/** Works from any point of SWAP_IN (also after a crash): what was live before is live again. */
const SWAP_BACK = `set -e; cd "$1"; [ -d "$3" ] || exit 0
if [ -e "$3/$4" ]; then mv -f -- "$3/$4" "$4"; elif [ ! -e "$2/$4" ]; then rm -f -- "$4"; fi
if [ -n "$5" ]; then
  if [ -e "$3/$5" ]; then rm -rf -- "$5"; mv -- "$3/$5" "$5"; elif [ ! -e "$2/$5" ]; then rm -rf -- "$5"; fi
fi
rm -rf -- "$3"; sync`;

interface Access { target: PodTarget; dir: string }

/**
 * Reaches the server's data dir: through a running server pod that mounts it (unless the server
 * must be down), else through a helper pod mounting the PVC, kept until release().
 */
class DataDir {
  private helper: { pod: HelperPod; access: Access } | null = null;
  constructor(private readonly client: KubeClient, private readonly d: RedisDescription, private readonly helperImage?: string) {}

  async open(opts: { stopped?: boolean; signal?: AbortSignal } = {}): Promise<Access> {
    if (this.helper) return this.helper.access;
    const { client, d } = this;
    if (!opts.stopped) {
      const pods = (await client.call((o) => client.core.listNamespacedPod({ namespace: d.namespace, labelSelector: d.selector }, o), { signal: opts.signal, timeoutMs: 15_000 })).items as V1Pod[];
      if (d.pvc !== null && d.path !== null) {
        const m = mountOf(pods, d.pvc);
        const rel = m ? path.posix.relative(m.subPath ?? '', d.path) : '..';
        if (m && !rel.startsWith('..')) return { target: { namespace: d.namespace, pod: m.pod, container: m.container }, dir: path.posix.join(m.mountPath, rel) };
      } else if (d.liveDir) {
        const pod = await findReadyPod(client, d.namespace, d.selector, { signal: opts.signal, timeoutMs: 15_000 });
        if (pod) return { target: { namespace: d.namespace, pod: pod.name }, dir: d.liveDir };
      }
    }
    if (d.pvc === null || d.path === null) {
      throw new Error('the Redis data directory is not on a known PVC (a backup from before redis restores, or a server without a volume) and no redis pod runs to reach it');
    }
    const created = await createHelperPod(client, { namespace: d.namespace, pvc: d.pvc, image: d.image ?? this.helperImage, readOnly: false, signal: opts.signal });
    try {
      const pod = await waitForHelperPod(client, created, { namespace: d.namespace, pvc: d.pvc, signal: opts.signal });
      const access = { target: { namespace: d.namespace, pod: pod.name, container: pod.container }, dir: path.posix.join(pod.mountPath, d.path) };
      this.helper = { pod, access };
      return access;
    } catch (err) {
      await deleteHelperPod(client, created).catch(() => undefined);
      throw err;
    }
  }

  async release(): Promise<void> {
    const h = this.helper;
    this.helper = null;
    if (h) await deleteHelperPod(this.client, h.pod);
  }
}

function run(client: KubeClient, d: RedisDescription, a: Access, script: string, signal?: AbortSignal): Promise<string> {
  return podText(client, a.target, ['sh', '-c', script, 'wild-backup', a.dir, d.sideDir, d.oldDir, d.dbfilename, d.aof?.dirname ?? '', d.aof?.filename ?? ''], signal);
}

const BAD_WAITING = new Set(['CrashLoopBackOff', 'Error', 'ErrImagePull', 'ImagePullBackOff', 'CreateContainerConfigError', 'RunContainerError']);

/**
 * Scales the server's workloads back to their replicas and waits until their pods are ready; a
 * pod that fails, exits or restarts on the restored data fails at once rather than after a timeout.
 * Returns whether any pod was meant to run.
 */
async function startServer(client: KubeClient, d: RedisDescription, signal?: AbortSignal): Promise<boolean> {
  const opts = { signal, timeoutMs: 30_000 };
  let expected = 0;
  for (const w of await listWorkloads(client, d.namespace, opts)) {
    const want = d.replicas[`${w.kind}/${w.name}`];
    if (want === undefined) continue;
    expected += want;
    if (want !== w.replicas) await scaleWorkload(client, w, want, opts);
  }
  if (expected === 0) return false;
  const deadline = Date.now() + 300_000;
  for (;;) {
    signal?.throwIfAborted();
    const pods = (await client.call((o) => client.core.listNamespacedPod({ namespace: d.namespace, labelSelector: d.selector }, o), opts)).items;
    let ready = 0;
    for (const p of pods) {
      if (p.metadata?.deletionTimestamp) continue;
      const name = p.metadata?.name ?? '?';
      if (p.status?.phase === 'Failed') throw new Error(`redis pod ${name} failed to start on the restored data: ${p.status.message ?? p.status.reason ?? 'Failed'}`);
      const statuses = p.status?.containerStatuses ?? [];
      for (const c of statuses) {
        const ended = c.state?.terminated ?? c.lastState?.terminated;
        const waiting = c.state?.waiting?.reason;
        if (ended || c.restartCount > 0 || (waiting && BAD_WAITING.has(waiting))) {
          throw new Error(`redis pod ${name} did not start on the restored data: ${ended ? `exited with ${ended.exitCode} (${ended.reason ?? ''})` : waiting ?? `restarted ${c.restartCount} times`}`);
        }
      }
      if (p.status?.phase === 'Running' && statuses.length > 0 && statuses.every((c) => c.ready)) ready++;
    }
    if (ready >= expected && pods.every((p) => !p.metadata?.deletionTimestamp)) return true;
    if (Date.now() > deadline) throw new Error(`redis did not become ready in 5 minutes after the restore (${ready} of ${expected} pods ready)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Waits until the restarted server has loaded its dataset, then returns its keyspace. */
async function loadedKeyspace(client: KubeClient, d: RedisDescription, signal?: AbortSignal): Promise<Keyspace> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    signal?.throwIfAborted();
    const target = await serverPod(client, { namespace: d.namespace, selector: d.selector }, 'redis', signal);
    const info = await podText(client, target, ['redis-cli', 'info'], signal).catch(() => '');
    if (/^loading:0/m.test(info)) return parseKeyspace(info);
    if (Date.now() > deadline) throw new Error('redis did not finish loading its dataset in 10 minutes');
    await new Promise((r) => setTimeout(r, 250));
  }
}

function handle(client: KubeClient, d: RedisDescription, data: DataDir, artifact?: ArtifactRecord, sent?: () => { bytes: number; sha256: string }): SideRestore {
  const meta = artifact?.meta as RecordedMeta | undefined;
  const noLog = (): void => undefined;
  return {
    description: d,
    async check(signal) {
      const out = await run(client, d, await data.open({ signal }), CHECK, signal);
      const notes: string[] = [];
      const size = Number(/^size\s*(\d+)/m.exec(out)?.[1] ?? NaN);
      if (artifact && size !== artifact.sizeBytes) throw new Error(`redis: the restored RDB has ${size} bytes, the backup ${artifact.sizeBytes}`);
      const got = sent?.();
      if (got && meta?.sha256) {
        if (got.sha256 !== meta.sha256) throw new Error('redis: the RDB read back from the repository differs from the one backed up (sha256)');
        notes.push('sha256 as recorded');
      }
      if (/^no redis-check-rdb/m.test(out)) notes.push('redis-check-rdb not in the image');
      else {
        const keysRead = Number(/(\d+) keys read/.exec(out)?.[1] ?? NaN);
        if (!/^exit 0$/m.test(out) || !/RDB looks OK/.test(out)) {
          const why = out.split('\n').filter((l) => /error|unexpected|wrong|can't|invalid/i.test(l)).slice(0, 3).join('; ');
          throw new Error(`redis: redis-check-rdb rejects the restored RDB: ${why || out.split('\n').slice(-4).join('; ')}`);
        }
        if (meta?.keyspace && meta.keyCountsExact !== false && keysRead !== totalKeys(meta.keyspace)) {
          throw new Error(`redis: the restored RDB holds ${keysRead} keys, the backup recorded ${totalKeys(meta.keyspace)}`);
        }
        notes.push(`redis-check-rdb OK, ${keysRead} keys${meta?.keyspace && meta.keyCountsExact !== false ? ' as recorded' : ''}`);
      }
      return `redis: RDB of ${size} bytes, ${notes.join(', ')}`;
    },
    async swapIn(signal) {
      if (d.unsupported) throw new Error(d.unsupported);
      if (d.pvc === null || d.path === null) throw new Error('redis: the data directory is not on a known PVC (a backup from before redis restores, or a server without a volume): nothing was changed');
      // The server must be down while its files change; for the redis app the restore already
      // scaled it to 0, so this only waits.
      await quiesce(client, d.namespace, async () => undefined, signal);
      try {
        await run(client, d, await data.open({ stopped: true, signal }), SWAP_IN, signal);
      } finally {
        await data.release();
      }
      if (await startServer(client, d, signal)) compareKeyspace(await loadedKeyspace(client, d, signal), meta);
    },
    async swapBack(signal) {
      await quiesce(client, d.namespace, async () => undefined, signal);
      if (d.pvc !== null && d.path !== null) {
        try {
          await run(client, d, await data.open({ stopped: true, signal }), SWAP_BACK, signal);
        } finally {
          await data.release();
        }
      }
      await resume(client, d.namespace, d.replicas, noLog, signal);
    },
    async commit(signal) {
      try {
        await run(client, d, await data.open({ signal }), 'cd "$1" && rm -rf -- "$3" "$2"', signal);
      } finally {
        await data.release();
      }
    },
    async discard(signal) {
      try {
        await run(client, d, await data.open({ signal }), 'cd "$1" && rm -rf -- "$2"', signal);
      } finally {
        await data.release();
      }
    },
  };
}

/** The image of the server's container that mounts the PVC: it has redis-check-rdb, in the server's version. */
async function serverImage(client: KubeClient, namespace: string, pvc: string | null, signal?: AbortSignal): Promise<string | null> {
  if (!pvc) return null;
  const opts = { signal, timeoutMs: 15_000 };
  const [deps, sts] = await Promise.all([
    client.call((o) => client.apps.listNamespacedDeployment({ namespace }, o), opts),
    client.call((o) => client.apps.listNamespacedStatefulSet({ namespace }, o), opts),
  ]);
  for (const w of [...deps.items, ...sts.items]) {
    const tmpl = w.spec?.template.spec;
    const claimTemplates = ('volumeClaimTemplates' in (w.spec ?? {}) ? (w.spec as { volumeClaimTemplates?: Array<{ metadata?: { name?: string } }> }).volumeClaimTemplates ?? [] : [])
      .filter((t) => pvc.startsWith(`${t.metadata?.name}-${w.metadata?.name}-`)).map((t) => t.metadata!.name!);
    const vols = new Set([...(tmpl?.volumes ?? []).filter((v) => v.persistentVolumeClaim?.claimName === pvc).map((v) => v.name), ...claimTemplates]);
    const c = tmpl?.containers.find((x) => (x.volumeMounts ?? []).some((m) => vols.has(m.name)));
    if (c?.image) return c.image;
  }
  return null;
}

function hashing(): { transform: Transform; result: () => { bytes: number; sha256: string } } {
  const hash = createHash('sha256');
  let bytes = 0;
  let digest: string | undefined;
  const transform = new Transform({ transform(chunk: Buffer, _e, cb) { hash.update(chunk); bytes += chunk.length; cb(null, chunk); } });
  return { transform, result: () => ({ bytes, sha256: (digest ??= hash.digest('hex')) }) };
}

export const redisRestorer: ArtifactRestorer = {
  notRestoredBecause(t: RestoreTarget) {
    if (t.app.name !== SERVER_APP) {
      return `the RDB is the whole Redis instance, shared with other apps: restoring it for ${t.app.name} would roll their data back too. Restore the redis app to bring Redis back to one of its backups`;
    }
    if (t.sourceApp !== t.app.name) return 'a Redis instance is restored into the redis app only, not cloned';
    return null;
  },

  async restoreSide(t: RestoreTarget, artifact, stream: Readable, suffix, signal) {
    const server = engineServer(t.inst, 'redis');
    const recorded = artifact.meta as RecordedMeta;
    // A running server tells where its data is now; a stopped one (the redis app, quiesced) is
    // found where the backup recorded it.
    const running = await findReadyPod(t.client, server.namespace, server.selector, { signal, timeoutMs: 15_000 });
    const layout: Partial<RedisLayout> = running ? await redisLayout(t.client, { namespace: server.namespace, pod: running.name }, signal) : recorded;
    const major = Number(/^(\d+)/.exec(layout.redisVersion ?? recorded.redisVersion ?? '')?.[1] ?? 0);
    const appendonly = layout.appendonly ?? false;
    // The restore quiesced the target app's namespace: when that is the server's, its replicas
    // before the restore are what runs after the swap; otherwise the server still runs as it is.
    const replicas = server.namespace === t.app.name && t.quiesced
      ? t.quiesced
      : Object.fromEntries((await listWorkloads(t.client, server.namespace, { signal, timeoutMs: 15_000 })).map((w) => [`${w.kind}/${w.name}`, w.replicas]));
    const volume = layout.volume ?? null;
    // Redis itself allows only plain file names here; they become paths in a shell, so make sure.
    for (const name of [layout.dbfilename, layout.appenddirname, layout.appendfilename]) {
      if (name !== undefined && !/^(?!\.\.?$)[^/\0\n]{1,255}$/.test(name)) throw new Error(`redis: "${name.slice(0, 60)}" is not a plain file name`);
    }
    const d: RedisDescription = {
      kind: 'redis', namespace: server.namespace, selector: server.selector,
      pvc: volume?.pvc ?? null, path: volume?.path ?? null, liveDir: layout.dir ?? null,
      dbfilename: layout.dbfilename ?? 'dump.rdb',
      aof: appendonly && major >= 7 ? { dirname: layout.appenddirname ?? 'appendonlydir', filename: layout.appendfilename ?? 'appendonly.aof' } : null,
      unsupported: appendonly && major < 7 ? `redis: appendonly with Redis ${layout.redisVersion ?? '< 7'} (a single AOF file) is not restored; Redis 7 or appendonly no is needed` : null,
      sideDir: `.wild-backup-restore-${suffix}`, oldDir: `.wild-backup-old-${suffix}`,
      replicas, image: await serverImage(t.client, server.namespace, volume?.pvc ?? null, signal).catch(() => null),
    };
    const digest = hashing();
    // One access for the fill and the check (a helper pod while the server is down), released by
    // the swap, commit or discard.
    const data = new DataDir(t.client, d, t.helperImage);
    return filledOrDiscarded(handle(t.client, d, data, artifact, digest.result), async () => {
      const a = await data.open({ signal });
      await createdThenAbortable(() => run(t.client, d, a, PREPARE), signal);
      stream.once('error', (e) => digest.transform.destroy(e));
      digest.transform.on('error', () => undefined); // surfaced through the exec's own failure
      const write = ['sh', '-c', WRITE, 'wild-backup', a.dir, d.sideDir, d.oldDir, d.dbfilename];
      await streamIntoPod(t.client, a.target, write, stream.pipe(digest.transform), artifact.sizeBytes, signal);
    }, t);
  },

  async fromDescription(t, desc) {
    const d = desc as RedisDescription;
    return handle(t.client, d, new DataDir(t.client, d, t.helperImage));
  },
};
