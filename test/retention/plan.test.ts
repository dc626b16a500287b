// planRetention: Wild Backup's rules on top of restic's policy.
import { describe, expect, it } from 'vitest';
import { planRetention } from '../../src/engine/retention/index.js';
import type { RetentionBackup } from '../../src/engine/retention/index.js';

const NOW = new Date('2026-11-26T12:00:00Z');
const hoursAgo = (h: number) => new Date(NOW.getTime() - h * 3_600_000);
const backup = (id: string, ageHours: number, app: string | null, complete = true): RetentionBackup => ({
  id,
  time: hoursAgo(ageHours),
  app,
  complete,
});
const ids = (list: { id: string }[]) => list.map((b) => b.id).sort();

describe('planRetention', () => {
  it('applies the policy to each app separately, cluster backups as their own group', () => {
    const backups = [
      backup('gitea-1', 1, 'gitea'),
      backup('gitea-2', 2, 'gitea'),
      backup('gitea-3', 3, 'gitea'),
      backup('immich-1', 50, 'immich'),
      backup('immich-2', 60, 'immich'),
      backup('cluster-1', 5, null),
      backup('cluster-2', 6, null),
    ];
    const plan = planRetention(backups, { keepLast: 1 }, NOW);
    expect(ids(plan.keep)).toEqual(['cluster-1', 'gitea-1', 'immich-1']);
    expect(ids(plan.remove)).toEqual(['cluster-2', 'gitea-2', 'gitea-3', 'immich-2']);
    expect(plan.reasons.get('gitea-1')).toEqual(['last snapshot']);
    expect(plan.reasons.get('gitea-2')).toEqual(['not kept by the policy']);
  });

  it('removes incomplete backups older than 24 h and keeps younger ones, outside the policy', () => {
    const backups = [
      backup('running', 2, 'gitea', false),
      backup('stale', 25, 'gitea', false),
      backup('done', 30, 'gitea'),
      backup('older', 40, 'gitea'),
    ];
    const plan = planRetention(backups, { keepLast: 1 }, NOW);
    // The incomplete backup does not take the place of the newest complete one.
    expect(ids(plan.keep)).toEqual(['done', 'running']);
    expect(ids(plan.remove)).toEqual(['older', 'stale']);
    expect(plan.reasons.get('stale')?.[0]).toMatch(/incomplete, older than 24 h/);
    expect(plan.reasons.get('running')?.[0]).toMatch(/may still be running/);
  });

  it('keeps an incomplete backup of exactly 24 h or dated in the future', () => {
    const plan = planRetention([backup('edge', 24, 'a', false), backup('future', -1, 'a', false)], { keepLast: 1 }, NOW);
    expect(ids(plan.keep)).toEqual(['edge', 'future']);
  });

  it('never removes the newest complete backup of an app', () => {
    const backups = [backup('new', 1, 'gitea'), backup('old', 1000, 'gitea')];
    // An empty policy keeps everything, as restic does.
    expect(ids(planRetention(backups, {}, NOW).keep)).toEqual(['new', 'old']);
    expect(ids(planRetention(backups, { keepLast: 0, keepDaily: 0 }, NOW).remove)).toEqual([]);
    // Any non-empty policy keeps the newest; the plan says so whatever the policy does.
    const plan = planRetention(backups, { keepYearly: 1 }, NOW);
    expect(ids(plan.keep)).toEqual(['new']);
    expect(ids(plan.remove)).toEqual(['old']);
  });

  it("keeps the newest backup holding each artifact that later backups no longer hold", () => {
    // immich's library PVC was deleted by mistake after immich-3: the backups since are COMPLETE
    // without it. keepLast 1 would leave no copy of the library at all.
    const of = (id: string, age: number, holds: string[]) => ({ ...backup(id, age, 'immich'), holds });
    const backups = [
      of('immich-1', 1, ['postgres:immich', 'config:immich']),
      of('immich-2', 2, ['postgres:immich', 'config:immich']),
      of('immich-3', 3, ['postgres:immich', 'pvc:immich-library', 'config:immich']),
      of('immich-4', 4, ['postgres:immich', 'pvc:immich-library', 'config:immich']),
      of('immich-5', 5, ['postgres:immich', 'pvc:immich-library', 'pvc:old-cache', 'config:immich']),
      of('immich-6', 6, ['postgres:immich', 'pvc:immich-library', 'pvc:old-cache', 'config:immich']),
    ];
    const plan = planRetention(backups, { keepLast: 1 }, NOW);
    expect(ids(plan.keep)).toEqual(['immich-1', 'immich-3', 'immich-5']);
    expect(ids(plan.remove)).toEqual(['immich-2', 'immich-4', 'immich-6']);
    expect(plan.reasons.get('immich-3')).toEqual(['newest complete backup holding pvc:immich-library']);
    expect(plan.reasons.get('immich-5')).toEqual(['newest complete backup holding pvc:old-cache']);
    // Without what they hold (as before), the policy alone decides.
    expect(ids(planRetention(backups.map(({ holds: _, ...b }) => b), { keepLast: 1 }, NOW).keep)).toEqual(['immich-1']);
  });

  it('keeps a backup that queued or running work uses, and decides the rest as if it were not kept', () => {
    const backups = [backup('g-1', 1, 'gitea'), backup('g-2', 2, 'gitea'), backup('g-3', 3, 'gitea'), backup('i-1', 5, 'immich'), backup('i-2', 6, 'immich')];
    const inUse = new Map([['g-3', 'in use by operation op-1 (RESTORE_APP, QUEUED)'], ['g-1', 'in use by operation op-2 (VERIFY_BACKUP, RUNNING)']]);
    const plan = planRetention(backups, { keepLast: 1 }, NOW, { inUse });
    expect(ids(plan.keep)).toEqual(['g-1', 'g-3', 'i-1']);
    expect(ids(plan.remove)).toEqual(['g-2', 'i-2']);
    expect(plan.reasons.get('g-3')).toEqual(['in use by operation op-1 (RESTORE_APP, QUEUED)']);
    // Kept by the policy anyway: the policy's reason stands.
    expect(plan.reasons.get('g-1')).toEqual(['last snapshot']);
    expect(ids(planRetention(backups, { keepLast: 1 }, NOW).remove)).toEqual(['g-2', 'g-3', 'i-2']);
  });

  it('returns lists newest first and explains every decision', () => {
    const backups = [backup('b', 10, 'x'), backup('a', 1, 'y'), backup('c', 30, 'x', false)];
    const plan = planRetention(backups, { keepDaily: 7 }, NOW);
    expect(plan.keep.map((b) => b.id)).toEqual(['a', 'b']);
    expect(plan.remove.map((b) => b.id)).toEqual(['c']);
    expect([...plan.reasons.keys()].sort()).toEqual(['a', 'b', 'c']);
  });

  it('rejects duplicate ids', () => {
    expect(() => planRetention([backup('a', 1, 'x'), backup('a', 2, 'y')], { keepLast: 1 }, NOW)).toThrow(/duplicate/);
  });
});
