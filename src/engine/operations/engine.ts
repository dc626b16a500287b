// The operation engine: admits, runs, throttles, persists, cancels and recovers operations.
// Tasks report progress; the engine alone decides status, publishes events and writes records.
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, WildError } from '../../errors.js';
import { logger, scrub } from '../../util/log.js';
import type { PubSub } from '../../subscriptions/pubsub.js';
import type { OperationTopics } from '../../subscriptions/events.js';
import type { DataPaths } from '../../wild/paths.js';
import { OperationStore } from './store.js';
import {
  isTerminal, type OperationKind, type OperationRecord, type OperationStatus, type OperationTask,
  type ProgressUpdate, type RecoveryHook, type TaskContext, type TaskResult,
} from './types.js';

const log = logger('engine');
const MAX_LOG_LINES_IN_MEMORY = 200;
/**
 * Finished operations whose log tail stays in memory, the most recent ones; older ones are read from
 * their output.log. A server that runs for months makes thousands of operations.
 */
export const FINISHED_LOGS_IN_MEMORY = 100;
/**
 * Finished operations kept per app (and per instance for instance-wide work), newest first: hourly
 * backups add ~8,800 records a year per app, which memory, start-up and every operations query
 * would otherwise carry for ever. Records with an undo still to do are always kept.
 */
export const DEFAULT_FINISHED_KEPT_PER_APP = 500;
/** Minimum time between a phase change's event and the event before it. */
const PHASE_MIN_GAP_MS = 100;

export interface EngineOptions {
  paths: DataPaths;
  pubsub: PubSub<OperationTopics>;
  /** Operations running at once across all instances. Default 2 (one per core here). */
  concurrency?: number;
  /** Minimum time between two progress events of one operation. Default 250 ms. */
  progressIntervalMs?: number;
  /** Minimum time between two progress writes of one record to disk. Default 2 s. */
  persistIntervalMs?: number;
  /** First wait before a pending recovery is tried again; doubles up to 10 min. Default 30 s. */
  recoveryRetryMs?: number;
  /** Finished operations kept per app (see DEFAULT_FINISHED_KEPT_PER_APP); older ones are removed with their logs. */
  finishedKeptPerApp?: number;
}

const RECOVERY_RETRY_MAX_MS = 10 * 60_000;

/** Why an operation's signal was aborted. */
export class CancelReason extends Error {
  constructor(readonly by: 'user' | 'shutdown') {
    super(by === 'user' ? 'cancelled' : 'the server is shutting down');
  }
}

interface Active {
  rec: OperationRecord;
  task: OperationTask;
  controller: AbortController;
  lastPublish: number;
  /** What the last event carried; never changed after it was published. */
  published: OperationRecord | null;
  lastPersist: number;
  trailing: NodeJS.Timeout | null;
  rateSample: { t: number; bytes: number } | null;
  finished: Promise<void>;
  resolveFinished: () => void;
}

function newOperationId(): string {
  return `op-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Newest first: by creation, then by id. */
const newestFirst = (a: OperationRecord, b: OperationRecord): number =>
  a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1;

const appKey = (instance: string, app: string | undefined | null): string | null => (app ? `${instance}/${app}` : null);

/** Whether `other` holds `owner`'s own app in a way that work on that app cannot run beside (OperationTask.alsoHolds). */
function holdsAgainst(owner: OperationTask, other: OperationTask): boolean {
  if (!owner.app) return false;
  if (other.app === owner.app) return true;
  return (other.alsoHolds ?? []).some((h) => h.app === owner.app && (h.as === 'alter' || owner.stopsApp === true));
}

/** The app over which two tasks (of one instance) conflict, if any: one's own app, held by the other. */
function sharedApp(a: OperationTask, b: OperationTask): string | undefined {
  if (a.instance !== b.instance) return undefined;
  if (holdsAgainst(a, b)) return a.app;
  if (holdsAgainst(b, a)) return b.app;
  return undefined;
}

export class OperationEngine {
  private readonly store: OperationStore;
  private readonly records = new Map<string, OperationRecord>();
  private readonly logs = new Map<string, string[]>();
  /** Ids of finished operations whose log is still in `logs`, oldest first. */
  private readonly finishedLogs: string[] = [];
  /** The tails of finish() still under way: the last log line and the history pruning (stop waits for them). */
  private readonly finishing = new Set<Promise<void>>();
  private readonly active = new Map<string, Active>();
  private readonly queue: string[] = [];
  private readonly recoveryHooks = new Map<OperationKind, RecoveryHook>();
  /**
   * Finished operations whose undo is not done yet (a restore whose rollback the cluster did not
   * let finish): their record keeps its recovery data, the hook is tried again in the background
   * until it succeeds, and their app takes no other operation meanwhile.
   */
  private readonly pending = new Map<string, { timer: NodeJS.Timeout | null; delayMs: number; running: Promise<void> | null }>();
  private readonly concurrency: number;
  private readonly progressIntervalMs: number;
  private readonly persistIntervalMs: number;
  private readonly recoveryRetryMs: number;
  private readonly finishedKeptPerApp: number;
  private stopping = false;

  constructor(private readonly opts: EngineOptions) {
    this.store = new OperationStore(opts.paths);
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.progressIntervalMs = opts.progressIntervalMs ?? 250;
    this.persistIntervalMs = opts.persistIntervalMs ?? 2000;
    this.recoveryRetryMs = opts.recoveryRetryMs ?? 30_000;
    this.finishedKeptPerApp = Math.max(1, opts.finishedKeptPerApp ?? DEFAULT_FINISHED_KEPT_PER_APP);
  }

  onRecovery(kind: OperationKind, hook: RecoveryHook): void {
    this.recoveryHooks.set(kind, hook);
  }

  /** Loads the records of these instances; what a crash left QUEUED or RUNNING becomes FAILED/INTERRUPTED. */
  async init(instances: string[]): Promise<void> {
    for (const inst of instances) {
      for (const rec of await this.store.loadInstance(inst)) {
        this.records.set(rec.id, rec);
        if (isTerminal(rec.status)) continue;
        const wasRunning = rec.status === 'RUNNING';
        rec.status = 'FAILED';
        rec.error = { code: 'INTERRUPTED', message: 'the server stopped while this operation was ' + (wasRunning ? 'running' : 'queued') };
        rec.message = rec.error.message;
        rec.finishedAt = new Date().toISOString();
        const lines: string[] = [`${rec.finishedAt} interrupted: marked FAILED at start-up`];
        const hook = this.recoveryHooks.get(rec.kind);
        let recovered = true;
        if (hook && wasRunning) {
          try {
            await hook(rec, (l) => lines.push(`${new Date().toISOString()} ${scrub(l)}`));
            lines.push(`${new Date().toISOString()} recovery finished`);
          } catch (err) {
            recovered = false;
            lines.push(`${new Date().toISOString()} recovery failed: ${scrub((err as Error).message)}; it is tried again in the background`);
            log.error('recovery failed', { operation: rec.id, error: (err as Error).message });
          }
        }
        // What could not be undone yet stays recorded, and is tried again until it is.
        if (recovered || !rec.recovery) rec.recovery = null;
        await this.store.appendLog(rec, lines);
        await this.store.save(rec);
        log.warn('operation interrupted by a restart', { operation: rec.id, kind: rec.kind });
      }
    }
    // Left pending by an earlier run of the server (or just now): tried again soon.
    for (const rec of this.records.values()) {
      if (isTerminal(rec.status) && rec.recovery && this.recoveryHooks.has(rec.kind)) this.schedulePending(rec, this.recoveryRetryMs);
    }
    for (const inst of instances) await this.pruneHistory(inst);
  }

  /**
   * Removes the finished records of an app (of every app of the instance when `app` is undefined) beyond
   * the newest `finishedKeptPerApp`, from memory and disk, logs included. Never one that runs or
   * whose undo is still to do.
   */
  private async pruneHistory(instance: string, app?: string | null): Promise<void> {
    const groups = new Map<string, OperationRecord[]>();
    for (const rec of this.records.values()) {
      if (rec.instanceName !== instance || (app !== undefined && (rec.appName ?? null) !== app)) continue;
      if (!isTerminal(rec.status) || rec.recovery || this.pending.has(rec.id) || this.active.has(rec.id)) continue;
      const key = rec.appName ?? '';
      const group = groups.get(key) ?? [];
      group.push(rec);
      groups.set(key, group);
    }
    let removed = 0;
    for (const group of groups.values()) {
      if (group.length <= this.finishedKeptPerApp) continue;
      for (const rec of group.sort(newestFirst).slice(this.finishedKeptPerApp)) {
        this.records.delete(rec.id);
        this.logs.delete(rec.id);
        const k = this.finishedLogs.indexOf(rec.id);
        if (k >= 0) this.finishedLogs.splice(k, 1);
        await this.store.remove(rec).catch((err: unknown) => log.warn('could not remove an old operation record', { operation: rec.id, error: (err as Error).message }));
        removed++;
      }
    }
    if (removed > 0) log.info('removed old operation records', { instance, removed, keptPerApp: this.finishedKeptPerApp });
  }

  /** The operation whose unfinished undo holds this app, if any. */
  pendingRecoveryFor(instance: string, app: string | null | undefined): OperationRecord | undefined {
    const key = appKey(instance, app);
    if (!key) return undefined;
    for (const id of this.pending.keys()) {
      const rec = this.records.get(id);
      if (rec && appKey(rec.instanceName, rec.appName) === key) return rec;
    }
    return undefined;
  }

  private schedulePending(rec: OperationRecord, delayMs: number): void {
    const entry = this.pending.get(rec.id) ?? { timer: null, delayMs: this.recoveryRetryMs, running: null };
    this.pending.set(rec.id, entry);
    if (this.stopping || entry.timer || entry.running) return;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      entry.running = this.retryPending(rec, entry.delayMs).then((done) => {
        entry.running = null;
        if (done) return;
        const next = entry.delayMs;
        entry.delayMs = Math.min(entry.delayMs * 2, RECOVERY_RETRY_MAX_MS);
        this.schedulePending(rec, next);
      });
    }, delayMs);
    entry.timer.unref();
  }

  /** One more try of a pending recovery; true when nothing is left to undo. */
  private async retryPending(rec: OperationRecord, nextDelayMs: number): Promise<boolean> {
    const hook = this.recoveryHooks.get(rec.kind);
    if (!hook || !rec.recovery) { this.pending.delete(rec.id); return true; }
    const lines: string[] = [];
    const note = (l: string) => lines.push(`${new Date().toISOString()} ${scrub(l)}`);
    note('trying the unfinished recovery again');
    let finished = false;
    try {
      await hook(rec, note);
      finished = true;
      note('recovery finished: the app is as it was before this operation');
      log.info('pending recovery finished', { operation: rec.id });
    } catch (err) {
      note(`recovery failed again: ${(err as Error).message}; next try in ${Math.round(nextDelayMs / 1000)} s`);
      log.warn('pending recovery failed', { operation: rec.id, error: scrub((err as Error).message) });
    }
    const mem = this.logs.get(rec.id);
    if (mem) mem.push(...lines);
    await this.store.appendLog(rec, lines).catch((e: unknown) => log.warn('could not write operation log', { error: (e as Error).message }));
    // Finished only once its log says so: a client that sees recoveryPending turn false reads why.
    if (finished) {
      rec.recovery = null;
      this.pending.delete(rec.id);
    }
    await this.store.save(rec).catch((e: unknown) => log.error('could not persist operation record', { operation: rec.id, error: (e as Error).message }));
    if (rec.recovery) return false;
    this.pump(); // operations of the app queued meanwhile may start
    return true;
  }

  get(id: string): OperationRecord | undefined {
    return this.records.get(id);
  }

  /**
   * The operation's current state as its subscribers see it, a record nobody changes afterwards:
   * for one that runs, the record its last event carried, the same object for every subscriber
   * (one execution serves them all); progress that no event carried yet is published first, so
   * it is current. For one that finished, a copy.
   */
  published(id: string): OperationRecord | undefined {
    const a = this.active.get(id);
    if (a?.trailing) this.flushProgress(a);
    if (a?.published) return a.published;
    const rec = this.records.get(id);
    return rec && structuredClone(rec);
  }

  require(id: string): OperationRecord {
    const rec = this.records.get(id);
    if (!rec) throw new NotFoundError(`no operation with id "${id}"`);
    return rec;
  }

  /** Records, newest first, filtered. */
  list(filter: { instance?: string | null; status?: readonly OperationStatus[] | null; app?: string | null } = {}): OperationRecord[] {
    const out: OperationRecord[] = [];
    for (const rec of this.records.values()) {
      if (filter.instance && rec.instanceName !== filter.instance) continue;
      if (filter.app && rec.appName !== filter.app) continue;
      if (filter.status && filter.status.length > 0 && !filter.status.includes(rec.status)) continue;
      out.push(rec);
    }
    return out.sort(newestFirst);
  }

  async logTail(id: string, last = 100): Promise<string[]> {
    const rec = this.require(id);
    const mem = this.logs.get(id);
    if (mem && mem.length >= last) return mem.slice(-last);
    return this.store.readLogTail(rec, last);
  }

  /** The backups that queued or running work of an instance reads or deletes (OperationTask.backup), each with the first such operation. */
  backupsInUse(instance: string): Map<string, OperationRecord> {
    const out = new Map<string, OperationRecord>();
    for (const a of this.active.values()) {
      if (a.rec.instanceName === instance && a.task.backup !== undefined && !out.has(a.task.backup)) out.set(a.task.backup, a.rec);
    }
    return out;
  }

  /** Operations that are queued or running. */
  activeCount(): number {
    return this.active.size;
  }

  /** Creates an operation for the task and queues it. Throws ConflictError when the app is busy and the task rejects conflicts. */
  async submit(task: OperationTask): Promise<OperationRecord> {
    if (this.stopping) throw new ConflictError('the server is shutting down');
    const rejectOnConflict = (task.onAppConflict ?? 'reject') === 'reject';
    const held = this.pendingRecoveryFor(task.instance, task.app);
    if (held && rejectOnConflict) {
      throw new ConflictError(`app "${task.app}" of instance "${task.instance}" waits for operation ${held.id} (${held.kind}, ${held.status}) to finish putting things back: Wild Backup keeps trying in the background, and the app takes other operations once that is done`);
    }
    if (rejectOnConflict) {
      for (const a of this.active.values()) {
        const app = sharedApp(task, a.task);
        if (app === undefined) continue;
        const of = a.rec.appName && a.rec.appName !== app ? ` of ${a.rec.appName}` : '';
        throw new ConflictError(`app "${app}" of instance "${task.instance}" is busy with operation ${a.rec.id} (${a.rec.kind}${of}, ${a.rec.status})`);
      }
    }
    if (task.backup !== undefined) {
      for (const a of this.active.values()) {
        if (a.rec.instanceName !== task.instance || a.task.backup !== task.backup) continue;
        if (task.kind === 'DELETE_BACKUP') {
          throw new ConflictError(`backup "${task.backup}" is in use by operation ${a.rec.id} (${a.rec.kind}, ${a.rec.status}): delete it once that has finished`);
        }
        if (a.task.kind === 'DELETE_BACKUP') throw new ConflictError(`backup "${task.backup}" is being deleted by operation ${a.rec.id} (${a.rec.status})`);
      }
    }
    const rec: OperationRecord = {
      version: 1,
      id: newOperationId(),
      kind: task.kind,
      status: 'QUEUED',
      instanceName: task.instance,
      appName: task.app ?? null,
      progress: { phase: 'queued', bytesDone: 0, bytesTotal: null, bytesPerSecond: null, etaSeconds: null, currentItem: null },
      message: null,
      error: null,
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      backupId: null,
      recovery: null,
    };
    let resolveFinished!: () => void;
    const finished = new Promise<void>((r) => (resolveFinished = r));
    const a: Active = {
      rec, task, controller: new AbortController(), lastPublish: 0, published: null, lastPersist: 0, trailing: null,
      rateSample: null, finished, resolveFinished,
    };
    this.records.set(rec.id, rec);
    this.active.set(rec.id, a);
    this.queue.push(rec.id);
    await this.store.save(rec);
    this.publish(a, 'CREATED');
    const created = structuredClone(rec);
    this.pump();
    return created;
  }

  /** Cancels a queued or running operation. A finished one is a ConflictError. */
  async cancel(id: string): Promise<OperationRecord> {
    const rec = this.require(id);
    const a = this.active.get(id);
    if (!a || isTerminal(rec.status)) throw new ConflictError(`operation ${id} has already finished (${rec.status})`);
    if (rec.status === 'QUEUED') {
      this.queue.splice(this.queue.indexOf(id), 1);
      await this.finish(a, 'CANCELLED', { message: 'cancelled before it started' });
      return rec;
    }
    this.appendLog(a, 'cancel requested');
    a.controller.abort(new CancelReason('user'));
    return rec;
  }

  /** Resolves when the operation reaches a terminal state. */
  async waitFor(id: string): Promise<OperationRecord> {
    const a = this.active.get(id);
    if (a) await a.finished;
    return this.require(id);
  }

  /** Stops admitting work, aborts what runs and waits (bounded) for it to reach a safe point. */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    const recovering: Array<Promise<void>> = [];
    for (const entry of this.pending.values()) {
      if (entry.timer) clearTimeout(entry.timer);
      entry.timer = null;
      if (entry.running) recovering.push(entry.running);
    }
    for (const id of [...this.queue]) {
      const a = this.active.get(id);
      this.queue.splice(this.queue.indexOf(id), 1);
      if (a) await this.finish(a, 'FAILED', { error: { code: 'INTERRUPTED', message: 'the server stopped before this operation started' } });
    }
    const running = [...this.active.values()];
    for (const a of running) a.controller.abort(new CancelReason('shutdown'));
    await Promise.race([
      Promise.all([...running.map((a) => a.finished), ...recovering]).then(() => Promise.allSettled([...this.finishing])),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }

  private canStart(a: Active, running: Active[]): boolean {
    if (running.length >= this.concurrency) return false;
    if (this.pendingRecoveryFor(a.rec.instanceName, a.rec.appName)) return false; // waits until the app is put back
    for (const r of running) {
      if (r.rec.instanceName !== a.rec.instanceName) continue;
      if (a.task.exclusive || r.task.exclusive) return false;
      if (sharedApp(a.task, r.task) !== undefined) return false;
    }
    // An exclusive task queued earlier on the same instance goes first (no starvation).
    for (const qid of this.queue) {
      if (qid === a.rec.id) break;
      const q = this.active.get(qid);
      if (q && q.rec.instanceName === a.rec.instanceName && (q.task.exclusive || sharedApp(a.task, q.task) !== undefined)) return false;
    }
    return true;
  }

  private pump(): void {
    if (this.stopping) return;
    for (const id of [...this.queue]) {
      const a = this.active.get(id);
      if (!a) continue;
      const running = [...this.active.values()].filter((x) => x.rec.status === 'RUNNING');
      if (!this.canStart(a, running)) continue;
      this.queue.splice(this.queue.indexOf(id), 1);
      a.rec.status = 'RUNNING';
      a.rec.startedAt = new Date().toISOString();
      a.rec.progress = { ...a.rec.progress, phase: 'starting' };
      void this.run(a);
    }
  }

  private async run(a: Active): Promise<void> {
    const { rec, task, controller } = a;
    await this.persist(a);
    this.publish(a, 'UPDATED');
    this.appendLog(a, `started ${rec.kind}${rec.appName ? ` of ${rec.instanceName}/${rec.appName}` : ` on ${rec.instanceName}`}`);
    const ctx: TaskContext = {
      operationId: rec.id,
      signal: controller.signal,
      progress: (u) => this.onProgress(a, u),
      log: (line) => this.appendLog(a, line),
      setBackupId: (id) => {
        rec.backupId = id;
        // Persisted at once: after a crash, recovery needs to know which snapshots to clean up.
        void this.persist(a);
        this.publish(a, 'UPDATED');
      },
      saveRecovery: async (data) => {
        rec.recovery = data;
        await this.persist(a);
      },
    };
    let result: TaskResult | void;
    try {
      // A cancel or a stop that came while the record was written: the task never starts.
      controller.signal.throwIfAborted();
      result = await task.run(ctx);
    } catch (err) {
      const reason = controller.signal.reason;
      if (controller.signal.aborted && reason instanceof CancelReason) {
        if (reason.by === 'user') await this.finish(a, 'CANCELLED', { message: 'cancelled' });
        else await this.finish(a, 'FAILED', { error: { code: 'INTERRUPTED', message: 'the server stopped while this operation was running' } });
      } else {
        const code = err instanceof WildError ? err.code : typeof (err as { code?: unknown }).code === 'string' ? String((err as { code: string }).code) : 'FAILED';
        const message = scrub((err as Error)?.message ?? String(err));
        if (!(err instanceof WildError)) log.error('operation failed', { operation: rec.id, error: message, stack: scrub((err as Error)?.stack ?? '') });
        await this.finish(a, 'FAILED', { error: { code, message } });
      }
      return;
    }
    if (controller.signal.aborted && controller.signal.reason instanceof CancelReason && controller.signal.reason.by === 'user') {
      // The task finished its work before it noticed the cancel; what it did stands.
      this.appendLog(a, 'cancel came after the work was done');
    }
    if (result?.backupId) rec.backupId = result.backupId;
    await this.finish(a, 'SUCCEEDED', { message: result?.message ?? null });
  }

  private onProgress(a: Active, u: ProgressUpdate): void {
    const p = a.rec.progress;
    const phaseChanged = u.phase !== undefined && u.phase !== p.phase;
    Object.assign(p, Object.fromEntries(Object.entries(u).filter(([, v]) => v !== undefined)));
    this.updateRate(a);
    const now = Date.now();
    // A new phase goes out at once unless an event went out just now; then with the next one, at
    // most `progressIntervalMs` later (a backup's first second changes phase many times, and each
    // event is an execution and a send per subscriber).
    const since = now - a.lastPublish;
    if (since >= this.progressIntervalMs || (phaseChanged && since >= PHASE_MIN_GAP_MS)) {
      this.flushProgress(a);
    } else if (!a.trailing) {
      a.trailing = setTimeout(() => this.flushProgress(a), this.progressIntervalMs - since);
    }
  }

  private flushProgress(a: Active): void {
    if (a.trailing) clearTimeout(a.trailing);
    a.trailing = null;
    if (isTerminal(a.rec.status)) return;
    this.publish(a, 'UPDATED');
    if (Date.now() - a.lastPersist >= this.persistIntervalMs) void this.persist(a);
  }

  /** Rate as an exponentially weighted average over samples at least 200 ms apart. */
  private updateRate(a: Active): void {
    const p = a.rec.progress;
    const now = Date.now();
    if (!a.rateSample || p.bytesDone < a.rateSample.bytes) {
      a.rateSample = { t: now, bytes: p.bytesDone };
      return;
    }
    const dt = (now - a.rateSample.t) / 1000;
    if (dt < 0.2) return;
    const instant = (p.bytesDone - a.rateSample.bytes) / dt;
    p.bytesPerSecond = p.bytesPerSecond === null ? instant : 0.7 * p.bytesPerSecond + 0.3 * instant;
    a.rateSample = { t: now, bytes: p.bytesDone };
    p.etaSeconds = p.bytesTotal !== null && p.bytesPerSecond > 0 ? Math.max(0, (p.bytesTotal - p.bytesDone) / p.bytesPerSecond) : null;
  }

  private async finish(
    a: Active,
    status: OperationStatus,
    extra: { message?: string | null; error?: { code: string; message: string } },
  ): Promise<void> {
    if (isTerminal(a.rec.status)) return;
    if (a.trailing) clearTimeout(a.trailing);
    a.trailing = null;
    const rec = a.rec;
    rec.status = status;
    rec.finishedAt = new Date().toISOString();
    rec.error = extra.error ?? null;
    rec.message = extra.message ?? extra.error?.message ?? null;
    rec.progress = { ...rec.progress, phase: status.toLowerCase(), etaSeconds: status === 'SUCCEEDED' ? 0 : null };
    // Recovery data the task left (it clears it when everything is undone or in place) is an undo
    // still to do: kept, and tried again in the background.
    const undoLeft = rec.recovery !== null && this.recoveryHooks.has(rec.kind);
    if (!undoLeft) rec.recovery = null;
    const lastLine = this.appendLog(a, `${status}${rec.error ? ` ${rec.error.code}: ${rec.error.message}` : rec.message ? `: ${rec.message}` : ''}`);
    this.active.delete(rec.id);
    if (undoLeft) this.schedulePending(rec, this.recoveryRetryMs);
    try {
      await this.persist(a);
    } finally {
      this.publish(a, 'FINISHED');
      a.resolveFinished();
      this.pump();
    }
    // Once the whole log is on disk, its tail can leave memory in its turn. stop() waits for this
    // tail: a log line or a pruning landing after it would write into a data directory that its
    // owner may already have moved or removed.
    const tail = (async () => {
      await lastLine;
      this.finishedLogs.push(rec.id);
      while (this.finishedLogs.length > FINISHED_LOGS_IN_MEMORY) this.logs.delete(this.finishedLogs.shift()!);
      await this.pruneHistory(rec.instanceName, rec.appName ?? null);
    })();
    this.finishing.add(tail);
    try {
      await tail;
    } finally {
      this.finishing.delete(tail);
    }
  }

  /** Operations whose log tail is held in memory (the running ones and the latest finished). */
  logsInMemory(): number {
    return this.logs.size;
  }

  /** Resolves once the line is on disk (or could not be written, which is logged). */
  private appendLog(a: Active, line: string): Promise<void> {
    const entry = `${new Date().toISOString()} ${scrub(line)}`;
    const mem = this.logs.get(a.rec.id) ?? [];
    mem.push(entry);
    if (mem.length > MAX_LOG_LINES_IN_MEMORY) mem.splice(0, mem.length - MAX_LOG_LINES_IN_MEMORY);
    this.logs.set(a.rec.id, mem);
    return this.store.appendLog(a.rec, [entry]).catch((err) => log.warn('could not write operation log', { error: (err as Error).message }));
  }

  private async persist(a: Active): Promise<void> {
    a.lastPersist = Date.now();
    try {
      await this.store.save(a.rec);
    } catch (err) {
      log.error('could not persist operation record', { operation: a.rec.id, error: (err as Error).message });
    }
  }

  private publish(a: Active, type: 'CREATED' | 'UPDATED' | 'FINISHED'): void {
    a.lastPublish = Date.now();
    a.rec.updatedAt = new Date(a.lastPublish).toISOString();
    // Subscribers get a snapshot: later changes to the live record must not alter events in flight.
    const snapshot: OperationRecord = structuredClone(a.rec);
    a.published = snapshot;
    const event = { type, operation: snapshot };
    this.opts.pubsub.publish('operations', event);
    this.opts.pubsub.publish(`operation:${snapshot.id}`, event);
  }
}
