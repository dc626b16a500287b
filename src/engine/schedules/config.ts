// `cloud.backup.schedules` of an instance's config.yaml: what to run when. Validation reports
// every problem with its path (`schedules.1.cron`), not only the first.
import { z } from 'zod';
import { isTimeZone, validateCron } from './cron.js';

export const SCHEDULE_ACTIONS = ['backup', 'retention', 'check', 'verify'] as const;
export type ScheduleAction = (typeof SCHEDULE_ACTIONS)[number];

/** A schedule entry as validated: `name` is always set (given, or `<action>-<position from 1>`). */
export interface ScheduleEntry {
  name: string;
  /** Five-field cron or a macro (`@daily`, `@hourly`, `@weekly`, `@monthly`, ...), read in `timezone`. */
  cron: string;
  /** The IANA time zone whose wall clock the cron is read in (`Europe/Berlin`); absent: UTC. */
  timezone?: string;
  action: ScheduleAction;
  /** Only for `backup` and `verify`: the apps to back up or drill; absent means every app of the instance. */
  apps?: string[];
  /** Only for `check`: the share of pack data restic reads back (`--read-data-subset`), 0-100. */
  readDataPercent?: number;
}

export interface ScheduleConfigIssue {
  /** Dotted path from the schedules list, e.g. `schedules.1.cron`. */
  path: string;
  message: string;
}

export type ScheduleConfigResult =
  | { ok: true; schedules: ScheduleEntry[] }
  | { ok: false; issues: ScheduleConfigIssue[] };

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const appName = z
  .string()
  .max(63, 'an app name has at most 63 characters')
  .regex(DNS1123_LABEL, 'an app name is a DNS-1123 label (lower-case letters, digits and "-")');

const cron = z.string().superRefine((value, ctx) => {
  try {
    validateCron(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid cron expression: ${err instanceof Error ? err.message : String(err)}` });
  }
});

const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

// Cross-field rules run even when other fields failed (`when`), so that every problem is reported.
const always = { when: () => true } as const;

const entrySchema = z
  .strictObject({
    name: z.string().trim().min(1, 'a name cannot be empty').max(63, 'a name has at most 63 characters').optional(),
    cron,
    timezone: z.string().refine(isTimeZone, 'unknown time zone: give an IANA name such as Europe/Berlin or America/New_York').optional(),
    action: z.enum(SCHEDULE_ACTIONS),
    apps: z.array(appName).min(1, 'list at least one app, or leave apps out to back up every app').optional(),
    readDataPercent: z.number().min(0).max(100).optional(),
  })
  .refine((e) => field(e, 'apps') === undefined || field(e, 'action') === 'backup' || field(e, 'action') === 'verify', {
    ...always,
    path: ['apps'],
    message: 'apps applies only to the backup and verify actions',
  })
  .refine((e) => field(e, 'readDataPercent') === undefined || field(e, 'action') === 'check', {
    ...always,
    path: ['readDataPercent'],
    message: 'readDataPercent applies only to the check action',
  });

const schedulesSchema = z.array(entrySchema);

/** Names must be unique (they identify a schedule in logs and in its last-run record). */
function duplicateNames(value: unknown[]): ScheduleConfigIssue[] {
  const issues: ScheduleConfigIssue[] = [];
  const seen = new Map<string, number>();
  value.forEach((raw, index) => {
    const given = field(raw, 'name');
    const action = field(raw, 'action');
    const name =
      typeof given === 'string'
        ? given.trim()
        : (SCHEDULE_ACTIONS as readonly unknown[]).includes(action)
          ? defaultName(action as ScheduleAction, index)
          : undefined;
    if (name === undefined || name === '') return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, index);
    else issues.push({ path: `${index}.name`, message: `name "${name}" is already used by entry ${first}` });
  });
  return issues;
}

function defaultName(action: ScheduleAction, index: number): string {
  return `${action}-${index + 1}`;
}

/**
 * Validates `cloud.backup.schedules`. `undefined` or `null` (no schedules configured) gives an
 * empty list. Unknown keys are errors (a typo such as `apss` would otherwise widen a backup to
 * every app).
 *
 * @param basePath prefix of the issue paths, `schedules` by default.
 */
export function parseSchedules(value: unknown, basePath = 'schedules'): ScheduleConfigResult {
  if (value === undefined || value === null) return { ok: true, schedules: [] };
  const parsed = schedulesSchema.safeParse(value);
  const issues: ScheduleConfigIssue[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const at = [basePath, ...issue.path.map(String)];
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) issues.push({ path: [...at, key].join('.'), message: 'unknown key' });
      } else {
        issues.push({ path: at.join('.'), message: issue.message });
      }
    }
  }
  if (Array.isArray(value)) {
    for (const issue of duplicateNames(value)) issues.push({ ...issue, path: `${basePath}.${issue.path}` });
  }
  if (!parsed.success || issues.length > 0) return { ok: false, issues };
  const schedules = parsed.data.map((entry, index): ScheduleEntry => {
    const out: ScheduleEntry = { name: entry.name ?? defaultName(entry.action, index), cron: entry.cron.trim(), action: entry.action };
    if (entry.timezone !== undefined) out.timezone = entry.timezone;
    if (entry.apps) out.apps = [...new Set(entry.apps)];
    if (entry.readDataPercent !== undefined) out.readDataPercent = entry.readDataPercent;
    return out;
  });
  return { ok: true, schedules };
}
