// The backup pipeline against real restic, with local command sources: a complete backup is one
// snapshot per artifact plus the manifest; a failing or cancelled one leaves no snapshot at all.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationRecord } from '../../src/engine/operations/index.js';
import { BackupCatalog, readAll } from '../../src/engine/backup/catalog.js';
import { runBackup } from '../../src/engine/backup/pipeline.js';
import type { ArtifactSource } from '../../src/engine/backup/source.js';
import type { ResticRepository, Snapshot } from '../../src/engine/restic/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { pauseResticOnce, resticChildren } from '../helpers/faults.js';
import { commandSource } from '../helpers/sources.js';

let t: TestApp;
let repo: ResticRepository;
let catalog: BackupCatalog;

beforeAll(async () => {
  t = await startTestApp();
  const inst = await t.app.services.store.requireInstance('home');
  const init = await t.app.services.repositories.init('home');
  expect((await t.app.services.engine.waitFor(init.id)).status).toBe('SUCCEEDED');
  repo = await t.app.services.repositories.open(inst);
  catalog = new BackupCatalog(`${t.data.dir}/manifests`);
});
afterAll(async () => { await catalog.close(); await t.close(); });

type BackupOpts = { cancelAfterMs?: number; repo?: ResticRepository; catalog?: BackupCatalog; concurrency?: number; stallTimeoutMs?: number; startTimeoutMs?: number };

async function backup(app: string, sources: ArtifactSource[], opts: BackupOpts = {}): Promise<OperationRecord> {
  const rec = await t.app.services.engine.submit({
    kind: 'BACKUP_APP', instance: 'home', app,
    run: async (ctx) => {
      const { stallTimeoutMs, startTimeoutMs, concurrency } = opts;
      const r = await runBackup({ repo: opts.repo ?? repo, catalog: opts.catalog ?? catalog, instance: 'home', app, sources, skipped: [], ctx, concurrency, stallTimeoutMs, startTimeoutMs });
      return { backupId: r.backupId };
    },
  });
  if (opts.cancelAfterMs) setTimeout(() => void t.app.services.engine.cancel(rec.id).catch(() => undefined), opts.cancelAfterMs);
  return t.app.services.engine.waitFor(rec.id);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The backup FAILED, STALLED with `message`, and left no snapshot. */
async function expectStalled(done: OperationRecord, message: string): Promise<void> {
  expect(done.status).toBe('FAILED');
  expect(done.error?.code).toBe('STALLED');
  expect(done.error?.message).toBe(message);
  expect(await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true })).toEqual([]);
}

/** Whether `cond` holds at one of `tries` checks, `ms` apart. */
async function eventually(cond: () => Promise<boolean>, tries: number, ms: number): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, ms));
  }
  return false;
}

describe('runBackup', () => {
  it('writes one snapshot per artifact and the manifest; restic dump gives back the same bytes', async () => {
    const done = await backup('gitea', [
      commandSource('postgres', 'gitea', ['sh', '-c', `head -c 3000000 /dev/urandom > ${t.data.dir}/pipeline-a && cat ${t.data.dir}/pipeline-a`], 3_000_000),
      commandSource('pvc', 'gitea-data', ['sh', '-c', 'seq 1 200000']),
    ]);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    const backups = await catalog.list(repo, 'home');
    const b = backups.find((x) => x.backupId === done.backupId)!;
    expect(b.status).toBe('COMPLETE');
    expect(b.artifacts.map((a) => `${a.kind}:${a.name}`)).toEqual(['postgres:gitea', 'pvc:gitea-data', 'manifest:backup.json']);
    expect(b.sizeBytes).toBe(3_000_000 + (await readAll((await import('node:child_process')).spawn('seq', ['1', '200000']).stdout, 1e8)).length);
    const pgSnap = b.artifacts[0]!.snapshot;
    expect(pgSnap.tags).toEqual(expect.arrayContaining(['wild-backup', 'instance:home', 'app:gitea', `backup:${done.backupId}`, 'artifact:postgres:gitea']));
    expect(pgSnap.paths).toEqual(['/gitea/postgres-gitea.bin']);
    const restored = await readAll(repo.dump(pgSnap.id, '/gitea/postgres-gitea.bin'), 1e8);
    const { readFile } = await import('node:fs/promises');
    expect(sha(restored)).toBe(sha(await readFile(`${t.data.dir}/pipeline-a`)));
    expect(done.progress.bytesDone).toBe(b.sizeBytes);
  });

  it('streams artifacts side by side: each source waits for the other to have started', async () => {
    const dir = (await import('node:fs/promises')).mkdtemp('/tmp/wild-pipeline-side-');
    const d = await dir;
    // Each writes its marker, then waits (at most 15 s) for the other's: one after the other, both fail.
    const waiter = (me: string, other: string) => ['sh', '-c',
      `touch ${d}/${me}; i=0; while [ ! -e ${d}/${other} ]; do i=$((i+1)); [ $i -gt 150 ] && { echo "never saw ${other}" >&2; exit 1; }; sleep 0.1; done; seq 1 100000`];
    const done = await backup('website', [
      commandSource('pvc', 'website-a', waiter('a', 'b'), 600_000),
      commandSource('pvc', 'website-b', waiter('b', 'a'), 500_000),
    ]);
    await (await import('node:fs/promises')).rm(d, { recursive: true, force: true });
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    const b = (await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)!;
    // The manifest keeps the plan's order, whatever order the streams finished in.
    expect(b.artifacts.map((a) => `${a.kind}:${a.name}`)).toEqual(['pvc:website-a', 'pvc:website-b', 'manifest:backup.json']);
    expect(b.status).toBe('COMPLETE');
  }, 60_000);

  it("writes an artifact's snapshot as soon as its stream ended, while its slower facts (row counts after a dump) are still being gathered", async () => {
    let snapshotBeforeFacts: boolean | undefined;
    const inner = commandSource('postgres', 'slowfacts', ['seq', '1', '100000'], 588_895);
    const source: ArtifactSource = {
      ...inner,
      async open(signal) {
        const opened = await inner.open(signal);
        const ended = opened.finished.then(() => undefined);
        // The facts are ready only once the artifact's snapshot is in the repository (15 s at most):
        // had restic's stdin waited for them, there would be no snapshot to see.
        const finished = ended.then(async () => {
          snapshotBeforeFacts = await eventually(async () => (await repo.snapshots({ tags: ['artifact:postgres:slowfacts'], refresh: true })).length > 0, 50, 300);
          return { rows: 100000 };
        });
        return { stream: opened.stream, ended, finished };
      },
    };
    const done = await backup('ghost', [source]);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(snapshotBeforeFacts).toBe(true);
    const b = (await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)!;
    expect(b.status).toBe('COMPLETE');
    expect(b.artifacts.map((a) => `${a.kind}:${a.name}`)).toEqual(['postgres:slowfacts', 'manifest:backup.json']);
  }, 60_000);

  it("starts the manifest's restic while the last artifact streams, so its start-up is not added at the end", async () => {
    let manifestResticWhileStreaming: boolean | undefined;
    const inner = commandSource('pvc', 'late', ['seq', '1', '100000'], 588_895);
    const source: ArtifactSource = {
      ...inner,
      async open(signal) {
        // The stream begins only once a restic for the manifest runs (15 s at most).
        manifestResticWhileStreaming = await eventually(async () => (await resticChildren()).some((p) => p.argv.includes('artifact:manifest')), 150, 100);
        return inner.open(signal);
      },
    };
    const done = await backup('website', [source]);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(manifestResticWhileStreaming).toBe(true);
    expect((await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)?.status).toBe('COMPLETE');
  }, 60_000);

  it('starts streaming while a slow estimate is out: the source still measuring goes first, its restic starting beside its opening', async () => {
    const events: string[] = [];
    let resticBeforeSource: boolean | undefined;
    const photosInner = commandSource('pvc', 'photos', ['seq', '1', '50000']);
    const photos: ArtifactSource = {
      ...photosInner,
      // A `du` of a big volume: slow.
      estimate: async () => { await new Promise((r) => setTimeout(r, 1500)); events.push('photos estimated'); return 288_895; },
      async open(signal) {
        events.push('photos opening');
        // The source opens only once its restic runs (15 s at most): restic did not wait for it.
        resticBeforeSource = await eventually(async () => (await resticChildren()).some((p) => p.argv.includes('artifact:pvc:photos')), 150, 100);
        return photosInner.open(signal);
      },
    };
    const notesInner = commandSource('config', 'photos', ['echo', 'notes'], 6);
    const notes: ArtifactSource = { ...notesInner, async open(signal) { events.push('config opening'); return notesInner.open(signal); } };
    // One slot: the order is visible. The config is known to be small; the volume is still being measured.
    const done = await backup('immich', [notes, photos], { concurrency: 1 });
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(events[0]).toBe('photos opening');
    expect(events.indexOf('config opening')).toBeGreaterThan(0);
    expect(resticBeforeSource).toBe(true);
    expect((await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)?.status).toBe('COMPLETE');
  }, 60_000);

  it("is SUCCEEDED without waiting on the end's listing: its snapshots join the cached listing at once, full ids and all, and the listing confirms them", async () => {
    await repo.snapshots(); // a cached listing from before the backup (and no earlier listing still running)
    const held = pauseResticOnce(['snapshots'], 'rchar', 0);
    const done = await backup('website', [commandSource('pvc', 'listed-at-once', ['seq', '1', '1000'])]);
    const listing = await held; // the end's listing, its restic stopped as it started
    let meanwhile: Snapshot[];
    try {
      expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
      // The next query sees the backup at once, from the cache: no restic answers while the listing is stopped.
      meanwhile = await Promise.race([
        repo.snapshots({ tags: [`backup:${done.backupId}`] }),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('a query waited for the end\'s listing')), 5_000)),
      ]);
      expect(meanwhile.map((s) => s.tags.find((tag) => tag.startsWith('artifact:'))).sort()).toEqual(['artifact:manifest', 'artifact:pvc:listed-at-once']);
      const b = (await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)!;
      expect(b.status).toBe('COMPLETE');
      expect(b.artifacts.map((a) => a.snapshot.id.length)).toEqual([64, 64]);
      expect(b.manifest?.artifacts.map((a) => a.snapshotId)).toEqual([meanwhile.find((s) => s.tags.includes('artifact:pvc:listed-at-once'))!.id]);
    } finally {
      listing.resume();
    }
    // What restic lists is what the cache had, but for the time, restic's own, taken as it started.
    const confirmed = await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true });
    const view = (s: Snapshot) => ({ id: s.id, shortId: s.shortId, hostname: s.hostname, tags: [...s.tags].sort(), paths: s.paths });
    expect(meanwhile.map(view).sort((a, b) => a.id.localeCompare(b.id))).toEqual(confirmed.map(view).sort((a, b) => a.id.localeCompare(b.id)));
    for (const real of confirmed) {
      const early = meanwhile.find((s) => s.id === real.id)!;
      const lag = Date.parse(real.time) - Date.parse(early.time);
      expect(lag, `${early.time} against restic's ${real.time}`).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(5_000);
    }
  }, 60_000);

  it("with no listing cached, is SUCCEEDED without waiting on the end's listing: the next query lists and sees the backup", async () => {
    await repo.snapshots(); // no earlier listing still running
    repo.invalidate(); // nothing cached to add the backup to
    const held = pauseResticOnce(['snapshots'], 'rchar', 0);
    const done = await backup('website', [commandSource('pvc', 'listed-by-query', ['seq', '1', '1000'])]);
    const listing = await held;
    // Asked while the end's listing is stopped: nothing cached, so it lists, and it sees the backup.
    const query = repo.snapshots({ tags: [`backup:${done.backupId}`] });
    try {
      expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    } finally {
      listing.resume();
    }
    const snaps = await query;
    expect(snaps.map((s) => s.tags.find((tag) => tag.startsWith('artifact:'))).sort()).toEqual(['artifact:manifest', 'artifact:pvc:listed-by-query']);
    expect((await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)?.status).toBe('COMPLETE');
  }, 60_000);

  it("awaits the end's listing when a snapshot's full id is not in restic's cache: a query after the backup sees it, and queries meanwhile answer from the cache", async () => {
    await repo.snapshots(); // a cached listing from before the backup (and no earlier listing still running)
    const uncached = Object.create(repo) as ResticRepository;
    uncached.cachedSnapshotId = async () => undefined;
    const held = pauseResticOnce(['snapshots'], 'rchar', 0);
    const running = backup('website', [commandSource('pvc', 'listed-after', ['seq', '1', '1000'])], { repo: uncached });
    const listing = await held; // the end's listing, its restic stopped as it started
    let finished = false;
    void running.then(() => (finished = true), () => undefined);
    try {
      const meanwhile = await Promise.race([
        repo.snapshots({ tags: ['artifact:pvc:listed-after'] }),
        new Promise<'waited'>((r) => setTimeout(() => r('waited'), 5_000)),
      ]);
      expect(meanwhile, 'a query waited for the end\'s listing').toEqual([]);
      await new Promise((r) => setTimeout(r, 1000));
      expect(finished, 'the backup ended before its listing').toBe(false);
    } finally {
      listing.resume();
    }
    const done = await running;
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    // Once it has ended, the next query sees it, from the cache (the listing it waited for).
    const snaps = await repo.snapshots({ tags: [`backup:${done.backupId}`] });
    expect(snaps.map((s) => s.tags.find((tag) => tag.startsWith('artifact:'))).sort()).toEqual(['artifact:manifest', 'artifact:pvc:listed-after']);
    const b = (await catalog.list(repo, 'home')).find((x) => x.backupId === done.backupId)!;
    expect(b.status).toBe('COMPLETE');
    expect(b.manifest?.artifacts.map((a) => a.snapshotId)).toEqual([snaps.find((s) => s.tags.includes('artifact:pvc:listed-after'))!.id]);
    expect(b.artifacts.map((a) => a.snapshot.id.length)).toEqual([64, 64]);
  }, 60_000);

  it("close() stops the listing still under way after a backup and waits for it: nothing is written after it returned", async () => {
    await repo.snapshots(); // no earlier listing still running
    const dir = `${t.data.dir}/manifests-closing`;
    const own = new BackupCatalog(dir);
    const held = pauseResticOnce(['snapshots'], 'rchar', 0);
    const running = backup('website', [commandSource('pvc', 'closing', ['seq', '1', '1000'])], { catalog: own });
    const listing = await held; // stopped: it can only end by being killed
    try {
      const closed = await Promise.race([own.close().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000))]);
      expect(closed, 'close() returned while the listing was held').toBe(true);
      expect((await resticChildren()).filter((p) => p.argv.includes('snapshots'))).toEqual([]);
      expect(existsSync(dir), 'a manifest written by the listing').toBe(false);
    } finally {
      listing.resume();
    }
    // The backup is written: a listing stopped by the server's stop fails nothing.
    const done = await running;
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  }, 60_000);

  it("bounds the end's listing by the start bound: a repository that stops answering cannot hold the backup for ever", async () => {
    const seen: Array<{ timeoutMs?: number; signal?: AbortSignal } | undefined> = [];
    const watched = Object.create(repo) as ResticRepository;
    watched.refresh = (o) => (seen.push(o), repo.refresh(o));
    const done = await backup('website', [commandSource('pvc', 'bounded-listing', ['seq', '1', '1000'])], { repo: watched, startTimeoutMs: 30_000 });
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(seen.length).toBeGreaterThan(0);
    for (const o of seen) expect(o?.timeoutMs).toBe(30_000);
  }, 60_000);

  it('one failing artifact stops the others at once and the backup leaves no snapshot', async () => {
    const started = Date.now();
    const done = await backup('nextcloud', [
      commandSource('pvc', 'nextcloud-data', ['sh', '-c', 'seq 1 10; sleep 60; seq 1 10'], 1_000_000),
      commandSource('config', 'nextcloud', ['sh', '-c', 'echo ok'], 10),
      commandSource('postgres', 'nextcloud', ['sh', '-c', 'sleep 1; echo "pg_dump: error: boom" >&2; exit 1'], 100),
    ]);
    expect(done.status).toBe('FAILED');
    expect(done.error?.message).toContain('postgres:nextcloud');
    expect(Date.now() - started, 'the 60 s stream was stopped').toBeLessThan(30_000);
    expect(await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true })).toEqual([]);
  }, 60_000);

  it('a source that cannot open before its restic has started fails the backup, not the process', async () => {
    // restic starts beside the source's opening; here the opening fails first (a pod gone, another
    // artifact's failure aborting it) while the repository is still preparing restic (its version
    // is slow to come): the input restic was to read is destroyed with the error before restic is
    // there to hear it.
    const slow = Object.create(repo) as ResticRepository;
    slow.version = async () => { await new Promise((r) => setTimeout(r, 300)); return repo.version(); };
    const cannotOpen: ArtifactSource = {
      artifact: { kind: 'postgres', name: 'ghost' }, extension: '.bin',
      estimate: async () => null,
      open: async () => { throw new Error('the database pod is gone'); },
    };
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => { uncaught.push(err); };
    process.on('uncaughtException', onUncaught);
    try {
      const done = await backup('ghost', [cannotOpen], { repo: slow });
      expect(done.status).toBe('FAILED');
      expect(done.error?.message).toMatch(/^postgres:ghost: .*the database pod is gone/);
      expect(await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true })).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  }, 60_000);

  it('fails naming the artifact and its stderr when a source exits non-zero, and leaves no snapshot', async () => {
    const done = await backup('immich', [
      commandSource('pvc', 'immich-pvc', ['sh', '-c', 'seq 1 1000']),
      commandSource('postgres', 'immich', ['sh', '-c', 'seq 1 50000; echo "pg_dump: error: connection lost" >&2; exit 1']),
    ]);
    expect(done.status).toBe('FAILED');
    expect(done.error?.message).toContain('postgres:immich');
    expect(done.error?.message).toContain('connection lost');
    const left = await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true });
    expect(left).toEqual([]);
    expect((await catalog.list(repo, 'home')).some((b) => b.backupId === done.backupId)).toBe(false);
  });

  it('cancels mid-stream: CANCELLED, restic stopped, no snapshot left', async () => {
    const done = await backup('ghost', [
      commandSource('pvc', 'ghost-content', ['sh', '-c', 'seq 1 10; sleep 30; seq 1 10']),
    ], { cancelAfterMs: 1500 });
    expect(done.status).toBe('CANCELLED');
    const left = await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true });
    expect(left).toEqual([]);
  });
});

describe('the watchdog: a start bound until an artifact is under way, a stall bound after', () => {
  /** Holds (SIGSTOP) the server's restic whose argv has `file` from its start, for `ms`. */
  const holdResticFor = (file: string, ms: number) => pauseResticOnce(['backup', file], 'rchar', 0)
    .then(async (r) => { await new Promise((res) => setTimeout(res, ms)); r.resume(); });

  it("does not count restic's start-up as a stall: a restic held for twice the stall bound before it opened the repository still backs up", async () => {
    const started = Date.now();
    const held = holdResticFor('outline/pvc-outline-data.bin', 6_000);
    const done = await backup('outline', [commandSource('pvc', 'outline-data', ['sh', '-c', 'seq 1 100000'])], { stallTimeoutMs: 3_000 });
    await held;
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(Date.now() - started, 'restic was held longer than the stall bound').toBeGreaterThan(6_000);
  }, 60_000);

  it('fails a restic that never opens the repository after the start bound, saying so, and leaves no snapshot', async () => {
    // Held until the bound has passed; then it sees its interrupt and exits.
    const held = holdResticFor('outline/pvc-outline-data.bin', 5_000);
    const done = await backup('outline', [commandSource('pvc', 'outline-data', ['sh', '-c', 'seq 1 100000'])], { stallTimeoutMs: 1_000, startTimeoutMs: 3_000 });
    await held;
    await expectStalled(done, 'pvc:outline-data: did not start within 3 s: restic did not open the repository');
  }, 60_000);

  it('fails a source that sends nothing after the start bound, saying so, and leaves no snapshot', async () => {
    const started = Date.now();
    const done = await backup('outline', [commandSource('pvc', 'outline-data', ['sh', '-c', 'sleep 60'])], { stallTimeoutMs: 1_000, startTimeoutMs: 4_000 });
    expect(Date.now() - started).toBeLessThan(30_000);
    await expectStalled(done, 'pvc:outline-data: did not start within 4 s: the source sent nothing');
  }, 60_000);

  it('fails a backup whose manifest the repository does not take within the start bound, and leaves no snapshot', async () => {
    // The manifest's restic held from its start until well past the bound (a repository that
    // accepts connections and never answers holds it the same way: restic has no timeout there).
    const held = holdResticFor('outline/backup.json', 14_000);
    const done = await backup('outline', [commandSource('pvc', 'outline-data', ['sh', '-c', 'seq 1 100000'])], { startTimeoutMs: 10_000 });
    await held;
    await expectStalled(done, 'manifest: the repository did not answer within 10 s');
  }, 60_000);

  it('fails an artifact under way that stops moving after the stall bound', async () => {
    const done = await backup('outline', [commandSource('pvc', 'outline-data', ['sh', '-c', 'seq 1 1000; sleep 60'])], { stallTimeoutMs: 3_000 });
    await expectStalled(done, 'pvc:outline-data: no progress for 3 s: the repository or the source stopped answering');
  }, 60_000);
});
