// GET /metrics: Prometheus text exposition (format 0.0.4) of backup freshness, operation counts and
// repository figures. Answers from the services' caches; a scrape is bounded in time.
import type { Services } from '../context.js';
import type { BackupView } from './backup/catalog.js';
import { OPERATION_KINDS, OPERATION_STATUSES } from './operations/index.js';
import type { RepositoryStatsView, RepositoryStatusView } from './repository/service.js';
import type { InstanceInfo } from '../wild/store.js';
import { logger } from '../util/log.js';

const log = logger('metrics');

/** The content type of the text exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Label value of the instance-wide (cluster) backups: `_cluster` is no DNS-1123 label, so no app has it. */
export const CLUSTER_APP_LABEL = '_cluster';

export interface RenderMetricsOptions {
  /**
   * How long a scrape may wait for repository answers, in all. Default 8 s (under Prometheus'
   * default scrape_timeout of 10 s). What is not there by then is left out of this scrape
   * (`wild_backup_scrape_partial` says so); the work goes on and fills the caches for the next one.
   */
  timeoutMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

type Labels = Record<string, string>;
type MetricType = 'gauge' | 'counter';

interface Family {
  name: string;
  help: string;
  type: MetricType;
  samples: Array<{ labels: Labels; value: number }>;
}

/** Label values escape backslash, double quote and line feed (the exposition format's rules). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Metric families in the order they are declared; a family without samples is left out. */
class Exposition {
  private readonly families = new Map<string, Family>();

  family(name: string, type: MetricType, help: string): (labels: Labels, value: number) => void {
    const f: Family = { name: `wild_backup_${name}`, help, type, samples: [] };
    this.families.set(f.name, f);
    return (labels, value) => {
      if (Number.isFinite(value)) f.samples.push({ labels, value });
    };
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      if (f.samples.length === 0) continue;
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      for (const s of f.samples) {
        const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',');
        out.push(`${f.name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
      }
    }
    return out.join('\n') + '\n';
  }
}

/**
 * restore-size over the bytes stored before compression: how much deduplication saves. With no
 * compression figure (restic 0.14, repository format 1), stored bytes are uncompressed bytes.
 */
export function deduplicationRatio(s: Pick<RepositoryStatsView, 'logicalSize' | 'totalSize' | 'totalUncompressedSize'>): number | null {
  const raw = s.totalUncompressedSize ?? s.totalSize;
  return raw > 0 ? s.logicalSize / raw : null;
}

/** Bytes before compression over bytes stored; null where restic does not report it. */
export function compressionRatio(s: Pick<RepositoryStatsView, 'totalSize' | 'totalUncompressedSize' | 'compressionRatio'>): number | null {
  if (s.compressionRatio !== undefined && s.compressionRatio > 0) return s.compressionRatio;
  return s.totalUncompressedSize && s.totalSize > 0 ? s.totalUncompressedSize / s.totalSize : null;
}

type Bounded<T> = { ok: true; value: T } | { ok: false; timedOut: boolean };

/** Waits for `work` until `deadline` (epoch ms); the work itself is not stopped (it fills caches). */
async function until<T>(work: Promise<T>, deadline: number, now: () => number): Promise<Bounded<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Bounded<T>>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, timedOut: true }), Math.max(0, deadline - now()));
  });
  try {
    return await Promise.race([
      work.then((value): Bounded<T> => ({ ok: true, value }), (err: unknown): Bounded<T> => {
        log.warn('metrics: a repository question failed', { error: (err as Error)?.message ?? String(err) });
        return { ok: false, timedOut: false };
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface InstanceFacts {
  inst: InstanceInfo;
  status: RepositoryStatusView | null;
  appNames: string[];
  backups: BackupView[] | null;
  stats: RepositoryStatsView | null;
  partial: boolean;
}

async function instanceFacts(services: Services, inst: InstanceInfo, deadline: number, now: () => number): Promise<InstanceFacts> {
  const facts: InstanceFacts = { inst, status: null, appNames: [], backups: null, stats: null, partial: false };
  const apps = await until(services.store.apps(inst), deadline, now);
  if (apps.ok) facts.appNames = apps.value.map((a) => a.name);
  const status = await until(services.repositories.status(inst), deadline, now);
  if (!status.ok) {
    facts.partial = true;
    return facts;
  }
  facts.status = status.value;
  if (!status.value.reachable || !status.value.initialized || status.value.error) return facts;
  const [backups, stats] = await Promise.all([
    until(services.backups.list(inst), deadline, now),
    until(services.repositories.stats(inst), deadline, now),
  ]);
  if (backups.ok) facts.backups = backups.value;
  if (stats.ok) facts.stats = stats.value;
  facts.partial = !apps.ok || !backups.ok || !stats.ok;
  return facts;
}

/** The whole exposition. Never throws for repository problems; never carries a URI or a secret. */
export async function renderMetrics(services: Services, opts: RenderMetricsOptions = {}): Promise<string> {
  const now = opts.now ?? Date.now;
  const deadline = now() + (opts.timeoutMs ?? 8_000);
  const x = new Exposition();

  const lastTimestamp = x.family('last_complete_backup_timestamp_seconds', 'gauge',
    `Start time of the newest COMPLETE backup of each installed app (Unix seconds; 0: none yet). app="${CLUSTER_APP_LABEL}" is the instance's cluster backup. Absent while the repository cannot be read.`);
  const lastDuration = x.family('last_backup_duration_seconds', 'gauge', 'Duration of the newest COMPLETE backup (manifest finishedAt - createdAt).');
  const lastSize = x.family('last_backup_size_bytes', 'gauge', 'Bytes read from the sources by the newest COMPLETE backup.');
  const lastAdded = x.family('last_backup_added_bytes', 'gauge', 'Bytes the repository grew by (before compression) with the newest COMPLETE backup.');
  const lastVerified = x.family('last_backup_verified', 'gauge', 'Whether the newest COMPLETE backup passed its latest restore drill (verifyBackup): 1 passed, 0 failed; absent while it was never drilled.');
  const operations = x.family('operations', 'gauge', 'Operation records known to the server, by instance, kind and status.');
  const up = x.family('repository_up', 'gauge', "1 when the instance's repository is reachable and initialised, else 0.");
  const size = x.family('repository_size_bytes', 'gauge', 'Bytes stored in the repository (restic stats raw-data, after compression).');
  const logical = x.family('repository_logical_size_bytes', 'gauge', 'Bytes a restore of every snapshot would write (restic stats restore-size).');
  const dedup = x.family('repository_deduplication_ratio', 'gauge', 'Logical size over stored bytes before compression.');
  const compression = x.family('repository_compression_ratio', 'gauge', 'Stored bytes before compression over after; only where restic reports compression (0.15+).');
  const snapshots = x.family('repository_snapshots', 'gauge', 'Snapshots in the repository.');
  const unreadableSnapshots = x.family('repository_unreadable_snapshots', 'gauge', 'Snapshots restic could not read (damaged where they are stored), left out of every listing. Retention removes nothing while this is above 0.');
  const unreadableBackups = x.family('backups_unreadable', 'gauge', 'Backups whose manifest could not be read at the last listing (listed INCOMPLETE, maybe complete). Retention removes nothing while this is above 0.');
  const partial = x.family('scrape_partial', 'gauge', '1 when this scrape left out figures of the instance that did not arrive in time (they are being computed for the next scrape).');

  const instances = await services.store.instances();
  const facts = await Promise.all(instances.map((inst) => instanceFacts(services, inst, deadline, now)));

  for (const f of facts) {
    const instance = f.inst.name;
    up({ instance }, f.status && f.status.reachable && f.status.initialized && !f.status.error ? 1 : 0);
    partial({ instance }, f.partial ? 1 : 0);
    if (f.status && f.status.reachable && f.status.initialized && !f.status.error) {
      snapshots({ instance }, f.status.snapshotCount);
      unreadableSnapshots({ instance }, f.status.unreadableSnapshots?.length ?? 0);
    }
    if (f.stats) {
      size({ instance }, f.stats.totalSize);
      logical({ instance }, f.stats.logicalSize);
      const d = deduplicationRatio(f.stats);
      if (d !== null) dedup({ instance }, d);
      const c = compressionRatio(f.stats);
      if (c !== null) compression({ instance }, c);
    }
    if (!f.backups) continue;
    unreadableBackups({ instance }, f.backups.filter((b) => b.problem !== null).length);
    // Newest first: the first COMPLETE backup seen per app is its latest.
    const latest = new Map<string, BackupView>();
    for (const b of f.backups) {
      const key = b.kind === 'CLUSTER' ? CLUSTER_APP_LABEL : b.appName;
      if (key && b.status === 'COMPLETE' && !latest.has(key)) latest.set(key, b);
    }
    for (const app of [...f.appNames, CLUSTER_APP_LABEL]) {
      const b = latest.get(app);
      const labels = { instance, app };
      if (!b) {
        // An installed app never backed up reads as "long ago", so `time() - x > age` alerts fire.
        if (app !== CLUSTER_APP_LABEL) lastTimestamp(labels, 0);
        continue;
      }
      lastTimestamp(labels, Date.parse(b.createdAt) / 1000);
      if (b.manifest) lastDuration(labels, (Date.parse(b.manifest.finishedAt) - Date.parse(b.manifest.createdAt)) / 1000);
      lastSize(labels, b.sizeBytes);
      if (b.addedBytes !== null) lastAdded(labels, b.addedBytes);
      const drill = await services.restores.verification(instance, b.backupId);
      if (drill) lastVerified(labels, drill.ok ? 1 : 0);
    }
  }

  // Every kind x status of every instance, zeros included: a series that appears later breaks rate() and alerts.
  const counts = new Map<string, number>();
  for (const rec of services.engine.list()) {
    const key = `${rec.instanceName}\u0000${rec.kind}\u0000${rec.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const instanceNames = new Set([...instances.map((i) => i.name), ...[...counts.keys()].map((k) => k.split('\u0000')[0]!)]);
  for (const instance of [...instanceNames].sort()) {
    for (const kind of OPERATION_KINDS) {
      for (const status of OPERATION_STATUSES) operations({ instance, kind, status }, counts.get(`${instance}\u0000${kind}\u0000${status}`) ?? 0);
    }
  }

  return x.render();
}
