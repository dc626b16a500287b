// APPLY_RETENTION and CHECK_REPOSITORY: exclusive repository work. Retention decides per backup
// (not per snapshot) with restic's own forget semantics, then forgets every snapshot of each
// removed backup and prunes; a dry run only answers what it would keep and remove.
import type { BackupService } from '../backup/service.js';
import type { BackupView } from '../backup/catalog.js';
import type { OperationEngine, OperationRecord } from '../operations/index.js';
import type { RepositoryService } from '../repository/service.js';
import { planRetention, type RetentionPlan } from '../retention/index.js';
import { resolveSettings } from '../repository/settings.js';
import { NotFoundError, RepositoryError } from '../../errors.js';
import type { InstanceInfo, WildStore } from '../../wild/store.js';

export interface RetentionPreview {
  keep: BackupView[];
  remove: BackupView[];
  operation: OperationRecord | null;
}

type Candidate = BackupView & { id: string; time: string; complete: boolean; app: string | null; holds: string[] };

export class MaintenanceService {
  constructor(
    private readonly store: WildStore,
    private readonly engine: OperationEngine,
    private readonly repositories: RepositoryService,
    private readonly backups: BackupService,
  ) {}

  /** The plan for an instance (or one app), from the backups as they are now. */
  async plan(inst: InstanceInfo, app?: string | null, now = new Date()): Promise<RetentionPlan<Candidate>> {
    const { retention } = await resolveSettings(this.store, inst);
    const all = await this.backups.listToRemoveFrom(inst);
    const scoped = app ? all.filter((b) => b.kind === 'APP' && b.appName === app) : all;
    const candidates: Candidate[] = scoped.map((b) => ({
      ...b, id: b.backupId, time: b.createdAt, complete: b.status === 'COMPLETE', app: b.kind === 'CLUSTER' ? null : b.appName,
      holds: (b.manifest?.artifacts ?? []).map((a) => `${a.kind}:${a.name}`),
    }));
    // What a queued or running restore, verification or deletion works on is not removed under it.
    const inUse = new Map([...this.engine.backupsInUse(inst.name)].map(([id, op]) => [id, `in use by operation ${op.id} (${op.kind}, ${op.status})`]));
    return planRetention(candidates, retention, now, { inUse });
  }

  async applyRetention(instance: string, opts: { app?: string | null; dryRun?: boolean; reason?: string }): Promise<RetentionPreview> {
    const inst = await this.store.requireInstance(instance);
    const known = opts.app ? await this.store.app(inst, opts.app) : null;
    const preview = await this.plan(inst, opts.app);
    // An app gone from Wild Central (wild app delete) still has its backups, and their retention
    // applies (its newest is kept); a name with neither an app nor a backup is not found.
    if (opts.app && !known && preview.keep.length + preview.remove.length === 0) {
      throw new NotFoundError(`instance "${inst.name}" has no app named "${opts.app}" and no backups of one`);
    }
    if (opts.dryRun) return { keep: preview.keep, remove: preview.remove, operation: null };
    const repo = await this.repositories.open(inst);
    const operation = await this.engine.submit({
      kind: 'APPLY_RETENTION',
      instance,
      exclusive: true,
      run: async (ctx) => {
        // Decided again now: backups may have finished while this waited for its turn.
        const plan = await this.plan(await this.store.requireInstance(instance), opts.app);
        for (const b of plan.remove) ctx.log(`remove ${b.backupId} (${b.appName ?? 'cluster'}, ${b.status}): ${(plan.reasons.get(b.backupId) ?? []).join(', ')}`);
        for (const b of plan.keep) ctx.log(`keep ${b.backupId} (${b.appName ?? 'cluster'}): ${(plan.reasons.get(b.backupId) ?? []).join(', ')}`);
        const ids = plan.remove.flatMap((b) => b.snapshots.map((s) => s.id));
        if (ids.length > 0) {
          ctx.progress({ phase: 'forgetting', currentItem: `${plan.remove.length} backups` });
          await repo.forget({ snapshotIds: ids }, { signal: ctx.signal });
        }
        // Always pruned: this also frees what deleteBackup forgot.
        ctx.progress({ phase: 'pruning' });
        for (const line of await repo.prune({ signal: ctx.signal })) if (/total prune|remaining|unused size/i.test(line)) ctx.log(line.trim());
        this.repositories.invalidate(instance);
        return { message: `kept ${plan.keep.length} backups, removed ${plan.remove.length}${opts.reason ? ` (${opts.reason})` : ''}` };
      },
    });
    return { keep: preview.keep, remove: preview.remove, operation };
  }

  async checkRepository(instance: string, readDataPercent?: number | null): Promise<OperationRecord> {
    const inst = await this.store.requireInstance(instance);
    const repo = await this.repositories.open(inst);
    return this.engine.submit({
      kind: 'CHECK_REPOSITORY',
      instance,
      exclusive: true,
      run: async (ctx) => {
        ctx.progress({ phase: readDataPercent ? `checking, reading ${readDataPercent}% of the data` : 'checking the structure' });
        const result = await repo.check({ signal: ctx.signal, ...(readDataPercent ? { readDataSubset: readDataPercent } : {}) });
        for (const m of result.messages) ctx.log(m);
        if (!result.ok) {
          throw new RepositoryError(`the repository check found problems: ${result.messages.filter((m) => /error|fail|damage|invalid|miss/i.test(m)).slice(0, 5).join('; ') || result.messages.slice(-3).join('; ')}`, 'CHECK_FAILED');
        }
        return { message: `no errors were found${readDataPercent ? ` (read ${readDataPercent}% of the data)` : ''}` };
      },
    });
  }
}
