// The restic client when things go wrong: a repository that accepts connections and never answers
// (real restic against a REST endpoint that holds every request), a summary it cannot read and an
// input it refuses (fake restic executables: shell scripts answering `version` like restic 0.14,
// for output no real restic gives). None may hang a caller past its own bound or throw outside a
// caller's promise.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ResticError, ResticRepository, ResticUnreachableError, type ResticSpawnInfo } from '../../src/engine/restic/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const VERSION = 'for a in "$@"; do [ "$a" = version ] && { echo "restic 0.14.0 compiled with go1.19.8 on linux/amd64"; exit 0; }; done';

/** What `p` did within `ms`: its value or error, or 'pending'. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; pending?: true; afterMs: number }> {
  const t0 = Date.now();
  const timer = sleep(ms).then(() => ({ pending: true as const, afterMs: Date.now() - t0 }));
  return Promise.race([p.then((value) => ({ value, afterMs: Date.now() - t0 }), (error: unknown) => ({ error, afterMs: Date.now() - t0 })), timer]);
}

describe('restic client hardening (fake restic)', () => {
  let dir: string;
  const spawned: ResticSpawnInfo[] = [];

  /** A repository (a fresh location: nothing shared with other tests' cache) run by `script`. */
  async function repoWith(name: string, script: string): Promise<ResticRepository> {
    const binary = join(dir, `restic-${name}`);
    await writeFile(binary, `#!/bin/sh\n${VERSION}\n${script}\n`);
    await chmod(binary, 0o755);
    return new ResticRepository({
      settings: { repository: join(dir, `repo-${name}`), password: `pw-${randomBytes(8).toString('hex')}`, credentials: {} },
      dataDir: join(dir, 'data'),
      binary,
      killGraceMs: 200,
      onSpawn: (s) => spawned.push(s),
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wb-restic-hardening-'));
  });
  // Every fake restic is gone after each test, whatever its checks said (each runs in its own group).
  afterEach(() => {
    for (const { pid } of spawned.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("bounds a listing by the caller's own timeout even when it joins a listing started without one", async () => {
    // A repository that accepts and never answers (a stalled NFS mount, an HTTP backend).
    const held = new Set<Socket>();
    const silent = createServer((c) => { held.add(c); c.on('error', () => undefined); });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    onTestFinished(() => { for (const c of held) c.destroy(); silent.close(); });
    const repo = new ResticRepository({
      settings: { repository: `rest:http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, password: `pw-${randomBytes(8).toString('hex')}`, credentials: {} },
      dataDir: join(dir, 'data'),
      killGraceMs: 200,
      onSpawn: (sp) => spawned.push(sp),
    });
    const unbounded = repo.refresh(); // the pipeline's end-of-backup listing, as it was: no timeout
    unbounded.catch(() => undefined);
    await sleep(100);
    // removeBackupSnapshots' bounded listing, of the same cache generation: it joins the one above.
    const bounded = await within(repo.snapshots({ tags: ['backup:x'], refresh: true, timeoutMs: 500 }), 3_000);
    expect(bounded.pending, 'still waiting after 3 s').toBeUndefined();
    expect(bounded.error).toBeInstanceOf(ResticUnreachableError);
    expect((bounded.error as Error).message).toMatch(/^no answer from the repository at .* within 1 s$/);
    expect(bounded.afterMs).toBeLessThan(2_000);
    // The same for the statistics, which share their restic runs the same way.
    const stats = repo.repositoryStats();
    stats.catch(() => undefined);
    await sleep(100);
    const boundedStats = await within(repo.repositoryStats({ refresh: true, timeoutMs: 500 }), 3_000);
    expect(boundedStats.pending, 'still waiting after 3 s').toBeUndefined();
    expect(boundedStats.error).toBeInstanceOf(ResticUnreachableError);
    expect(boundedStats.afterMs).toBeLessThan(2_000);
  }, 20_000);

  it('fails a backup whose summary it cannot read with a typed error, not an uncaught exception', async () => {
    const repo = await repoWith(
      'summary',
      `cat > /dev/null\necho '{"message_type":"summary","snapshot_id":"0123456789abcdef","data_added":"12","total_bytes_processed":4}'\nexit 0`,
    );
    const done = await within(repo.backupStdin({ stdin: Readable.from([Buffer.from('data')]), filename: 'app/x.sql', host: 'h', tags: ['t'], resolveId: false }), 10_000);
    expect(done.pending, 'still waiting after 10 s').toBeUndefined();
    expect(done.error).toBeInstanceOf(ResticError);
    expect((done.error as Error).message).toMatch(/^restic backup finished without a snapshot: .*unreadable summary.*data_added/);
  }, 20_000);

  it('listens to an input it refused (a bad filename): its later error is no uncaught exception', async () => {
    const repo = await repoWith('refuse', 'exec sleep 600');
    const input = new PassThrough();
    await expect(repo.backupStdin({ stdin: input, filename: '../escape', host: 'h' })).rejects.toThrow(/filename/);
    expect(input.listenerCount('error')).toBeGreaterThan(0);
    // A source that then fails destroys the input with its error (pipeline.ts does).
    input.destroy(new Error('the source failed'));
    await sleep(50);
    expect(spawned).toEqual([]);
  });
});
