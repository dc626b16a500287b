// restic's `forget --keep-*` policy as a pure function, so that Wild Backup can preview and apply
// retention per backup (a group of snapshots) exactly as restic 0.14 would per snapshot.
import { compareNewestFirst, readInstant } from './time.js';
import type { RecordedInstant } from './time.js';
import type { RetentionPolicy as ResticRetentionPolicy } from '../restic/types.js';

/**
 * A retention policy, with the meaning of restic's `forget --keep-last/-hourly/-daily/-weekly/
 * -monthly/-yearly`. Each count is a non-negative integer; absent means 0 (rule off). A policy with
 * every count 0 is empty and keeps everything (as restic does).
 */
export type RetentionPolicy = Omit<ResticRetentionPolicy, 'keepWithin' | 'keepTags'>;

/** Something with an id and a time: a snapshot, or a Wild Backup backup. */
export interface RetentionItem {
  id: string;
  /**
   * When it was taken. A string must be RFC 3339 with an offset, e.g. restic's JSON `time`
   * (`2021-01-03T23:30:00.123456789+01:00`): buckets are computed in that offset, as restic does.
   * A `Date` has no offset: buckets are computed in UTC.
   */
  time: Date | string;
}

export interface RetentionResult<T extends RetentionItem> {
  /** Items to keep, newest first. */
  keep: T[];
  /** Items to remove, newest first. */
  remove: T[];
  /** For each kept item id, the rules that keep it, in restic's words ("last snapshot", "daily snapshot", ...). */
  reasons: Map<string, string[]>;
}

/** restic's reason strings, so that a preview reads like `restic forget`. */
export const KEEP_REASONS = {
  empty: 'policy is empty',
  last: 'last snapshot',
  hourly: 'hourly snapshot',
  daily: 'daily snapshot',
  weekly: 'weekly snapshot',
  monthly: 'monthly snapshot',
  yearly: 'yearly snapshot',
} as const;

type BucketKey = (t: RecordedInstant, index: number) => number;

interface Rule {
  remaining: number;
  readonly key: BucketKey;
  readonly reason: string;
  last: number;
}

const POLICY_FIELDS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;

/** True when no rule is on: such a policy keeps everything. */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  return POLICY_FIELDS.every((f) => (policy[f] ?? 0) === 0);
}

/**
 * Applies `policy` to `items` with restic 0.14's `forget` semantics (`ApplyPolicy` in
 * internal/restic/snapshot_policy.go):
 *
 * - items are sorted newest first, stably: items with the same time keep their input order
 *   (restic loads snapshots concurrently, so its order for equal times is unspecified);
 * - an empty policy keeps every item, with the reason "policy is empty";
 * - each rule with a count n > 0 walks the sorted list with a bucket key (keepLast: the position,
 *   so every item; hourly YYYYMMDDHH; daily YYYYMMDD; weekly ISO year*100+ISO week; monthly
 *   YYYYMM; yearly YYYY) and keeps an item when its key differs from the key of the item that
 *   rule kept before, until it has kept n items. As keys are computed in each item's own UTC
 *   offset, items recorded in different offsets can make a bucket reappear: restic then counts it
 *   again, and so does this function;
 * - an item kept by several rules lists every one of them in `reasons`.
 *
 * @throws RangeError when a count is negative or not an integer (restic 0.14 would treat a
 *   negative count as a non-empty policy that keeps nothing), when a time is invalid, or when
 *   two items share an id.
 */
export function applyRetentionPolicy<T extends RetentionItem>(
  items: readonly T[],
  policy: RetentionPolicy,
): RetentionResult<T> {
  for (const field of POLICY_FIELDS) {
    const n = policy[field];
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
      throw new RangeError(`${field} must be a non-negative integer, got ${String(n)}`);
    }
  }
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.id)) throw new RangeError(`duplicate item id ${JSON.stringify(item.id)}`);
    seen.add(item.id);
  }

  const sorted = items
    .map((item) => ({ item, at: readInstant(item.time) }))
    .sort((a, b) => compareNewestFirst(a.at, b.at));

  const reasons = new Map<string, string[]>();
  if (isEmptyPolicy(policy)) {
    for (const { item } of sorted) reasons.set(item.id, [KEEP_REASONS.empty]);
    return { keep: sorted.map((s) => s.item), remove: [], reasons };
  }

  const rule = (count: number | undefined, key: BucketKey, reason: string): Rule => ({
    remaining: count ?? 0,
    key,
    reason,
    last: -1,
  });
  const rules: Rule[] = [
    rule(policy.keepLast, (_t, index) => index, KEEP_REASONS.last),
    rule(policy.keepHourly, (t) => t.year * 1_000_000 + t.month * 10_000 + t.day * 100 + t.hour, KEEP_REASONS.hourly),
    rule(policy.keepDaily, (t) => t.year * 10_000 + t.month * 100 + t.day, KEEP_REASONS.daily),
    rule(policy.keepWeekly, (t) => t.isoYear * 100 + t.isoWeek, KEEP_REASONS.weekly),
    rule(policy.keepMonthly, (t) => t.year * 100 + t.month, KEEP_REASONS.monthly),
    rule(policy.keepYearly, (t) => t.year, KEEP_REASONS.yearly),
  ];

  const keep: T[] = [];
  const remove: T[] = [];
  sorted.forEach(({ item, at }, index) => {
    const matched: string[] = [];
    for (const r of rules) {
      if (r.remaining <= 0) continue;
      const key = r.key(at, index);
      if (key !== r.last) {
        r.last = key;
        r.remaining--;
        matched.push(r.reason);
      }
    }
    if (matched.length > 0) {
      keep.push(item);
      reasons.set(item.id, matched);
    } else {
      remove.push(item);
    }
  });
  return { keep, remove, reasons };
}
