// Fires schedule entries at their cron times (each in its own time zone), with an injectable clock
// and timer so that tests run without waiting. The scheduler only decides *when*; the caller
// decides what a run is.
import { logger } from '../../util/log.js';
import type { ScheduleEntry } from './config.js';
import { missedRun, nextRun } from './cron.js';

const log = logger('schedules');

/** Opaque handle of a pending timer. */
export type TimerHandle = unknown;

/** What a due entry is for: its time, and whether it is a run missed while the server was down. */
export interface DueRun {
  scheduledAt: Date;
  missed: boolean;
}

export interface SchedulerOptions {
  /** The current time. Default: `() => new Date()`. */
  now?: () => Date;
  /** Starts a timer. Default: `setTimeout`, unref'd so that it never keeps the process alive. */
  setTimer?: (fn: () => void, ms: number) => TimerHandle;
  /** Cancels a timer started by `setTimer`. Default: `clearTimeout`. */
  clearTimer?: (handle: TimerHandle) => void;
  /**
   * Whether the previous run of an entry is still going; a due entry is then skipped (and
   * `onSkip` told), not queued behind it. Default: whether the promise `onDue` returned for
   * that entry is still pending.
   */
  isRunning?: (entry: ScheduleEntry) => boolean;
  /** Told of each skipped run. Default: a warning in the log. */
  onSkip?: (entry: ScheduleEntry, reason: string, run: DueRun) => void;
  /**
   * When each entry last ran (e.g. from the operation records), or null if never: a run missed
   * since then is fired once at start (see {@link missedRun}). Default: no catch-up.
   */
  lastRun?: (entry: ScheduleEntry) => Date | null;
  /**
   * The longest single timer, in ms. Default and maximum: 2^31-1 (Node's timers overflow past
   * it); a longer wait is made of several timers.
   */
  maxTimerMs?: number;
}

export type OnDue = (entry: ScheduleEntry, run: DueRun) => void | Promise<void>;

const MAX_TIMER_MS = 2 ** 31 - 1;

interface Slot {
  entry: ScheduleEntry;
  next: Date;
  timer: TimerHandle | undefined;
  pending: Promise<void> | undefined;
}

export class Scheduler {
  readonly #now: () => Date;
  readonly #setTimer: (fn: () => void, ms: number) => TimerHandle;
  readonly #clearTimer: (handle: TimerHandle) => void;
  readonly #options: SchedulerOptions;
  readonly #maxTimerMs: number;
  #slots: Slot[] = [];
  #onDue: OnDue | undefined;

  constructor(options: SchedulerOptions = {}) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#setTimer =
      options.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return t;
      });
    this.#clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.#maxTimerMs = Math.min(options.maxTimerMs ?? MAX_TIMER_MS, MAX_TIMER_MS);
  }

  /**
   * Starts firing `entries` (validated by parseSchedules), replacing what ran before. Runs missed
   * while down (see `lastRun`) fire first, on the next tick, once each.
   */
  start(entries: readonly ScheduleEntry[], onDue: OnDue): void {
    this.stop();
    this.#onDue = onDue;
    const now = this.#now();
    this.#slots = entries.map((entry) => ({ entry, next: nextRun(entry.cron, now, entry.timezone), timer: undefined, pending: undefined }));
    for (const slot of this.#slots) {
      const missed = this.#options.lastRun ? missedRun(slot.entry.cron, this.#options.lastRun(slot.entry), now, slot.entry.timezone) : null;
      if (missed) {
        slot.timer = this.#setTimer(() => {
          slot.timer = undefined;
          this.#fire(slot, { scheduledAt: missed, missed: true });
          this.#arm(slot);
        }, 0);
      } else {
        this.#arm(slot);
      }
    }
  }

  /** Stops every timer. Runs already started are not touched (cancelling them is the engine's job). */
  stop(): void {
    for (const slot of this.#slots) {
      if (slot.timer !== undefined) this.#clearTimer(slot.timer);
      slot.timer = undefined;
    }
    this.#slots = [];
    this.#onDue = undefined;
  }

  /** The next scheduled time of each entry, by name (for display). */
  upcoming(): Map<string, Date> {
    return new Map(this.#slots.map((s) => [s.entry.name, s.next]));
  }

  #arm(slot: Slot): void {
    const wait = Math.max(0, slot.next.getTime() - this.#now().getTime());
    slot.timer = this.#setTimer(() => {
      slot.timer = undefined;
      if (!this.#slots.includes(slot)) return;
      const now = this.#now();
      // A capped (or early) timer: wait for the rest.
      if (now.getTime() < slot.next.getTime()) return this.#arm(slot);
      this.#fire(slot, { scheduledAt: slot.next, missed: false });
      // After a long sleep (suspend, stalled event loop) several times may have passed: the run
      // above stands for all of them, and the next one is after now.
      slot.next = nextRun(slot.entry.cron, now, slot.entry.timezone);
      this.#arm(slot);
    }, Math.min(wait, this.#maxTimerMs));
  }

  #fire(slot: Slot, run: DueRun): void {
    const onDue = this.#onDue;
    if (!onDue) return;
    const running = this.#options.isRunning ? this.#options.isRunning(slot.entry) : slot.pending !== undefined;
    if (running) {
      const reason = 'the previous run is still running';
      if (this.#options.onSkip) this.#options.onSkip(slot.entry, reason, run);
      else log.warn('scheduled run skipped', { schedule: slot.entry.name, reason, scheduledAt: run.scheduledAt.toISOString() });
      return;
    }
    let result: void | Promise<void>;
    try {
      result = onDue(slot.entry, run);
    } catch (err) {
      log.error('scheduled run failed to start', { schedule: slot.entry.name, error: String(err) });
      return;
    }
    if (result instanceof Promise) {
      const pending = result.then(
        () => undefined,
        (err: unknown) => log.error('scheduled run failed', { schedule: slot.entry.name, error: String(err) }),
      );
      slot.pending = pending;
      void pending.finally(() => {
        if (slot.pending === pending) slot.pending = undefined;
      });
    }
  }
}
