// Wild Backup's retention rules on top of restic's policy: per app, complete backups only, a
// grace period for backups that may still be running, and an app's newest backup always kept.
import { applyRetentionPolicy } from './policy.js';
import type { RetentionItem, RetentionPolicy } from './policy.js';
import { compareNewestFirst, readInstant } from './time.js';

/** A backup as retention sees it: a group of snapshots sharing the tag `backup:<id>`. */
export interface RetentionBackup extends RetentionItem {
  /** True iff the backup's manifest snapshot exists (see ARCHITECTURE §4). */
  complete: boolean;
  /** The app it belongs to; null for a cluster backup. */
  app: string | null;
  /** The artifacts it holds (`kind:name`, as `pvc:gitea-data`), where known: rule 5 of planRetention. */
  holds?: readonly string[];
}

export interface RetentionPlan<T extends RetentionBackup> {
  /** Backups to keep, newest first. */
  keep: T[];
  /** Backups to remove (forget every snapshot tagged with their id), newest first. */
  remove: T[];
  /** Why, for every backup id, kept or removed (restic's words for the policy's rules). */
  reasons: Map<string, string[]>;
}

/** How long an incomplete backup is presumed to be still running. */
export const INCOMPLETE_GRACE_MS = 24 * 60 * 60 * 1000;

export const PLAN_REASONS = {
  newestComplete: 'newest complete backup of its app',
  lastHolder: 'newest complete backup holding',
  incompleteRecent: 'incomplete, younger than 24 h (may still be running)',
  incompleteStale: 'incomplete, older than 24 h',
  notKept: 'not kept by the policy',
} as const;

export interface PlanOptions {
  /**
   * Backups that queued or running work reads or deletes (a restore's source, a verification, a
   * deletion), by id, with the words that say which work: kept whatever the policy says.
   */
  inUse?: ReadonlyMap<string, string>;
}

/**
 * Decides which backups to keep and remove. The rules, in order:
 *
 * 1. Backups are grouped by app; cluster backups (`app: null`) form a group of their own. No
 *    group's backups ever influence another's.
 * 2. Incomplete backups (no manifest) never count for the policy: one older than 24 h before
 *    `now` is removed (its artifacts are orphans); one younger (or dated after `now`) is kept,
 *    since it may still be running.
 * 3. The policy is applied to each group's complete backups with restic's `forget` semantics
 *    ({@link applyRetentionPolicy}); an empty policy keeps everything.
 * 4. The newest complete backup of each group is never removed, whatever the policy. (restic's
 *    semantics already keep the newest item under any non-empty policy; this is the guarantee
 *    stated as a rule, so that no later change of policy handling can break it.)
 * 5. The newest complete backup holding each of its group's artifacts is never removed either: a
 *    volume or a database that the later backups no longer hold (its PVC deleted by mistake, the
 *    app's database setting changed) keeps its last copy until it is deleted by hand
 *    (deleteBackup), instead of that copy going with the policy while the backups go on COMPLETE
 *    without it.
 * 6. A backup in `opts.inUse` is kept: a restore that waits for its turn would otherwise find its
 *    backup gone after it has taken the safety backup and stopped the app. The next run decides
 *    on it again. The other backups of its group are decided as if it were not kept.
 *
 * @throws RangeError as {@link applyRetentionPolicy} does (invalid policy, time or duplicate id).
 */
export function planRetention<T extends RetentionBackup>(
  backups: readonly T[],
  policy: RetentionPolicy,
  now: Date,
  opts: PlanOptions = {},
): RetentionPlan<T> {
  const keep = new Set<T>();
  const remove = new Set<T>();
  const reasons = new Map<string, string[]>();
  const nowMs = now.getTime();
  // Stable, like the policy's own sort, so that "newest" agrees with it when times are equal.
  const newestFirst = (list: Iterable<T>): T[] =>
    [...list]
      .map((b) => ({ b, at: readInstant(b.time) }))
      .sort((x, y) => compareNewestFirst(x.at, y.at))
      .map((x) => x.b);

  // Duplicate ids across groups (apps) would make the reasons ambiguous: refuse them like the policy does.
  const ids = new Set<string>();
  for (const backup of backups) {
    if (ids.has(backup.id)) throw new RangeError(`duplicate backup id ${JSON.stringify(backup.id)}`);
    ids.add(backup.id);
  }

  const groups = new Map<string | null, T[]>();
  for (const backup of backups) {
    if (!backup.complete) {
      const age = nowMs - readInstant(backup.time).epochMs;
      if (age > INCOMPLETE_GRACE_MS) {
        remove.add(backup);
        reasons.set(backup.id, [PLAN_REASONS.incompleteStale]);
      } else {
        keep.add(backup);
        reasons.set(backup.id, [PLAN_REASONS.incompleteRecent]);
      }
      continue;
    }
    const group = groups.get(backup.app);
    if (group) group.push(backup);
    else groups.set(backup.app, [backup]);
  }

  for (const group of groups.values()) {
    const result = applyRetentionPolicy(group, policy);
    const ordered = newestFirst(group);
    const newest = ordered[0];
    // Rule 5: each artifact's newest holder, and what each such backup is the last to hold.
    const lastHeld = new Map<T, string[]>();
    const seen = new Set<string>();
    for (const backup of ordered) {
      for (const artifact of backup.holds ?? []) {
        if (seen.has(artifact)) continue;
        seen.add(artifact);
        lastHeld.set(backup, [...(lastHeld.get(backup) ?? []), artifact]);
      }
    }
    for (const backup of result.keep) {
      keep.add(backup);
      reasons.set(backup.id, result.reasons.get(backup.id) ?? []);
    }
    for (const backup of result.remove) {
      const held = lastHeld.get(backup);
      if (backup === newest) {
        keep.add(backup);
        reasons.set(backup.id, [PLAN_REASONS.newestComplete]);
      } else if (held) {
        keep.add(backup);
        reasons.set(backup.id, [`${PLAN_REASONS.lastHolder} ${held.join(', ')}`]);
      } else {
        remove.add(backup);
        reasons.set(backup.id, [PLAN_REASONS.notKept]);
      }
    }
  }

  for (const backup of remove) {
    const use = opts.inUse?.get(backup.id);
    if (use === undefined) continue;
    remove.delete(backup);
    keep.add(backup);
    reasons.set(backup.id, [use]);
  }

  return { keep: newestFirst(keep), remove: newestFirst(remove), reasons };
}
