// Backup health: which apps have no COMPLETE backup within an age, or a newest one that failed its
// restore drill (Instance.backupHealth), and how the repository's logical size splits over apps
// (RepositoryStats.perApp).
import { z } from 'zod';
import { builder } from '../builder.js';
import type { Services } from '../context.js';
import type { BackupView } from '../engine/backup/catalog.js';
import type { AppInfo, InstanceInfo } from '../wild/store.js';
import { AppRef } from './app.js';
import { InstanceRef } from './instance.js';
import { RepositoryStatsRef } from './repository.js';

interface AppHealthView {
  app: AppInfo;
  latestCompleteAt: string | null;
  ageHours: number | null;
  healthy: boolean;
  reason: string | null;
}

interface BackupHealthView {
  maxAgeHours: number;
  healthy: boolean;
  apps: AppHealthView[];
}

const HOUR_MS = 3_600_000;
/** A daily backup plus two hours of slack. */
const DEFAULT_MAX_AGE_HOURS = 26;
const MAX_MAX_AGE_HOURS = 24 * 365;

/** Why an app cannot be backed up as it is, when its files are broken. */
function brokenFiles(app: AppInfo): string | null {
  if (app.manifest && app.problems.length === 0) return null;
  const first = app.problems[0];
  const what = first ? `${first.file}${first.path ? ` (${first.path})` : ''}: ${first.message}` : 'its manifest is missing';
  return `the app's files are broken, so it cannot be backed up: ${what}`;
}

/**
 * The health of every installed app against `maxAgeHours`, at `now`. `nextBackup` says what stops
 * an app's next backup besides its own files (a config.yaml that cannot be read, no schedule that
 * covers it), or null.
 */
export function appHealth(apps: AppInfo[], completeBackups: BackupView[] | null, repositoryProblem: string | null, maxAgeHours: number, now: number, nextBackup: (app: string) => string | null = () => null, failedDrills: ReadonlyMap<string, string> = new Map()): AppHealthView[] {
  const latest = newestCompleteByApp(completeBackups);
  return apps.map((app) => {
    const b = latest.get(app.name);
    const at = b ? Date.parse(b.createdAt) : NaN;
    const ageHours = Number.isFinite(at) ? Math.max(0, (now - at) / HOUR_MS) : null;
    // A newest backup whose restore drill failed is one that may not restore.
    const drill = b ? failedDrills.get(b.backupId) : undefined;
    const healthy = repositoryProblem === null && ageHours !== null && ageHours <= maxAgeHours && drill === undefined;
    const reasons: string[] = [];
    if (repositoryProblem) reasons.push(repositoryProblem);
    else if (ageHours === null) reasons.push('no complete backup');
    else if (ageHours > maxAgeHours) reasons.push(`the newest complete backup is ${ageHours.toFixed(1)} hours old (limit ${maxAgeHours})`);
    if (drill !== undefined && !repositoryProblem) reasons.push(`the newest complete backup (${b!.backupId}) failed its restore drill: ${drill}`);
    // A broken app is named even while its last backup is still recent: the next one will fail.
    const broken = brokenFiles(app);
    if (broken) reasons.push(broken);
    const next = nextBackup(app.name);
    if (next) reasons.push(next);
    return { app, latestCompleteAt: b?.createdAt ?? null, ageHours, healthy, reason: reasons.length > 0 ? reasons.join('; ') : null };
  });
}

/** The newest COMPLETE app backup of each app (backups come newest first). */
function newestCompleteByApp(backups: BackupView[] | null): Map<string, BackupView> {
  const latest = new Map<string, BackupView>();
  for (const b of backups ?? []) {
    if (b.kind === 'APP' && b.status === 'COMPLETE' && b.appName && !latest.has(b.appName)) latest.set(b.appName, b);
  }
  return latest;
}

async function backupHealth(services: Services, inst: InstanceInfo, maxAgeHours: number): Promise<BackupHealthView> {
  const [apps, status, { schedules, issues }] = await Promise.all([services.store.apps(inst), services.repositories.status(inst), services.schedules.entries(inst.name)]);
  const config = inst.problems[0];
  const nextBackup = (app: string): string | null => {
    // Its schedules are in that file too: the reason below would be a consequence of this one.
    if (config) return `config.yaml cannot be read (${config.path || config.file}: ${config.message}): no app is backed up until it is mended`;
    if (issues.length > 0) return `no schedule runs: cloud.backup.schedules is invalid (${issues[0]!.path}: ${issues[0]!.message})`;
    if (schedules.some((e) => e.action === 'backup' && (!e.apps || e.apps.includes(app)))) return null;
    return 'no schedule backs it up (cloud.backup.schedules): it is backed up only when someone asks';
  };
  let problem: string | null = null;
  if (!status.reachable || status.error) problem = `the repository cannot be read${status.error ? `: ${status.error}` : ''}`;
  else if (!status.initialized) problem = 'the repository is not initialized';
  const backups = problem ? null : await services.backups.list(inst, { kind: 'APP', status: 'COMPLETE' });
  const failedDrills = new Map<string, string>();
  await Promise.all([...newestCompleteByApp(backups).values()].map(async (b) => {
    const v = await services.restores.verification(inst.name, b.backupId);
    if (v && !v.ok) failedDrills.set(b.backupId, v.failed?.join('; ') ?? v.details ?? 'no details recorded');
  }));
  const list = appHealth(apps, backups, problem, maxAgeHours, Date.now(), nextBackup, failedDrills);
  return { maxAgeHours, healthy: list.every((a) => a.healthy), apps: list };
}

const AppHealthRef = builder.objectRef<AppHealthView>('AppHealth').implement({
  fields: (t) => ({
    app: t.field({ type: AppRef, resolve: (h) => h.app }),
    latestCompleteAt: t.field({ type: 'DateTime', nullable: true, description: 'when the newest COMPLETE backup was taken', resolve: (h) => h.latestCompleteAt }),
    ageHours: t.float({ nullable: true, description: 'hours since then; null without a complete backup', resolve: (h) => h.ageHours }),
    healthy: t.boolean({ description: 'a COMPLETE backup within maxAgeHours exists, and its restore drill, if it had one, passed', resolve: (h) => h.healthy }),
    reason: t.string({ nullable: true, description: 'why not healthy, or what will stop the next backup', resolve: (h) => h.reason }),
  }),
});

const BackupHealthRef = builder.objectRef<BackupHealthView>('BackupHealth').implement({
  fields: (t) => ({
    maxAgeHours: t.int({ resolve: (h) => h.maxAgeHours }),
    healthy: t.boolean({ description: 'every app is healthy', resolve: (h) => h.healthy }),
    apps: t.field({ type: [AppHealthRef], resolve: (h) => h.apps }),
  }),
});

builder.objectField(InstanceRef, 'backupHealth', (t) =>
  t.field({
    type: BackupHealthRef,
    description: 'Apps (database servers included) with no COMPLETE backup within maxAgeHours are unhealthy.',
    args: {
      maxAgeHours: t.arg.int({
        defaultValue: DEFAULT_MAX_AGE_HOURS,
        required: false,
        description: `hours (1 to ${MAX_MAX_AGE_HOURS}); null means ${DEFAULT_MAX_AGE_HOURS}`,
        validate: z.number().int('must be an integer').min(1, 'must be at least 1').max(MAX_MAX_AGE_HOURS, `must be at most ${MAX_MAX_AGE_HOURS} (a year)`).nullish(),
      }),
    },
    resolve: (i, { maxAgeHours }, ctx) => backupHealth(ctx.services, i, maxAgeHours ?? DEFAULT_MAX_AGE_HOURS),
  }),
);

interface AppLogicalSizeView { appName: string | null; logicalSize: number }

const AppLogicalSizeRef = builder.objectRef<AppLogicalSizeView>('AppLogicalSize').implement({
  fields: (t) => ({
    appName: t.string({ nullable: true, description: "null: the instance's cluster backups", resolve: (s) => s.appName }),
    logicalSize: t.field({ type: 'ByteCount', description: 'sum of the sizes (bytes read from sources) of its COMPLETE backups', resolve: (s) => s.logicalSize }),
  }),
});

/** Sums per app, apps by name, the cluster backups (appName null) last. */
export function logicalSizePerApp(backups: BackupView[]): AppLogicalSizeView[] {
  const sums = new Map<string | null, number>();
  for (const b of backups) {
    if (b.status !== 'COMPLETE') continue;
    const key = b.kind === 'CLUSTER' ? null : b.appName;
    sums.set(key, (sums.get(key) ?? 0) + b.sizeBytes);
  }
  return [...sums].map(([appName, logicalSize]) => ({ appName, logicalSize }))
    .sort((a, b) => (a.appName === b.appName ? 0 : a.appName === null ? 1 : b.appName === null ? -1 : a.appName < b.appName ? -1 : 1));
}

builder.objectField(RepositoryStatsRef, 'perApp', (t) =>
  t.field({
    type: [AppLogicalSizeRef],
    description: 'logical size per app: what its COMPLETE backups read from their sources',
    resolve: async (s, _a, ctx) => logicalSizePerApp(await ctx.services.backups.list(s.instance, { status: 'COMPLETE' })),
  }),
);
