// Scheduler on a fake clock: runs fire at their cron times, overlapping runs are skipped, a run
// missed while down fires once at start, and stop() silences everything. No real waiting.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../src/engine/schedules/index.js';
import { configureLogging } from '../../src/util/log.js';
import type { DueRun, ScheduleEntry, SchedulerOptions } from '../../src/engine/schedules/index.js';

/** A clock and timers that move only when told to. */
class FakeTime {
  #t: number;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #nextId = 1;
  constructor(iso: string) {
    this.#t = Date.parse(iso);
  }
  readonly now = (): Date => new Date(this.#t);
  readonly setTimer = (fn: () => void, ms: number): number => {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#t + ms, fn });
    return id;
  };
  readonly clearTimer = (id: unknown): void => {
    this.#timers.delete(id as number);
  };
  get pending(): number {
    return this.#timers.size;
  }
  /** Moves the clock to `iso`, firing every timer due on the way, in order. */
  advanceTo(iso: string): void {
    const target = Date.parse(iso);
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) if (entry[1].at <= target && (!first || entry[1].at < first[1].at)) first = entry;
      if (!first) break;
      this.#timers.delete(first[0]);
      this.#t = Math.max(this.#t, first[1].at);
      first[1].fn();
    }
    this.#t = target;
  }
  /** Jumps the clock without firing anything (a suspended machine). */
  jumpTo(iso: string): void {
    this.#t = Date.parse(iso);
  }
}

const nightly: ScheduleEntry = { name: 'nightly', cron: '0 3 * * *', action: 'backup' };
const hourly: ScheduleEntry = { name: 'hourly-check', cron: '@hourly', action: 'check', readDataPercent: 1 };

function setup(start: string, options: Partial<SchedulerOptions> = {}) {
  const time = new FakeTime(start);
  const runs: { name: string; at: string; missed: boolean }[] = [];
  const skips: { name: string; reason: string; at: string }[] = [];
  const scheduler = new Scheduler({
    now: time.now,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    onSkip: (entry, reason, run) => skips.push({ name: entry.name, reason, at: run.scheduledAt.toISOString() }),
    ...options,
  });
  const onDue = (entry: ScheduleEntry, run: DueRun) => {
    runs.push({ name: entry.name, at: run.scheduledAt.toISOString(), missed: run.missed });
  };
  return { time, runs, skips, scheduler, onDue };
}

describe('Scheduler', () => {
  it('fires each entry at its cron times', () => {
    const { time, runs, scheduler, onDue } = setup('2026-11-26T01:30:00Z');
    scheduler.start([nightly, hourly], onDue);
    expect(scheduler.upcoming().get('nightly')).toEqual(new Date('2026-11-26T03:00:00Z'));
    time.advanceTo('2026-11-27T03:30:00Z');
    expect(runs.filter((r) => r.name === 'nightly').map((r) => r.at)).toEqual([
      '2026-11-26T03:00:00.000Z',
      '2026-11-27T03:00:00.000Z',
    ]);
    expect(runs.filter((r) => r.name === 'hourly-check')).toHaveLength(26);
    expect(runs.every((r) => !r.missed)).toBe(true);
  });

  it('fires an entry with a time zone at that zone\'s wall clock, across the change to winter time', () => {
    const { time, runs, scheduler, onDue } = setup('2026-10-23T12:00:00Z');
    scheduler.start([{ ...nightly, timezone: 'Europe/Berlin' }], onDue);
    time.advanceTo('2026-10-27T12:00:00Z');
    // 03:00 in Berlin: 01:00 UTC in summer time (until 2026-10-25 03:00), 02:00 after it.
    expect(runs.map((r) => r.at)).toEqual(['2026-10-24T01:00:00.000Z', '2026-10-25T02:00:00.000Z', '2026-10-26T02:00:00.000Z', '2026-10-27T02:00:00.000Z']);
  });

  it('skips a due run while the previous one is still running, as told by isRunning', () => {
    let busy = false;
    const { time, runs, skips, scheduler, onDue } = setup('2026-11-26T01:30:00Z', { isRunning: () => busy });
    scheduler.start([nightly], onDue);
    time.advanceTo('2026-11-26T03:00:00Z');
    busy = true;
    time.advanceTo('2026-11-27T03:00:00Z');
    busy = false;
    time.advanceTo('2026-11-28T03:00:00Z');
    expect(runs.map((r) => r.at)).toEqual(['2026-11-26T03:00:00.000Z', '2026-11-28T03:00:00.000Z']);
    expect(skips).toEqual([{ name: 'nightly', reason: 'the previous run is still running', at: '2026-11-27T03:00:00.000Z' }]);
  });

  it('by default, treats the promise onDue returned as the running run', async () => {
    const { time, skips, scheduler } = setup('2026-11-26T01:30:00Z');
    let finish: () => void = () => {};
    const started: string[] = [];
    scheduler.start([nightly], (_e, run) => {
      started.push(run.scheduledAt.toISOString());
      return new Promise<void>((resolve) => (finish = resolve));
    });
    time.advanceTo('2026-11-27T03:00:00Z');
    expect(started).toEqual(['2026-11-26T03:00:00.000Z']);
    expect(skips.map((s) => s.at)).toEqual(['2026-11-27T03:00:00.000Z']);
    finish();
    await new Promise((r) => setImmediate(r));
    time.advanceTo('2026-11-28T03:00:00Z');
    expect(started).toEqual(['2026-11-26T03:00:00.000Z', '2026-11-28T03:00:00.000Z']);
  });

  it('fires a run missed while down once at start, then keeps to the schedule', () => {
    const { time, runs, scheduler, onDue } = setup('2026-11-26T10:00:00Z', {
      lastRun: (entry) => (entry.name === 'nightly' ? new Date('2026-11-23T03:00:00Z') : null),
    });
    scheduler.start([nightly, { ...nightly, name: 'never-ran' }], onDue);
    time.advanceTo('2026-11-26T10:00:00Z');
    expect(runs).toEqual([{ name: 'nightly', at: '2026-11-26T03:00:00.000Z', missed: true }]);
    time.advanceTo('2026-11-27T03:00:00Z');
    expect(runs.slice(1).map((r) => `${r.name}@${r.at}`).sort()).toEqual([
      'never-ran@2026-11-27T03:00:00.000Z',
      'nightly@2026-11-27T03:00:00.000Z',
    ]);
  });

  it('runs once after the clock jumps over several times, then resumes', () => {
    const { time, runs, scheduler, onDue } = setup('2026-11-26T01:30:00Z');
    scheduler.start([nightly], onDue);
    time.jumpTo('2026-11-30T12:00:00Z'); // suspended for days
    time.advanceTo('2026-11-30T12:00:00Z');
    expect(runs.map((r) => r.at)).toEqual(['2026-11-26T03:00:00.000Z']);
    time.advanceTo('2026-12-01T03:00:00Z');
    expect(runs.map((r) => r.at)).toEqual(['2026-11-26T03:00:00.000Z', '2026-12-01T03:00:00.000Z']);
  });

  it('waits past the 24.8-day limit of one timer with chained timers', () => {
    const { time, runs, scheduler, onDue } = setup('2026-11-26T01:30:00Z', { maxTimerMs: 3_600_000 });
    scheduler.start([{ name: 'yearly', cron: '@yearly', action: 'retention' }], onDue);
    time.advanceTo('2026-12-31T23:59:00Z');
    expect(runs).toEqual([]);
    time.advanceTo('2027-01-01T00:00:00Z');
    expect(runs.map((r) => r.at)).toEqual(['2027-01-01T00:00:00.000Z']);
  });

  it('stops: no timer left, nothing fires', () => {
    const { time, runs, scheduler, onDue } = setup('2026-11-26T01:30:00Z');
    scheduler.start([nightly, hourly], onDue);
    scheduler.stop();
    expect(time.pending).toBe(0);
    time.advanceTo('2026-12-26T01:30:00Z');
    expect(runs).toEqual([]);
  });

  it('keeps firing when onDue throws or rejects, and logs why', async () => {
    const lines: string[] = [];
    configureLogging({ sink: (line) => lines.push(line) });
    const { time, scheduler } = setup('2026-11-26T01:30:00Z');
    let calls = 0;
    scheduler.start([nightly], () => {
      calls++;
      if (calls === 1) throw new Error('boom');
      return Promise.reject(new Error('later boom'));
    });
    time.advanceTo('2026-11-26T03:00:00Z');
    time.advanceTo('2026-11-27T03:00:00Z');
    await new Promise((r) => setImmediate(r));
    time.advanceTo('2026-11-28T03:00:00Z');
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(3);
    expect(lines.filter((l) => l.includes('"schedule":"nightly"'))).toHaveLength(3);
    configureLogging({ sink: (line) => process.stderr.write(line + '\n') });
  });
});
