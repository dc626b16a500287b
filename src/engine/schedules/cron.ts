// Cron expressions of schedules: five fields or a macro, evaluated in a schedule's IANA time zone
// (UTC unless it names one).
// cron-parser does the calendar arithmetic; this module fixes what we accept and the edges
// (strictly after, missed runs).
import { CronExpressionParser } from 'cron-parser';
import type { CronExpression } from 'cron-parser';

/** Macros we accept, with their five-field meaning. */
export const CRON_MACROS = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
} as const;

/** A cron expression that cannot be used, with a message fit for a config error. */
export class InvalidCronError extends Error {
  override name = 'InvalidCronError';
}

function expand(cron: string): string {
  const text = cron.trim();
  if (text.startsWith('@')) {
    const macro = CRON_MACROS[text.toLowerCase() as keyof typeof CRON_MACROS];
    if (!macro) {
      throw new InvalidCronError(`unknown macro ${JSON.stringify(text)} (use one of ${Object.keys(CRON_MACROS).join(', ')})`);
    }
    return macro;
  }
  const fields = text.split(/\s+/).filter((f) => f !== '');
  if (fields.length !== 5) {
    throw new InvalidCronError(
      `expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, got ${fields.length}`,
    );
  }
  return fields.join(' ');
}

/** An IANA time zone name (`Europe/Berlin`, `UTC`) this runtime knows; aliases such as `US/Pacific` too. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return name.trim() === name && name !== '';
  } catch {
    return false;
  }
}

function iterate(cron: string, from: Date, timeZone = 'UTC'): CronExpression {
  const expression = expand(cron);
  if (!isTimeZone(timeZone)) throw new InvalidCronError(`unknown time zone ${JSON.stringify(timeZone)}`);
  try {
    return CronExpressionParser.parse(expression, { currentDate: from, tz: timeZone });
  } catch (err) {
    throw new InvalidCronError(err instanceof Error ? err.message : String(err));
  }
}

/**
 * Checks a cron expression: five fields (minute hour day-of-month month day-of-week, with
 * lists, ranges, steps and names such as `mon`/`jan`) or one of {@link CRON_MACROS}. When both
 * day-of-month and day-of-week are restricted, a day matching either fires (classic cron).
 *
 * @throws InvalidCronError with a message that says what is wrong.
 */
export function validateCron(cron: string): void {
  // Asking for a run proves the expression can fire at all (e.g. rejects `0 0 31 2 *`).
  nextRun(cron, new Date(Date.UTC(2000, 0, 1)));
}

/**
 * The first time strictly after `after` at which `cron` fires, its fields read as the wall clock of
 * `timeZone` (UTC by default). Runs fall on whole minutes. A local time that a change to summer
 * time skips fires in the hour after it; one that the change back repeats fires once.
 *
 * @throws InvalidCronError when the expression or the time zone is invalid.
 */
export function nextRun(cron: string, after: Date, timeZone = 'UTC'): Date {
  return iterate(cron, after, timeZone).next().toDate();
}

/**
 * The most recent time in (`lastRun`, `now`] at which `cron` fired: a run missed while the server
 * was down, to be run once at start-up (however many were missed). Null when none was missed,
 * and null when `lastRun` is null: a schedule that never ran has missed nothing (otherwise
 * adding a schedule, or a first start, would start work at once instead of at its time).
 *
 * @throws InvalidCronError when the expression is invalid.
 */
export function missedRun(cron: string, lastRun: Date | null, now: Date, timeZone = 'UTC'): Date | null {
  if (lastRun === null || now.getTime() <= lastRun.getTime()) return null;
  // prev() is strictly before its start; runs fall on whole seconds, so start just past `now`'s second.
  const start = new Date(Math.floor(now.getTime() / 1000) * 1000 + 1000);
  const previous = iterate(cron, start, timeZone).prev().toDate();
  return previous.getTime() > lastRun.getTime() && previous.getTime() <= now.getTime() ? previous : null;
}
