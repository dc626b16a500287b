// Instants as restic's forget sees them: exact order (down to the nanosecond of restic's JSON) and
// the calendar fields of the wall clock the snapshot was recorded in (its own UTC offset).

/** A point in time with the wall-clock fields of the offset it was recorded in. */
export interface RecordedInstant {
  /** Milliseconds since the epoch (UTC). */
  readonly epochMs: number;
  /** Nanoseconds below the millisecond (0..999999): restic's JSON times carry nanoseconds. */
  readonly subMsNanos: number;
  /** Wall-clock fields in the recorded offset (month 1-12, day 1-31, hour 0-23). */
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  /** ISO 8601 week-numbering year and week (1-53) of the wall-clock date. */
  readonly isoYear: number;
  readonly isoWeek: number;
}

// RFC 3339 as Go's time.MarshalJSON writes it (restic's `time` fields), also with a space for T.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

const MS_PER_DAY = 86_400_000;

/**
 * Reads a time. A string must be RFC 3339 with an explicit offset (`Z` or `±hh:mm`), as restic
 * prints it; its calendar fields are taken in that offset, which is what restic does (Go keeps
 * the offset a snapshot was written with). A `Date` carries no offset: its fields are taken in UTC.
 *
 * @throws RangeError when the value is not a valid time.
 */
export function readInstant(value: Date | string): RecordedInstant {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (!Number.isFinite(ms)) throw new RangeError('invalid Date');
    return fromWallClock(ms, 0, 0);
  }
  const m = RFC3339.exec(value);
  if (!m) throw new RangeError(`not an RFC 3339 time with an offset: ${JSON.stringify(value)}`);
  const [, y, mo, d, h, mi, s, frac = '', z, sign, oh = '0', om = '0'] = m;
  const fraction = frac.padEnd(9, '0');
  const ms = Number(fraction.slice(0, 3));
  const subMsNanos = Number(fraction.slice(3));
  const wallMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  const check = new Date(wallMs);
  // Date.UTC rolls over (Feb 30 -> Mar 2); Go's parser rejects such dates, so do we.
  if (
    check.getUTCFullYear() !== Number(y) ||
    check.getUTCMonth() + 1 !== Number(mo) ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h) ||
    check.getUTCMinutes() !== Number(mi) ||
    check.getUTCSeconds() !== Number(s)
  ) {
    throw new RangeError(`invalid date or time: ${JSON.stringify(value)}`);
  }
  const offsetMinutes = z ? 0 : (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om));
  return fromWallClock(wallMs - offsetMinutes * 60_000, offsetMinutes, subMsNanos);
}

function fromWallClock(epochMs: number, offsetMinutes: number, subMsNanos: number): RecordedInstant {
  const wall = new Date(epochMs + offsetMinutes * 60_000);
  const { isoYear, isoWeek } = isoWeekOf(wall);
  return {
    epochMs,
    subMsNanos,
    year: wall.getUTCFullYear(),
    month: wall.getUTCMonth() + 1,
    day: wall.getUTCDate(),
    hour: wall.getUTCHours(),
    isoYear,
    isoWeek,
  };
}

/** ISO 8601 week of the UTC calendar date of `wall` (weeks start on Monday; week 1 holds a Thursday). */
export function isoWeekOf(wall: Date): { isoYear: number; isoWeek: number } {
  const midnight = Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth(), wall.getUTCDate());
  const isoDay = wall.getUTCDay() === 0 ? 7 : wall.getUTCDay();
  // The Thursday of the same ISO week decides its year.
  const thursday = new Date(midnight + (4 - isoDay) * MS_PER_DAY);
  const isoYear = thursday.getUTCFullYear();
  const dayOfYear = (thursday.getTime() - Date.UTC(isoYear, 0, 1)) / MS_PER_DAY;
  return { isoYear, isoWeek: Math.floor(dayOfYear / 7) + 1 };
}

/** Orders newest first; 0 for the same instant. */
export function compareNewestFirst(a: RecordedInstant, b: RecordedInstant): number {
  return b.epochMs - a.epochMs || b.subMsNanos - a.subMsNanos;
}
