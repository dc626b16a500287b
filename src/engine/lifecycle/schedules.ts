// Scheduled work per instance (config.yaml cloud.backup.schedules): backups of all or chosen apps,
// retention, checks, and restore drills of the apps' latest backups. Scheduled runs are ordinary
// operations. When each schedule last fired is kept in <data>/wild-backup/schedules/<instance>.json,
// so a run missed while the server was down happens once at start-up; a run that finds the
// previous one still going is skipped and says so.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { logger } from '../../util/log.js';
import type { OperationEngine, OperationRecord } from '../operations/index.js';
import type { BackupService } from '../backup/service.js';
import type { RestoreService } from '../restore/service.js';
import { nextRun, parseSchedules, Scheduler, type ScheduleEntry, type SchedulerOptions } from '../schedules/index.js';
import type { InstanceInfo, WildStore } from '../../wild/store.js';
import { setPath, updateYamlFile, writeFileAtomic } from '../../wild/writer.js';
import type { MaintenanceService } from './maintenance.js';

const log = logger('schedules');

export interface ScheduleView extends ScheduleEntry {
  nextRunAt: string | null;
  lastRunAt: string | null;
  lastSkippedAt: string | null;
  lastSkipReason: string | null;
}

interface ScheduleState { lastRun: Record<string, string>; lastSkip: Record<string, { at: string; reason: string }> }

export class ScheduleService {
  private readonly schedulers = new Map<string, Scheduler>();
  private readonly states = new Map<string, ScheduleState>();

  constructor(
    private readonly store: WildStore,
    private readonly engine: OperationEngine,
    private readonly backups: BackupService,
    private readonly maintenance: MaintenanceService,
    private readonly restores: RestoreService,
    private readonly timing: Pick<SchedulerOptions, 'now' | 'setTimer' | 'clearTimer'> = {},
  ) {}

  private now(): Date {
    return this.timing.now?.() ?? new Date();
  }

  private stateFile(instance: string): string {
    return path.join(this.store.paths.stateDir, 'schedules', `${instance}.json`);
  }

  private async state(instance: string): Promise<ScheduleState> {
    const hit = this.states.get(instance);
    if (hit) return hit;
    let st: ScheduleState = { lastRun: {}, lastSkip: {} };
    try {
      st = { ...st, ...(JSON.parse(await readFile(this.stateFile(instance), 'utf8')) as Partial<ScheduleState>) };
    } catch { /* first start */ }
    this.states.set(instance, st);
    return st;
  }

  /**
   * Writes the instance's state. A state that cannot be written (a full or read-only disk) is
   * logged, not thrown: the runs go on, and a restart may run a missed one again.
   */
  private async saveState(instance: string): Promise<void> {
    try {
      await mkdir(path.dirname(this.stateFile(instance)), { recursive: true });
      await writeFileAtomic(this.stateFile(instance), JSON.stringify(this.states.get(instance), null, 2), 0o644);
    } catch (err) {
      log.warn('schedule state not saved', { instance, error: (err as Error).message });
    }
  }

  /** The instance's schedules, or the problems of its config. */
  async entries(instance: string): Promise<{ schedules: ScheduleEntry[]; issues: Array<{ path: string; message: string }> }> {
    const inst = await this.store.requireInstance(instance);
    const raw = (inst.config.cloud?.backup as { schedules?: unknown } | null | undefined)?.schedules;
    if (raw === undefined || raw === null) return { schedules: [], issues: [] };
    const parsed = parseSchedules(raw, 'cloud.backup.schedules');
    return parsed.ok ? { schedules: parsed.schedules, issues: [] } : { schedules: [], issues: parsed.issues };
  }

  async view(instance: string): Promise<ScheduleView[]> {
    const { schedules } = await this.entries(instance);
    const st = await this.state(instance);
    const now = this.now();
    return schedules.map((e) => ({
      ...e,
      nextRunAt: nextRun(e.cron, now, e.timezone).toISOString(),
      lastRunAt: st.lastRun[e.name] ?? null,
      lastSkippedAt: st.lastSkip[e.name]?.at ?? null,
      lastSkipReason: st.lastSkip[e.name]?.reason ?? null,
    }));
  }

  async startAll(): Promise<void> {
    for (const name of await this.store.instanceNames()) await this.start(name).catch((err: unknown) => log.warn('schedules not started', { instance: name, error: (err as Error).message }));
  }

  /** (Re)starts an instance's scheduler from its config. */
  async start(instance: string): Promise<void> {
    this.schedulers.get(instance)?.stop();
    this.schedulers.delete(instance);
    const { schedules, issues } = await this.entries(instance);
    if (issues.length) log.warn('invalid schedules', { instance, issues });
    if (schedules.length === 0) return;
    const st = await this.state(instance);
    // A schedule seen for the first time has missed nothing: it counts from now.
    let changed = false;
    for (const e of schedules) if (!st.lastRun[e.name]) { st.lastRun[e.name] = this.now().toISOString(); changed = true; }
    if (changed) await this.saveState(instance);
    const scheduler = new Scheduler({
      ...this.timing,
      lastRun: (e) => (st.lastRun[e.name] ? new Date(st.lastRun[e.name]!) : null),
      onSkip: (e, reason, run) => {
        st.lastSkip[e.name] = { at: run.scheduledAt.toISOString(), reason };
        void this.saveState(instance);
        log.warn('scheduled run skipped', { instance, schedule: e.name, reason });
      },
    });
    scheduler.start(schedules, async (entry, run) => {
      st.lastRun[entry.name] = run.scheduledAt.toISOString();
      await this.saveState(instance);
      log.info('scheduled run', { instance, schedule: entry.name, action: entry.action, missed: run.missed });
      await this.runEntry(instance, entry);
    });
    this.schedulers.set(instance, scheduler);
  }

  /** Starts the entry's operations and resolves when they have all finished. */
  private async runEntry(instance: string, entry: ScheduleEntry): Promise<void> {
    const ops: OperationRecord[] = [];
    if (entry.action === 'backup' || entry.action === 'verify') {
      const inst = await this.store.requireInstance(instance);
      // Every app, those with broken files too: their refusal is the schedule's skip reason, where
      // someone can see that their backups stopped, instead of their being left out unsaid.
      const apps = entry.apps ?? (await this.store.appNames(instance));
      const what = entry.action === 'backup' ? 'backup' : 'drill';
      const notStarted: string[] = [];
      for (const app of apps) {
        try {
          ops.push(entry.action === 'backup'
            ? await this.backups.backupApp(instance, app, 'schedule', { whenBusy: 'queue' })
            : await this.drillLatest(inst, app));
        } catch (err) {
          log.warn(`scheduled ${what} not started`, { instance, app, error: (err as Error).message, busy: err instanceof ConflictError });
          notStarted.push(`${app}: ${(err as Error).message}`);
        }
      }
      // An app removed since the schedule was set, one with broken files, one being backed up
      // already, or (a drill) one without a complete backup or busy: shown as the schedule's skip.
      // An app busy with other work is backed up after it.
      if (notStarted.length > 0) {
        const st = await this.state(instance);
        st.lastSkip[entry.name] = { at: this.now().toISOString(), reason: `${what} not started for ${notStarted.join('; ')}` };
        await this.saveState(instance);
      }
    } else if (entry.action === 'retention') {
      const p = await this.maintenance.applyRetention(instance, { reason: `schedule ${entry.name}` });
      if (p.operation) ops.push(p.operation);
    } else {
      ops.push(await this.maintenance.checkRepository(instance, entry.readDataPercent));
    }
    await Promise.all(ops.map((o) => this.engine.waitFor(o.id)));
  }

  /** Starts the restore drill of the app's latest complete backup. */
  private async drillLatest(inst: InstanceInfo, app: string): Promise<OperationRecord> {
    const latest = await this.backups.latestComplete(inst, app);
    if (!latest) throw new NotFoundError(`app "${app}" has no complete backup to verify`);
    return this.restores.verify(latest);
  }

  /** Validates and writes cloud.backup.schedules, then restarts the instance's scheduler. */
  async set(instance: string, raw: unknown[]): Promise<ScheduleView[]> {
    const inst = await this.store.requireInstance(instance);
    const parsed = parseSchedules(raw, 'input.schedules');
    if (!parsed.ok) throw ValidationError.fromIssues(parsed.issues, 'invalid schedules');
    // A misspelt app would never be backed up, and nobody would be told.
    const apps = await this.store.apps(inst);
    const known = apps.filter((a) => a.manifest).map((a) => a.name);
    const unknown = parsed.schedules.flatMap((e, i) => (e.apps ?? []).flatMap((app) => (known.includes(app) ? [] : [{
      path: `input.schedules.${i}.apps.${(raw[i] as { apps?: string[] }).apps?.indexOf(app) ?? 0}`,
      message: apps.some((a) => a.name === app)
        ? `app "${app}" has broken files and cannot be backed up until they are mended`
        : `instance "${instance}" has no app named "${app}" (its apps: ${known.join(', ') || 'none'})`,
    }])));
    if (unknown.length > 0) throw ValidationError.fromIssues(unknown, 'invalid schedules');
    const plain = parsed.schedules.map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)));
    await updateYamlFile(this.store.paths.configFile(instance), (doc) => setPath(doc, ['cloud', 'backup', 'schedules'], plain), 0o644);
    await this.start(instance);
    return this.view(instance);
  }

  stop(): void {
    for (const s of this.schedulers.values()) s.stop();
    this.schedulers.clear();
  }
}
