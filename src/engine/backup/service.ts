// Backups of apps and instances: listing (from the snapshot cache and the manifest store),
// starting BACKUP_APP / BACKUP_CLUSTER / DELETE_BACKUP operations.
import { ConflictError, NotFoundError, RepositoryError, ValidationError } from '../../errors.js';
import { isTerminal, type OperationEngine, type OperationRecord, type TaskContext } from '../operations/index.js';
import type { RepositoryService } from '../repository/service.js';
import { ResticError, type ResticRepository, type SnapshotListing } from '../restic/index.js';
import { requireReadableConfig, type AppInfo, type InstanceInfo, type WildStore } from '../../wild/store.js';
import { appConfigSource } from '../../plugins/config/app-config.js';
import { clusterConfigSource, etcdSnapshotSource, etcdUnavailableReason } from '../../plugins/config/cluster-config.js';
import { BackupCatalog, type BackupView } from './catalog.js';
import { backupSummary, type BackupManifest } from './manifest.js';
import { removeBackupSnapshots, runBackup } from './pipeline.js';
import type { ArtifactSource } from './source.js';
import { BACKUP_ID } from './tags.js';
import { stopOrphanedRestic } from './orphans.js';
import { detectDatabases } from '../../plugins/databases/registry.js';
import { Leftovers } from './leftovers.js';
import { logger } from '../../util/log.js';

const log = logger('backups');

/** What an app's backup will contain: the sources to stream and what is skipped, with reasons. */
export interface AppBackupPlan {
  sources: ArtifactSource[];
  skipped: BackupManifest['skipped'];
}

/** Builds the plan of an app backup (databases and volumes come from the cluster plugins). */
export type AppPlanner = (inst: InstanceInfo, app: AppInfo, signal: AbortSignal, opts?: { missingOk?: boolean }) => Promise<AppBackupPlan>;

export interface BackupFilter {
  app?: string | null;
  kind?: 'APP' | 'CLUSTER' | null;
  status?: 'COMPLETE' | 'INCOMPLETE' | null;
}

export class BackupService {
  readonly catalog: BackupCatalog;
  /** Failed backups whose snapshots wait for their repository to answer again. */
  readonly leftovers: Leftovers;
  /** Set by the cluster layer; without it an app backup holds only its config. */
  planner: AppPlanner = async () => ({ sources: [], skipped: [] });

  constructor(
    private readonly store: WildStore,
    private readonly engine: OperationEngine,
    private readonly repositories: RepositoryService,
    private readonly opts: { stallTimeoutMs?: number; startTimeoutMs?: number; leftoverRetryMs?: number } = {},
  ) {
    this.catalog = new BackupCatalog(`${store.paths.stateDir}/manifests`);
    this.leftovers = new Leftovers(
      `${store.paths.stateDir}/leftovers.json`,
      async (name) => {
        const inst = await this.store.instance(name);
        return inst ? this.repositories.open(inst) : null;
      },
      async (repo, backupId) => {
        // The failed backup's restic could not remove its lock from a repository that was down;
        // stale locks go (live ones stay), or the forget would wait on it.
        await repo.unlock({ timeoutMs: 30_000 }).catch(() => undefined);
        return removeBackupSnapshots(repo, backupId, (line) => log.info(line, { backupId }));
      },
      opts.leftoverRetryMs,
    );
  }

  /** Backups of an instance, newest first. An uninitialised repository has none. */
  async list(inst: InstanceInfo, filter: BackupFilter = {}): Promise<BackupView[]> {
    const all = (await this.read(inst))?.views ?? [];
    return all.filter((b) =>
      (!filter.app || b.appName === filter.app) && (!filter.kind || b.kind === filter.kind) && (!filter.status || b.status === filter.status));
  }

  /** The app's newest COMPLETE backup (App.latestBackup, a scheduled drill), or null. */
  async latestComplete(inst: InstanceInfo, app: string): Promise<BackupView | null> {
    return (await this.list(inst, { app, kind: 'APP', status: 'COMPLETE' }))[0] ?? null;
  }

  /** The snapshot listing and the backups built from it; null while the repository cannot be read or is not initialised. */
  private async read(inst: InstanceInfo): Promise<{ listing: SnapshotListing; views: readonly BackupView[] } | null> {
    const st = await this.repositories.status(inst);
    if (!st.initialized || !st.reachable) return null;
    const repo = await this.repositories.open(inst);
    // A repository whose status tells why it cannot be read (a wrong password) lists nothing, as
    // one that cannot be reached: the status is the answer. Otherwise restic's failure is.
    const listing = await repo.allSnapshots().catch((err: unknown) => {
      if (st.error && err instanceof ResticError) return null;
      throw err;
    });
    if (!listing) return null;
    return { listing, views: await this.catalog.list(repo, inst.name, listing) };
  }

  /**
   * The backups of an instance, for a decision that removes some (retention, the clean-up after a
   * crash). Refused while any of them could not be read: a backup whose manifest could not be read
   * is listed INCOMPLETE, incomplete backups are removed, and it may well be complete; a snapshot
   * left out of a partial listing could be any backup's manifest.
   */
  async listToRemoveFrom(inst: InstanceInfo): Promise<readonly BackupView[]> {
    const read = await this.read(inst);
    if (!read) return [];
    const { listing, views: all } = read;
    const problems = [
      ...(listing.unreadable ?? []).map((u) => `snapshot ${u.id}: ${u.reason}`),
      ...all.filter((b) => b.problem !== null).map((b) => `backup ${b.backupId}: ${b.problem}`),
    ];
    if (problems.length > 0) {
      throw new RepositoryError(
        `nothing is removed while the backups of instance "${inst.name}" cannot all be read (${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}); try again once the repository answers (checkRepository tells what is damaged, deleteBackup removes a backup that is not needed)`,
        'BACKUPS_UNREADABLE',
      );
    }
    return all;
  }

  async get(inst: InstanceInfo, backupId: string): Promise<BackupView | null> {
    if (!BACKUP_ID.test(backupId)) return null;
    return (await this.list(inst)).find((b) => b.backupId === backupId) ?? null;
  }

  /**
   * `whenBusy: 'queue'` (a schedule's backup): an app busy with other work (a restore, a drill,
   * a deletion, a restore of its database server) is backed up once that is done, instead of
   * being refused and left without its backup until the next run. An app already being backed up
   * is still refused: that backup is the one this would have made.
   */
  async backupApp(instance: string, appName: string, reason = 'manual', opts: { whenBusy?: 'reject' | 'queue' } = {}): Promise<OperationRecord> {
    const inst = await this.store.requireInstance(instance);
    const app = await this.store.requireApp(inst, appName);
    if (!app.manifest) throw ValidationError.fromIssues(app.problems.map((p) => ({ path: `${p.file}${p.path ? `#${p.path}` : ''}`, message: p.message })), `app "${appName}" cannot be backed up until its files are fixed`);
    requireReadableConfig(inst, `a backup of "${appName}"`);
    const repo = await this.repositories.open(inst);
    const defaultDir = this.repositories.defaultRepositoryPath(inst);
    const queue = opts.whenBusy === 'queue';
    if (queue) {
      const running = this.engine.list({ instance, app: appName }).find((o) => o.kind === 'BACKUP_APP' && !isTerminal(o.status));
      if (running) throw new ConflictError(`app "${appName}" of instance "${instance}" is already being backed up by operation ${running.id} (${running.status})`);
    }
    return this.engine.submit({
      kind: 'BACKUP_APP',
      instance,
      app: appName,
      ...(queue ? { onAppConflict: 'queue' as const } : {}),
      // The database servers it dumps from must stay up: a restore of a server app, which stops
      // it, does not run meanwhile.
      alsoHolds: detectDatabases(app).filter((d) => d.included && d.databaseName !== null && d.engine !== appName).map((d) => ({ app: d.engine, as: 'use' as const })),
      run: async (ctx) => {
        ctx.progress({ phase: 'planning' });
        if (defaultDir) await this.createDefault(instance, defaultDir, repo, ctx);
        const plan = await this.planner(inst, app, ctx.signal);
        for (const s of plan.skipped) ctx.log(`skipping ${s.kind}:${s.name}: ${s.reason}`);
        await this.sweepLeftovers(instance);
        try {
          const result = await runBackup({
            repo, catalog: this.catalog, leftovers: this.leftovers, instance, app: appName, reason, ctx, stallTimeoutMs: this.opts.stallTimeoutMs, startTimeoutMs: this.opts.startTimeoutMs,
            sources: [...plan.sources, appConfigSource(this.store, app)],
            skipped: plan.skipped,
          });
          return { backupId: result.backupId, message: backupSummary(result.manifest) };
        } finally {
          this.repositories.invalidate(instance);
        }
      },
    });
  }

  /** The embedded default repository, created at the first backup that goes to it. */
  private async createDefault(instance: string, dir: string, repo: ResticRepository, ctx: TaskContext): Promise<void> {
    if (await this.repositories.createDefaultIfMissing(instance, dir, repo, ctx.signal)) {
      ctx.log(`created the embedded default repository at ${dir} (no repository is configured; its password is in secrets.yaml, cloud.backup.defaultRepositoryPassword)`);
    }
  }

  async backupCluster(instance: string): Promise<OperationRecord> {
    const inst = await this.store.requireInstance(instance);
    const repo = await this.repositories.open(inst);
    const defaultDir = this.repositories.defaultRepositoryPath(inst);
    // As for an app: a second backup of the instance while one is under way is refused (checked
    // with no await before the submission, so two at once cannot both pass).
    const running = this.engine.list({ instance, status: ['QUEUED', 'RUNNING'] }).find((r) => r.kind === 'BACKUP_CLUSTER');
    if (running) throw new ConflictError(`instance "${instance}" is busy with its backup, operation ${running.id} (${running.status})`);
    return this.engine.submit({
      kind: 'BACKUP_CLUSTER',
      instance,
      run: async (ctx) => {
        if (defaultDir) await this.createDefault(instance, defaultDir, repo, ctx);
        const sources: ArtifactSource[] = [clusterConfigSource(this.store, inst)];
        const skipped: BackupManifest['skipped'] = [];
        const why = etcdUnavailableReason(inst);
        if (why) {
          skipped.push({ kind: 'etcd', name: inst.name, reason: why });
          ctx.log(`etcd snapshot skipped: ${why}`);
        } else sources.push(etcdSnapshotSource(inst));
        await this.sweepLeftovers(instance);
        try {
          const result = await runBackup({ repo, catalog: this.catalog, leftovers: this.leftovers, instance, app: null, sources, skipped, ctx, stallTimeoutMs: this.opts.stallTimeoutMs, startTimeoutMs: this.opts.startTimeoutMs });
          return { backupId: result.backupId, message: backupSummary(result.manifest) };
        } finally {
          this.repositories.invalidate(instance);
        }
      },
    });
  }

  /** DELETE_BACKUP: forgets every snapshot of the backup (space is reclaimed by the next prune). */
  async deleteBackup(instance: string, backupId: string): Promise<OperationRecord> {
    const inst = await this.store.requireInstance(instance);
    const backup = await this.get(inst, backupId);
    if (!backup) throw new NotFoundError(`instance "${instance}" has no backup "${backupId}"`);
    const repo = await this.repositories.open(inst);
    return this.engine.submit({
      kind: 'DELETE_BACKUP',
      instance,
      app: backup.appName ?? undefined,
      // restic forget takes the repository's exclusive lock: it waits until no restic of the
      // instance's other work (another app's backup, a restore) holds one, instead of failing on it.
      exclusive: true,
      backup: backupId,
      run: async (ctx) => {
        ctx.setBackupId(backupId);
        ctx.progress({ phase: 'forgetting snapshots', currentItem: backupId });
        await repo.forget({ snapshotIds: backup.snapshots.map((s) => s.id) }, { signal: ctx.signal });
        this.repositories.invalidate(instance);
        return { message: `backup ${backupId} deleted (${backup.snapshots.length} snapshots forgotten)` };
      },
    });
  }

  /** Forgets leftovers of a backup that a crash interrupted (used by the start-up recovery). */
  async removeIncomplete(inst: InstanceInfo, backupId: string, log: (l: string) => void): Promise<void> {
    await stopOrphanedRestic(backupId, log);
    const repo = await this.repositories.open(inst);
    // The dead server's restic may have left its lock; stale locks go, live ones stay.
    await repo.unlock({ timeoutMs: 30_000 }).catch((err: unknown) => log(`unlock: ${(err as Error).message}`));
    repo.invalidate();
    this.repositories.invalidate(inst.name);
    const b = (await this.listToRemoveFrom(inst)).find((v) => v.backupId === backupId);
    if (b && b.status === 'COMPLETE') return;
    if (!(await removeBackupSnapshots(repo, backupId, log))) await this.leftovers.add(inst.name, backupId);
  }

  /** Earlier failed backups' snapshots, removed now if their repository answers (never fails a backup). */
  private async sweepLeftovers(instance: string): Promise<void> {
    if ((await this.leftovers.list(instance)).length === 0) return;
    await this.leftovers.sweep(instance).catch((err: unknown) => log.warn('leftover sweep failed', { error: (err as Error).message }));
    this.repositories.invalidate(instance);
  }
}
