// nextRun / missedRun: cron times in UTC or a schedule's time zone, strictly after, and the one run
// missed while down.
import { describe, expect, it } from 'vitest';
import { InvalidCronError, missedRun, nextRun, validateCron } from '../../src/engine/schedules/index.js';

const d = (iso: string) => new Date(iso);

describe('nextRun', () => {
  it('gives the first time strictly after, in UTC', () => {
    expect(nextRun('0 3 * * *', d('2026-11-26T02:59:59Z'))).toEqual(d('2026-11-26T03:00:00Z'));
    expect(nextRun('0 3 * * *', d('2026-11-26T03:00:00Z'))).toEqual(d('2026-11-27T03:00:00Z'));
    expect(nextRun('*/15 * * * *', d('2026-11-26T10:07:31.500Z'))).toEqual(d('2026-11-26T10:15:00Z'));
  });

  it('knows the macros', () => {
    const after = d('2026-11-26T10:30:00Z'); // a Thursday
    expect(nextRun('@hourly', after)).toEqual(d('2026-11-26T11:00:00Z'));
    expect(nextRun('@daily', after)).toEqual(d('2026-11-27T00:00:00Z'));
    expect(nextRun('@weekly', after)).toEqual(d('2026-11-29T00:00:00Z'));
    expect(nextRun('@monthly', after)).toEqual(d('2026-12-01T00:00:00Z'));
    expect(nextRun('@yearly', after)).toEqual(d('2027-01-01T00:00:00Z'));
  });

  it('fires on a day matching day-of-month or day-of-week when both are set', () => {
    // The 1st of the month or a Monday; 2026-11-30 is a Monday.
    expect(nextRun('0 0 1 * mon', d('2026-11-26T00:00:00Z'))).toEqual(d('2026-11-30T00:00:00Z'));
  });

  it('crosses month and year boundaries, and leap days', () => {
    expect(nextRun('0 0 29 2 *', d('2026-03-01T00:00:00Z'))).toEqual(d('2028-02-29T00:00:00Z'));
    expect(nextRun('59 23 31 12 *', d('2026-12-31T23:59:00Z'))).toEqual(d('2027-12-31T23:59:00Z'));
  });
});

describe('a time zone', () => {
  it('reads the cron as that zone\'s wall clock, summer and winter', () => {
    // 03:00 in Los Angeles: 11:00 UTC in winter (UTC-8), 10:00 in summer (UTC-7).
    expect(nextRun('0 3 * * *', d('2026-11-26T10:30:00Z'), 'America/Los_Angeles')).toEqual(d('2026-11-26T11:00:00Z'));
    expect(nextRun('0 3 * * *', d('2026-07-01T10:30:00Z'), 'America/Los_Angeles')).toEqual(d('2026-07-02T10:00:00Z'));
    expect(nextRun('0 3 * * *', d('2026-11-26T02:30:00Z'), 'UTC')).toEqual(d('2026-11-26T03:00:00Z'));
  });

  it('fires a time that summer time skips in the hour after it, and a repeated one once', () => {
    // Berlin: 2027-03-28 02:00 CET becomes 03:00 CEST; 2026-10-25 03:00 CEST becomes 02:00 CET.
    const runs = (from: string, n: number) => {
      const out: string[] = [];
      let t = d(from);
      for (let i = 0; i < n; i++) { t = nextRun('30 2 * * *', t, 'Europe/Berlin'); out.push(t.toISOString()); }
      return out;
    };
    expect(runs('2027-03-27T12:00:00Z', 2)).toEqual(['2027-03-28T01:30:00.000Z', '2027-03-29T00:30:00.000Z']);
    expect(runs('2026-10-24T12:00:00Z', 2)).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('finds the run missed while down in that zone', () => {
    expect(missedRun('0 3 * * *', d('2026-11-25T12:00:00Z'), d('2026-11-26T12:00:00Z'), 'Asia/Tokyo')).toEqual(d('2026-11-25T18:00:00Z'));
  });

  it('refuses a zone it does not know', () => {
    expect(() => nextRun('0 3 * * *', d('2026-11-26T00:00:00Z'), 'Mars/Olympus_Mons')).toThrow(/unknown time zone "Mars\/Olympus_Mons"/);
  });
});

describe('validateCron', () => {
  it.each(['0 3 * * *', '@daily', ' @Hourly ', '*/5 1-5 * jan-mar mon,fri', '0 0 * * 7'])('accepts %j', (cron) => {
    expect(() => validateCron(cron)).not.toThrow();
  });

  it.each([
    ['', /5 fields/],
    ['* * * *', /5 fields/],
    ['0 * * * * *', /5 fields/],
    ['@reboot', /unknown macro/],
    ['61 * * * *', /59/],
    ['0 25 * * *', /23/],
    ['0 0 31 2 *', /day of month/i],
    ['every day', /5 fields/],
  ])('rejects %j', (cron, message) => {
    expect(() => validateCron(cron)).toThrow(InvalidCronError);
    expect(() => validateCron(cron)).toThrow(message);
  });
});

describe('missedRun', () => {
  it('gives the most recent scheduled time in (lastRun, now]', () => {
    // Down from Monday 02:00 to Thursday 10:00: three nightly runs missed, one is run.
    expect(missedRun('0 3 * * *', d('2026-11-23T03:00:00Z'), d('2026-11-26T10:00:00Z'))).toEqual(d('2026-11-26T03:00:00Z'));
  });

  it('includes a run at exactly now and excludes one at exactly lastRun', () => {
    expect(missedRun('0 3 * * *', d('2026-11-25T03:00:00Z'), d('2026-11-26T03:00:00.400Z'))).toEqual(d('2026-11-26T03:00:00Z'));
    expect(missedRun('0 3 * * *', d('2026-11-26T03:00:00Z'), d('2026-11-26T10:00:00Z'))).toBeNull();
  });

  it('is null when nothing was missed, when never run, or when the clock is behind', () => {
    expect(missedRun('0 3 * * *', d('2026-11-26T03:00:05Z'), d('2026-11-26T23:59:00Z'))).toBeNull();
    expect(missedRun('0 3 * * *', null, d('2026-11-26T10:00:00Z'))).toBeNull();
    expect(missedRun('0 3 * * *', d('2026-11-27T00:00:00Z'), d('2026-11-26T10:00:00Z'))).toBeNull();
  });
});
