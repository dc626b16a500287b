// The operation engine: lifecycle, progress throttling, cancel, conflicts, the concurrency limit,
// exclusive work, persistence and recovery after a crash. Driven by a test-only task kind.
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OperationEngine, type OperationRecord, type OperationTask } from '../../src/engine/operations/index.js';
import { FINISHED_LOGS_IN_MEMORY } from '../../src/engine/operations/engine.js';
import { OperationStore } from '../../src/engine/operations/store.js';
import { PubSub } from '../../src/subscriptions/pubsub.js';
import type { OperationEvent, OperationTopics } from '../../src/subscriptions/events.js';
import { DataPaths } from '../../src/wild/paths.js';
import { ConflictError, NotFoundError, RepositoryError } from '../../src/errors.js';
import { tempDataDir, type TempDataDir } from '../helpers/data-dir.js';
import { tickTask } from '../helpers/tasks.js';

let data: TempDataDir;
let paths: DataPaths;
let pubsub: PubSub<OperationTopics>;
let engines: OperationEngine[];

function newEngine(opts: { concurrency?: number; progressIntervalMs?: number; recoveryRetryMs?: number; finishedKeptPerApp?: number } = {}): OperationEngine {
  const e = new OperationEngine({ paths, pubsub, ...opts });
  engines.push(e);
  return e;
}

beforeEach(async () => {
  data = await tempDataDir();
  paths = new DataPaths(data.dir);
  pubsub = new PubSub<OperationTopics>();
  engines = [];
});
afterEach(async () => {
  await Promise.all(engines.map((e) => e.stop(2000)));
  await data.cleanup();
});

const readRecord = async (rec: OperationRecord) =>
  JSON.parse(await readFile(path.join(paths.operationsDir(rec.instanceName), `${rec.id}.json`), 'utf8')) as OperationRecord;

describe('OperationEngine', () => {
  it('runs a task QUEUED -> RUNNING -> SUCCEEDED, persists the record and its log', async () => {
    const engine = newEngine();
    const events: OperationEvent[] = [];
    const sub = pubsub.subscribe('operations');
    const collecting = (async () => { for await (const e of sub) { events.push(e); if (e.type === 'FINISHED') break; } })();
    const rec = await engine.submit(tickTask({ steps: 3 }));
    expect(rec.status).toBe('QUEUED');
    const done = await engine.waitFor(rec.id);
    await collecting;
    expect(done.status).toBe('SUCCEEDED');
    expect(done.message).toBe('ticked 3 times');
    expect(done.progress.bytesDone).toBe(3000);
    expect(events[0]?.type).toBe('CREATED');
    expect(events.map((e) => e.operation.status)).toContain('RUNNING');
    expect(events.at(-1)?.operation.status).toBe('SUCCEEDED');
    const onDisk = await readRecord(rec);
    expect(onDisk.status).toBe('SUCCEEDED');
    expect(onDisk.finishedAt).not.toBeNull();
    const log = await readFile(path.join(paths.operationsDir('home'), rec.id, 'output.log'), 'utf8');
    expect(log).toContain('step 3 of 3');
    expect(await engine.logTail(rec.id, 2)).toHaveLength(2);
  });

  it('writes a log\'s lines to disk in the order they were logged, however fast they come', async () => {
    const store = new OperationStore(paths);
    const rec = { instanceName: 'home', id: 'op-order-ab12' } as OperationRecord;
    const lines = Array.from({ length: 400 }, (_, i) => `line ${i} ${'x'.repeat(i % 7 === 0 ? 20_000 : 10)}`);
    // Not awaited one by one: as the engine logs, one line after another in the same tick.
    await Promise.all(lines.map((l) => store.appendLog(rec, [l])));
    expect((await readFile(store.logFile(rec), 'utf8')).split('\n').slice(0, -1)).toEqual(lines);
  });

  it('keeps the log tails of only the latest finished operations in memory; older ones come from disk', async () => {
    const engine = newEngine({ concurrency: 4 });
    const n = FINISHED_LOGS_IN_MEMORY + 30;
    const recs: OperationRecord[] = [];
    for (let i = 0; i < n; i++) recs.push(await engine.submit(tickTask({ steps: 2, stepMs: 1 })));
    for (const r of recs) await engine.waitFor(r.id);
    // waitFor resolves as the record finishes; the log leaves memory once its last line is written.
    for (const t0 = Date.now(); engine.logsInMemory() > FINISHED_LOGS_IN_MEMORY && Date.now() - t0 < 5000;) await new Promise((r) => setTimeout(r, 10));
    expect(engine.logsInMemory()).toBe(FINISHED_LOGS_IN_MEMORY);
    // The first operation's log is no longer in memory, and is whole on disk.
    const first = await engine.logTail(recs[0]!.id, 10);
    expect(first.map((l) => l.replace(/^\S+ /, ''))).toEqual(['started CHECK_REPOSITORY on home', 'step 1 of 2', 'step 2 of 2', 'SUCCEEDED: ticked 2 times']);
  });

  it('throttles progress events to a few a second, and the last progress always arrives', async () => {
    const engine = newEngine({ progressIntervalMs: 250 });
    const rec = await engine.submit({
      kind: 'CHECK_REPOSITORY', instance: 'home',
      async run(ctx) {
        ctx.progress({ phase: 'busy', bytesTotal: 10_000 });
        for (let i = 1; i <= 10_000; i++) {
          ctx.progress({ bytesDone: i });
          if (i % 100 === 0) await new Promise((r) => setTimeout(r, 10)); // ~1 s in all
        }
        await new Promise((r) => setTimeout(r, 300));
      },
    });
    const updates: OperationRecord[] = [];
    const sub = pubsub.subscribe(`operation:${rec.id}`, { bufferSize: 10_000 });
    for await (const e of sub) {
      if (e.type === 'UPDATED' && e.operation.progress.phase === 'busy') updates.push(e.operation);
      if (e.type === 'FINISHED') break;
    }
    // 10,000 progress calls in about a second become a handful of events.
    expect(updates.length).toBeGreaterThan(1);
    expect(updates.length).toBeLessThan(15);
    expect(updates.at(-1)?.progress.bytesDone).toBe(10_000);
    expect(updates.at(-1)?.progress.bytesPerSecond).toBeGreaterThan(0);
    const done = engine.get(rec.id)!;
    expect(done.status).toBe('SUCCEEDED');
  });

  it('a burst of phase changes is not an event each: at most one per 100 ms, and the last phase arrives', async () => {
    const engine = newEngine({ progressIntervalMs: 250 });
    const rec = await engine.submit({
      kind: 'CHECK_REPOSITORY', instance: 'home',
      async run(ctx) {
        // 40 phases in ~400 ms (a backup's first second: planning, estimates, each artifact starting).
        for (let i = 1; i <= 40; i++) {
          ctx.progress({ phase: `phase ${i}` });
          await new Promise((r) => setTimeout(r, 10));
        }
        await new Promise((r) => setTimeout(r, 400));
      },
    });
    const at: Array<{ t: number; phase: string }> = [];
    const sub = pubsub.subscribe(`operation:${rec.id}`, { bufferSize: 10_000 });
    for await (const e of sub) {
      if (e.type === 'UPDATED' && e.operation.progress.phase.startsWith('phase ')) at.push({ t: Date.parse(e.operation.updatedAt ?? ''), phase: e.operation.progress.phase });
      if (e.type === 'FINISHED') break;
    }
    expect(at.length).toBeGreaterThan(1);
    expect(at.length).toBeLessThan(10); // one per change would be 40
    for (let i = 1; i < at.length; i++) expect(at[i]!.t - at[i - 1]!.t).toBeGreaterThanOrEqual(100);
    expect(at.at(-1)?.phase).toBe('phase 40');
  });

  it("a running operation's subscribers all start from one record, current and never changed afterwards", async () => {
    const engine = newEngine({ progressIntervalMs: 60_000 });
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let moveOn!: () => void;
    const moved = new Promise<void>((r) => { moveOn = r; });
    const sub = pubsub.subscribe('operations', { bufferSize: 1000 });
    const rec = await engine.submit({
      kind: 'CHECK_REPOSITORY', instance: 'home',
      async run(ctx) {
        await new Promise((r) => setTimeout(r, 150));
        ctx.progress({ phase: 'copying', bytesTotal: 100, bytesDone: 1 }); // a phase change 100 ms after the last event: published at once
        await new Promise((r) => setTimeout(r, 10));
        ctx.progress({ bytesDone: 50 }); // within the interval: no event carries it yet
        moveOn();
        await gate;
      },
    });
    for (let e = await sub.next(); e.value?.operation.progress.phase !== 'copying'; e = await sub.next()) expect(e.done).toBeFalsy();
    await moved;
    const first = engine.published(rec.id);
    expect(first?.progress.bytesDone).toBe(50); // current: what no event had carried went out first
    expect(engine.published(rec.id)).toBe(first); // nothing new since: the same object for the next subscriber
    const next = await sub.next();
    expect(next.value?.operation).toBe(first); // and it is what an event carried
    engine.get(rec.id)!.progress.currentItem = 'changed later';
    expect(first?.progress.currentItem).not.toBe('changed later'); // never changed afterwards
    release();
    const done = await engine.waitFor(rec.id);
    const after = engine.published(rec.id);
    expect(after).toEqual(done); // finished: a copy of the record
    expect(after).not.toBe(engine.get(rec.id));
  });

  it('cancels a running task through its AbortSignal and records CANCELLED', async () => {
    const engine = newEngine();
    let sawAbort = false;
    let started!: () => void;
    const running = new Promise<void>((r) => { started = r; });
    const rec = await engine.submit(tickTask({ steps: 1000, stepMs: 20, onStart: (ctx) => { ctx.signal.addEventListener('abort', () => { sawAbort = true; }); started(); } }));
    // The task itself has started (RUNNING alone is not enough: the record is written first, and on
    // a busy machine a cancel in that time rightly keeps the task from starting at all).
    await running;
    await new Promise((r) => setTimeout(r, 50));
    expect(engine.get(rec.id)?.status).toBe('RUNNING');
    await engine.cancel(rec.id);
    const done = await engine.waitFor(rec.id);
    expect(sawAbort).toBe(true);
    expect(done.status).toBe('CANCELLED');
    expect((await readRecord(rec)).status).toBe('CANCELLED');
    await expect(engine.cancel(rec.id)).rejects.toBeInstanceOf(ConflictError);
    await expect(engine.cancel('op-nope-00')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a cancel that comes while the running record is written keeps the task from starting at all', async () => {
    const engine = newEngine();
    let ran = false;
    const rec = await engine.submit(tickTask({ steps: 5, onStart: () => { ran = true; } }));
    expect(engine.get(rec.id)?.status).toBe('RUNNING'); // started, its record not yet written
    await engine.cancel(rec.id);
    const done = await engine.waitFor(rec.id);
    expect(done.status).toBe('CANCELLED');
    expect(ran).toBe(false);
    expect((await readRecord(rec)).status).toBe('CANCELLED');
  });

  it('records a failure with the error code and a message', async () => {
    const engine = newEngine();
    const rec = await engine.submit(tickTask({ steps: 1, fail: new RepositoryError('repository is locked', 'REPOSITORY_LOCKED') }));
    const done = await engine.waitFor(rec.id);
    expect(done.status).toBe('FAILED');
    expect(done.error).toEqual({ code: 'REPOSITORY_LOCKED', message: 'repository is locked' });
  });

  it('refuses a second operation on a busy app with ConflictError, and runs other apps side by side', async () => {
    const engine = newEngine({ concurrency: 2 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = await engine.submit(tickTask({ app: 'gitea', steps: 1, gate }));
    await expect(engine.submit(tickTask({ app: 'gitea' }))).rejects.toBeInstanceOf(ConflictError);
    const b = await engine.submit(tickTask({ app: 'immich', steps: 1, gate }));
    await new Promise((r) => setTimeout(r, 100));
    expect(engine.get(a.id)?.status).toBe('RUNNING');
    expect(engine.get(b.id)?.status).toBe('RUNNING');
    release();
    await engine.waitFor(a.id);
    await engine.waitFor(b.id);
    // Once the app is free again, a new operation is accepted.
    const c = await engine.submit(tickTask({ app: 'gitea', steps: 1 }));
    expect((await engine.waitFor(c.id)).status).toBe('SUCCEEDED');
  });

  it('holds work beyond the concurrency limit QUEUED until a slot frees', async () => {
    const engine = newEngine({ concurrency: 1 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = await engine.submit(tickTask({ app: 'gitea', steps: 1, gate }));
    const b = await engine.submit(tickTask({ app: 'immich', steps: 1 }));
    await new Promise((r) => setTimeout(r, 100));
    expect(engine.get(b.id)?.status).toBe('QUEUED');
    release();
    expect((await engine.waitFor(b.id)).status).toBe('SUCCEEDED');
    expect(new Date(engine.get(b.id)!.startedAt!).getTime()).toBeGreaterThanOrEqual(new Date(engine.get(a.id)!.finishedAt!).getTime());
  });

  it('runs exclusive work alone on its instance: it waits for running work and blocks new work', async () => {
    const engine = newEngine({ concurrency: 4 });
    let releaseA!: () => void;
    const gateA = new Promise<void>((r) => (releaseA = r));
    const a = await engine.submit(tickTask({ app: 'gitea', steps: 1, gate: gateA }));
    const prune = await engine.submit(tickTask({ kind: 'APPLY_RETENTION', exclusive: true, steps: 1 }));
    const later = await engine.submit(tickTask({ app: 'immich', steps: 1 }));
    await new Promise((r) => setTimeout(r, 100));
    expect(engine.get(prune.id)?.status).toBe('QUEUED');
    expect(engine.get(later.id)?.status).toBe('QUEUED');
    releaseA();
    await engine.waitFor(later.id);
    const [pa, pp, pl] = [engine.get(a.id)!, engine.get(prune.id)!, engine.get(later.id)!];
    expect(pp.startedAt! >= pa.finishedAt!).toBe(true);
    expect(pl.startedAt! >= pp.finishedAt!).toBe(true);
  });

  it('work that also holds an app conflicts with work on that app, not with other work that also holds it', async () => {
    const engine = newEngine({ concurrency: 4 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Restores of two apps on one database server run side by side.
    const ghost = await engine.submit(tickTask({ kind: 'RESTORE_APP', app: 'ghost', alsoHolds: [{ app: 'mysql', as: 'alter' }], steps: 1, gate }));
    const blog = await engine.submit(tickTask({ kind: 'VERIFY_BACKUP', app: 'blog', alsoHolds: [{ app: 'mysql', as: 'alter' }], steps: 1, gate }));
    await expect(engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'mysql' }))).rejects.toThrow(`app "mysql" of instance "home" is busy with operation ${ghost.id} (RESTORE_APP of ghost, RUNNING)`);
    // On another instance, the same app names are other apps.
    const elsewhere = await engine.submit(tickTask({ kind: 'BACKUP_APP', instance: 'lab', app: 'mysql', steps: 1 }));
    // Queued rather than refused: waits for both.
    const queued = await engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'mysql', onAppConflict: 'queue', steps: 1 }));
    await new Promise((r) => setTimeout(r, 100));
    expect([engine.get(ghost.id)?.status, engine.get(blog.id)?.status, engine.get(queued.id)?.status]).toEqual(['RUNNING', 'RUNNING', 'QUEUED']);
    // And a new restore on that server waits behind the server's queued backup, refused meanwhile.
    await expect(engine.submit(tickTask({ kind: 'RESTORE_APP', app: 'wiki', alsoHolds: [{ app: 'mysql', as: 'alter' }] }))).rejects.toThrow(`app "mysql" of instance "home" is busy with operation ${queued.id} (BACKUP_APP, QUEUED)`);
    release();
    for (const op of [ghost, blog, elsewhere, queued]) expect((await engine.waitFor(op.id)).status).toBe('SUCCEEDED');
    const [g, b, q] = [engine.get(ghost.id)!, engine.get(blog.id)!, engine.get(queued.id)!];
    expect(q.startedAt! >= g.finishedAt! && q.startedAt! >= b.finishedAt!).toBe(true);
  });

  it('work that only uses a server app runs beside that app\'s backup, not beside its restore, which stops it', async () => {
    const engine = newEngine({ concurrency: 4 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const uses = [{ app: 'postgres', as: 'use' as const }];
    // The nightly shape: the server's whole dump and its apps' own dumps at once.
    const server = await engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'postgres', steps: 1, gate }));
    const gitea = await engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'gitea', alsoHolds: uses, steps: 1, gate }));
    const immich = await engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'immich', alsoHolds: uses, steps: 1, gate }));
    await new Promise((r) => setTimeout(r, 50));
    expect([server, gitea, immich].map((op) => engine.get(op.id)?.status)).toEqual(['RUNNING', 'RUNNING', 'RUNNING']);
    release();
    for (const op of [server, gitea, immich]) expect((await engine.waitFor(op.id)).status).toBe('SUCCEEDED');

    let releaseB!: () => void;
    const gateB = new Promise<void>((r) => (releaseB = r));
    const backup = await engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'gitea', alsoHolds: uses, steps: 1, gate: gateB }));
    await expect(engine.submit(tickTask({ kind: 'RESTORE_APP', app: 'postgres', stopsApp: true }))).rejects.toThrow(`app "postgres" of instance "home" is busy with operation ${backup.id} (BACKUP_APP of gitea, RUNNING)`);
    releaseB();
    expect((await engine.waitFor(backup.id)).status).toBe('SUCCEEDED');
    let releaseR!: () => void;
    const gateR = new Promise<void>((r) => (releaseR = r));
    const restore = await engine.submit(tickTask({ kind: 'RESTORE_APP', app: 'postgres', stopsApp: true, steps: 1, gate: gateR }));
    await expect(engine.submit(tickTask({ kind: 'BACKUP_APP', app: 'immich', alsoHolds: uses }))).rejects.toThrow(`app "postgres" of instance "home" is busy with operation ${restore.id} (RESTORE_APP, RUNNING)`);
    releaseR();
    expect((await engine.waitFor(restore.id)).status).toBe('SUCCEEDED');
  });

  it('refuses a deletion of a backup that queued or running work reads, and work on a backup being deleted; reports what is in use', async () => {
    const engine = newEngine({ concurrency: 1 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const running = await engine.submit(tickTask({ app: 'immich', steps: 1, gate }));
    // Queued behind the running one: still in use.
    const restore = await engine.submit(tickTask({ kind: 'RESTORE_APP', app: 'gitea-clone', backup: 'b-1', steps: 1 }));
    // b-2 is a cluster backup: its work has no app, so only the backup can conflict.
    const del = await engine.submit(tickTask({ kind: 'DELETE_BACKUP', backup: 'b-2', exclusive: true, steps: 1 }));
    await expect(engine.submit(tickTask({ kind: 'DELETE_BACKUP', app: 'gitea', backup: 'b-1', exclusive: true })))
      .rejects.toThrow(new RegExp(`backup "b-1" is in use by operation ${restore.id} \\(RESTORE_APP, QUEUED\\)`));
    await expect(engine.submit(tickTask({ kind: 'VERIFY_BACKUP', backup: 'b-2' }))).rejects.toThrow(new RegExp(`backup "b-2" is being deleted by operation ${del.id} \\(QUEUED\\)`));
    await expect(engine.submit(tickTask({ kind: 'DELETE_BACKUP', backup: 'b-2', exclusive: true }))).rejects.toBeInstanceOf(ConflictError);
    // The same backup on another instance, or another backup, is no conflict.
    const elsewhere = await engine.submit(tickTask({ kind: 'DELETE_BACKUP', instance: 'lab', app: 'gitea', backup: 'b-1', exclusive: true, steps: 1 }));
    const verify = await engine.submit(tickTask({ kind: 'VERIFY_BACKUP', app: 'ghost', backup: 'b-3', steps: 1 }));
    expect([...engine.backupsInUse('home')].map(([id, op]) => [id, op.id])).toEqual([['b-1', restore.id], ['b-2', del.id], ['b-3', verify.id]]);
    release();
    for (const op of [running, restore, del, elsewhere, verify]) expect((await engine.waitFor(op.id)).status).toBe('SUCCEEDED');
    expect(engine.backupsInUse('home').size, 'finished work holds nothing').toBe(0);
    // Once the restore is done, its backup can be deleted.
    expect((await engine.waitFor((await engine.submit(tickTask({ kind: 'DELETE_BACKUP', app: 'gitea', backup: 'b-1', exclusive: true, steps: 1 }))).id)).status).toBe('SUCCEEDED');
  });

  it('cancels a queued operation without running it', async () => {
    const engine = newEngine({ concurrency: 1 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await engine.submit(tickTask({ app: 'gitea', steps: 1, gate }));
    let ran = false;
    const queued = await engine.submit({ kind: 'CHECK_REPOSITORY', instance: 'home', app: 'immich', run: async () => { ran = true; } });
    const rec = await engine.cancel(queued.id);
    expect(rec.status).toBe('CANCELLED');
    release();
    await new Promise((r) => setTimeout(r, 50));
    expect(ran).toBe(false);
  });

  it('on start-up marks what a crash left RUNNING as FAILED/INTERRUPTED and runs the recovery hook', async () => {
    const dir = paths.operationsDir('home');
    await mkdir(dir, { recursive: true });
    const base = {
      version: 1, kind: 'RESTORE_APP', instanceName: 'home', appName: 'gitea', message: null, error: null,
      progress: { phase: 'swapping', bytesDone: 5, bytesTotal: 10, bytesPerSecond: null, etaSeconds: null, currentItem: null },
      createdAt: '2026-11-26T10:00:00.000Z', startedAt: '2026-11-26T10:00:01.000Z', finishedAt: null, backupId: null,
    };
    await writeFile(path.join(dir, 'op-crashed-aa11.json'), JSON.stringify({ ...base, id: 'op-crashed-aa11', status: 'RUNNING', recovery: { replicas: { 'gitea/gitea': 1 } } }));
    await writeFile(path.join(dir, 'op-done-bb22.json'), JSON.stringify({ ...base, id: 'op-done-bb22', status: 'SUCCEEDED', finishedAt: '2026-11-26T10:05:00.000Z', recovery: null }));
    await writeFile(path.join(dir, 'op-junk-cc33.json'), '{ not json');
    const engine = newEngine();
    const recovered: unknown[] = [];
    engine.onRecovery('RESTORE_APP', async (rec, log) => { recovered.push(rec.recovery); log('scaled gitea/gitea back to 1'); });
    await engine.init(['home']);
    const crashed = engine.get('op-crashed-aa11')!;
    expect(crashed.status).toBe('FAILED');
    expect(crashed.error?.code).toBe('INTERRUPTED');
    expect(recovered).toEqual([{ replicas: { 'gitea/gitea': 1 } }]);
    expect(engine.get('op-done-bb22')?.status).toBe('SUCCEEDED');
    expect(engine.get('op-junk-cc33')).toBeUndefined();
    const onDisk = JSON.parse(await readFile(path.join(dir, 'op-crashed-aa11.json'), 'utf8')) as OperationRecord;
    expect(onDisk.status).toBe('FAILED');
    expect(onDisk.recovery).toBeNull();
    expect(await engine.logTail('op-crashed-aa11')).toEqual(expect.arrayContaining([expect.stringContaining('scaled gitea/gitea back to 1')]));
  });

  it('a start-up recovery that fails is kept and tried again in the background, across a restart, and holds its app meanwhile', async () => {
    const dir = paths.operationsDir('home');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'op-crashed-dd44.json'), JSON.stringify({
      version: 1, id: 'op-crashed-dd44', kind: 'RESTORE_APP', status: 'RUNNING', instanceName: 'home', appName: 'gitea', message: null, error: null,
      progress: { phase: 'swapping in', bytesDone: 5, bytesTotal: 10, bytesPerSecond: null, etaSeconds: null, currentItem: null },
      createdAt: '2026-11-26T10:00:00.000Z', startedAt: '2026-11-26T10:00:01.000Z', finishedAt: null, backupId: null,
      recovery: { replicas: { 'Deployment/gitea': 1 } },
    }));
    // The cluster does not answer for the first three tries (the start-up one included).
    let tries = 0;
    const hook = async () => { if (++tries <= 3) throw new Error('cluster unreachable'); };
    const first = newEngine({ recoveryRetryMs: 100 });
    first.onRecovery('RESTORE_APP', hook);
    await first.init(['home']);
    expect(first.get('op-crashed-dd44')!.recovery).toEqual({ replicas: { 'Deployment/gitea': 1 } });
    expect((await readRecord(first.get('op-crashed-dd44')!)).recovery).not.toBeNull();
    // The app takes no other operation while its undo is pending; other apps do.
    await expect(first.submit(tickTask({ app: 'gitea' }))).rejects.toThrow(/waits for operation op-crashed-dd44 \(RESTORE_APP, FAILED\) to finish putting things back/);
    expect((await first.waitFor((await first.submit(tickTask({ app: 'immich', steps: 1 }))).id)).status).toBe('SUCCEEDED');
    // A restart while it is pending: the new engine picks it up from the record.
    await expect.poll(() => tries, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    await first.stop(2000);
    const second = newEngine({ recoveryRetryMs: 100 });
    second.onRecovery('RESTORE_APP', hook);
    await second.init(['home']);
    await expect.poll(() => second.get('op-crashed-dd44')!.recovery, { timeout: 10_000 }).toBeNull();
    expect(tries).toBe(4);
    // The record on disk follows the one in memory (its write is queued after the log's).
    await expect.poll(async () => (await readRecord(second.get('op-crashed-dd44')!)).recovery, { timeout: 5_000 }).toBeNull();
    expect(await second.logTail('op-crashed-dd44')).toEqual(expect.arrayContaining([expect.stringContaining('recovery failed again: cluster unreachable'), expect.stringContaining('recovery finished')]));
    expect((await second.waitFor((await second.submit(tickTask({ app: 'gitea', steps: 1 }))).id)).status).toBe('SUCCEEDED');
  });

  it('keeps the newest finished operations of each app and removes older ones with their logs, never one with an undo still to do', async () => {
    const dir = paths.operationsDir('home');
    await mkdir(dir, { recursive: true });
    const record = (id: string, minute: number, extra: Partial<OperationRecord> = {}) => ({
      version: 1, id, kind: 'BACKUP_APP', status: 'SUCCEEDED', instanceName: 'home', appName: 'gitea', message: null, error: null,
      progress: { phase: 'succeeded', bytesDone: 1, bytesTotal: 1, bytesPerSecond: null, etaSeconds: null, currentItem: null },
      createdAt: `2026-11-26T10:${String(minute).padStart(2, '0')}:00.000Z`, startedAt: null, finishedAt: `2026-11-26T10:${String(minute).padStart(2, '0')}:30.000Z`, backupId: null,
      recovery: null, ...extra,
    });
    // An earlier run left four finished backups of gitea, one of immich, and three of ghost after
    // the oldest record of all: a restore of ghost whose undo is still to do.
    const files: Array<ReturnType<typeof record>> = [
      record('op-undo-0000', 0, { appName: 'ghost', kind: 'RESTORE_APP', status: 'FAILED', recovery: { replicas: { 'Deployment/ghost': 1 } } }),
      record('op-old-0001', 1), record('op-old-0002', 2), record('op-old-0003', 3), record('op-old-0004', 4),
      record('op-imm-0005', 5, { appName: 'immich' }),
      record('op-gho-0006', 6, { appName: 'ghost' }), record('op-gho-0007', 7, { appName: 'ghost' }), record('op-gho-0008', 8, { appName: 'ghost' }),
    ];
    for (const f of files) {
      await writeFile(path.join(dir, `${f.id}.json`), JSON.stringify(f));
      await mkdir(path.join(dir, f.id));
      await writeFile(path.join(dir, f.id, 'output.log'), 'a line\n');
    }
    const engine = newEngine({ finishedKeptPerApp: 2, recoveryRetryMs: 600_000 });
    engine.onRecovery('RESTORE_APP', async () => { throw new Error('cluster unreachable'); });
    await engine.init(['home']);
    const ids = (app: string) => engine.list({ instance: 'home', app }).map((r) => r.id);
    const onDisk = async () => (await readdir(dir)).sort();
    // At start-up: the two newest of gitea and of ghost, ghost's undo still to do, immich's one.
    expect(ids('gitea')).toEqual(['op-old-0004', 'op-old-0003']);
    expect(ids('ghost')).toEqual(['op-gho-0008', 'op-gho-0007', 'op-undo-0000']);
    expect(ids('immich')).toEqual(['op-imm-0005']);
    const kept = ['op-gho-0007', 'op-gho-0008', 'op-imm-0005', 'op-undo-0000'].flatMap((id) => [id, `${id}.json`]);
    expect(await onDisk()).toEqual([...kept, 'op-old-0003', 'op-old-0003.json', 'op-old-0004', 'op-old-0004.json'].sort());
    expect(engine.get('op-old-0001')).toBeUndefined();
    // Each operation that finishes makes room for itself in its app's history only.
    const first = await engine.waitFor((await engine.submit(tickTask({ app: 'gitea', steps: 1 }))).id);
    const second = await engine.waitFor((await engine.submit(tickTask({ app: 'gitea', steps: 1 }))).id);
    expect(ids('gitea')).toEqual([second.id, first.id]);
    expect(ids('ghost')).toEqual(['op-gho-0008', 'op-gho-0007', 'op-undo-0000']);
    // The files go right after the operation's end was published.
    await expect.poll(onDisk, { timeout: 5_000 }).toEqual([...kept, first.id, `${first.id}.json`, second.id, `${second.id}.json`].sort());
    expect(await engine.logTail(second.id)).toEqual(expect.arrayContaining([expect.stringContaining('SUCCEEDED')]));
    await expect(engine.logTail('op-old-0004')).rejects.toThrow(NotFoundError);
  });

  it('writes of one record land in the order they were asked: the last state asked is the one on disk', async () => {
    const store = new OperationStore(paths);
    const rec = { version: 1, id: 'op-order-ee55', kind: 'RESTORE_APP', status: 'RUNNING', instanceName: 'home', appName: 'gitea', message: null, error: null,
      progress: { phase: 'swapping in', bytesDone: 0, bytesTotal: null, bytesPerSecond: null, etaSeconds: null, currentItem: null },
      createdAt: '2026-11-26T10:00:00.000Z', startedAt: null, finishedAt: null, backupId: null, recovery: { n: 0 } } as OperationRecord;
    // Progress writes and recovery writes asked while others are in flight (as the engine does):
    // with writes racing, most rounds ended with an older state on disk (216 of 300 here).
    const stale: number[] = [];
    for (let i = 1; i <= 100; i++) {
      const saves: Array<Promise<void>> = [];
      for (let k = 0; k < 4; k++) { rec.recovery = { n: i * 10 + k }; saves.push(store.save(rec)); }
      await Promise.all(saves);
      if ((await readRecord(rec)).recovery?.n !== i * 10 + 3) stale.push(i);
    }
    expect(stale).toEqual([]);
  });

  it('a stop right after an operation ends returns once its last log line and its history pruning are on disk', async () => {
    // The owner of the data directory may move or remove it once stop() returns (a test's clean-up
    // did): a log line landing after that recreated the directory.
    for (let round = 0; round < 5; round++) {
      const engine = newEngine({ finishedKeptPerApp: 1 });
      const first = await engine.waitFor((await engine.submit(tickTask({ app: 'gitea', steps: 1 }))).id);
      const rec = await engine.waitFor((await engine.submit(tickTask({ app: 'gitea', steps: 1 }))).id);
      await engine.stop();
      const log = await readFile(path.join(paths.operationsDir('home'), rec.id, 'output.log'), 'utf8');
      expect(log, `round ${round}`).toMatch(/SUCCEEDED: ticked 1 times\n$/);
      expect((await readdir(paths.operationsDir('home'))).filter((n) => n.startsWith(first.id)), `round ${round}: the older one pruned`).toEqual([]);
    }
  });

  it('a stop during a run leaves the record FAILED/INTERRUPTED', async () => {
    const engine = newEngine();
    const rec = await engine.submit(tickTask({ steps: 1000, stepMs: 20 }));
    await new Promise((r) => setTimeout(r, 60));
    await engine.stop();
    expect((await readRecord(rec)).error?.code).toBe('INTERRUPTED');
  });

  it('a stop or a cancel while the starting record is written: the task never runs', async () => {
    // The task's own checks of its signal would not do here: it does not look at it.
    let ran = 0;
    const blind = (): OperationTask => ({ kind: 'CHECK_REPOSITORY', instance: 'home', run: async () => { ran++; } });
    const engine = newEngine();
    const cancelled = await engine.submit(blind());
    await engine.cancel(cancelled.id);
    expect((await engine.waitFor(cancelled.id)).status).toBe('CANCELLED');
    const stopped = await engine.submit(blind());
    await engine.stop();
    expect((await readRecord(stopped)).error?.code).toBe('INTERRUPTED');
    expect(ran).toBe(0);
  });
});

describe('PubSub', () => {
  it('closes a subscriber that falls further behind than its buffer', async () => {
    const ps = new PubSub<{ t: number }>();
    const sub = ps.subscribe('t', { bufferSize: 10 });
    for (let i = 0; i < 11; i++) ps.publish('t', i);
    await expect(sub.next()).rejects.toThrow(/fell more than 10 events behind/);
    expect(ps.subscriberCount('t')).toBe(0);
  });

  it('delivers in order to a subscriber that keeps up', async () => {
    const ps = new PubSub<{ t: number }>();
    const sub = ps.subscribe('t', { bufferSize: 10 });
    const got: number[] = [];
    for (let i = 0; i < 100; i++) {
      ps.publish('t', i);
      got.push((await sub.next()).value as number);
    }
    expect(got).toEqual([...Array(100).keys()]);
    await sub.return?.();
    expect(ps.subscriberCount()).toBe(0);
  });
});
