// One contract for every storage backend with a server here: init, back up a stream, list,
// stats, dump it back byte-identical, wrong password, unreachable; and no secret anywhere.
// Each backend's test file calls describeBackendContract, so vitest runs backends in parallel.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ResticAlreadyInitializedError,
  ResticRepository,
  ResticUnreachableError,
  ResticWrongPasswordError,
  type BackupSummary,
  type ResticSpawnInfo,
} from '../../src/engine/restic/index.js';
import type { RepositorySettings } from '../../src/plugins/storage/settings.js';
import { registerSecret } from '../helpers/leaks.js';
import { SecretScan, allCmdlines, descendantsOf, randomStream, sha256Of } from './helpers.js';

export type SettingsWithoutPassword = Omit<RepositorySettings, 'password'>;

export interface BackendUnderTest {
  /** Settings for a repository at a fresh location called `name`. */
  settings(name: string): SettingsWithoutPassword;
  /** Settings whose server is down (or never answers); omitted where that means nothing (local). */
  unreachable?(): SettingsWithoutPassword;
  /** Every secret the backend's settings hold. */
  secrets: string[];
  /** A program expected among restic's descendants while it runs (ssh, sshpass, rclone). */
  expectChild?: RegExp;
  teardown(): Promise<void>;
}

const SIZE = 3 * 1024 * 1024 + 12_345;
const SECOND_SIZE = 200_000;

export function describeBackendContract(name: string, setup: () => Promise<BackendUnderTest>): void {
  describe(`storage contract: ${name}`, () => {
    const scan = new SecretScan();
    const spawned: ResticSpawnInfo[] = [];
    const password = `repo-pw-${randomBytes(9).toString('base64url')}`;
    const wrongPassword = `wrong-pw-${randomBytes(9).toString('base64url')}`;
    const location = `repo-${randomBytes(4).toString('hex')}`;
    const tag = `backup:${randomBytes(4).toString('hex')}`;
    let backend: BackendUnderTest;
    let dataDir: string;
    let first: BackupSummary & { digest: string };

    // Status checks keep their production bound (20 s): under CI load a wrong password's check
    // (restic trying the key) once took over 6 s and was reported as unreachable. The unreachable
    // server's test passes its own short bound.
    const open = (settings: SettingsWithoutPassword, pw = password) =>
      new ResticRepository({ settings: { ...settings, password: pw }, dataDir, killGraceMs: 2_000, onSpawn: (i) => spawned.push(i) });
    const repo = () => open(backend.settings(location));
    const secrets = () => [...backend.secrets, password, wrongPassword];

    beforeAll(async () => {
      scan.captureLogs();
      dataDir = await mkdtemp(join(tmpdir(), 'wb-contract-'));
      backend = await setup();
      registerSecret(...secrets());
    });

    afterAll(async () => {
      await backend?.teardown();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it('reports a fresh location as reachable and not initialised', async () => {
      const status = await repo().status();
      scan.record(status);
      expect(status).toMatchObject({ reachable: true, initialized: false, errorCode: 'RESTIC_NOT_INITIALIZED' });
    });

    it('initialises the repository, once', async () => {
      const r = repo();
      const { repositoryId } = await r.init();
      expect(repositoryId).toMatch(/^[0-9a-f]+$/);
      expect(await r.status()).toEqual({ reachable: true, initialized: true });
      expect(await r.isInitialized()).toBe(true);
      const again = await r.init().catch((e: unknown) => e);
      scan.record(again);
      expect(again).toBeInstanceOf(ResticAlreadyInitializedError);
    });

    it('backs up a stream with backpressure, no secret on any argv while restic runs', async () => {
      let release!: () => void;
      const hold = new Promise<void>((resolve) => (release = resolve));
      const source = randomStream(SIZE, { holdAfter: 1024 * 1024, hold });
      const before = spawned.length;
      const backup = repo().backupStdin({
        stdin: source.stream,
        filename: 'app/data.bin',
        host: 'wild-test',
        tags: ['wild-backup', tag, 'artifact:pvc:data'],
      });
      // While restic (and its ssh or rclone) is mid-stream, read every process's argv.
      let settled = false;
      backup.catch(() => {}).finally(() => (settled = true));
      while (!settled && source.sent() < 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      const procs = await allCmdlines();
      release();
      const summary = await backup;
      const resticPid = spawned.slice(before).find((s) => s.command === 'backup')?.pid;
      expect(resticPid).toBeDefined();
      const tree = descendantsOf(resticPid!, procs);
      expect(tree[0]?.argv.some((a) => a.endsWith('restic'))).toBe(true);
      if (backend.expectChild) expect(tree.some((p) => p.argv.some((a) => backend.expectChild!.test(a)))).toBe(true);
      const leaks = procs.filter((p) => secrets().some((s) => p.argv.join(' ').includes(s)));
      expect(leaks).toEqual([]);

      expect(summary.snapshotId).toMatch(/^[0-9a-f]{64}$/);
      expect(summary.totalBytesProcessed).toBe(SIZE);
      expect(summary.dataAdded).toBeGreaterThan(0);
      first = { ...summary, digest: source.digest() };
    });

    it('lists the snapshot by tag, from the cache until our own next write', async () => {
      const r = repo();
      const listings = () => spawned.filter((s) => s.command === 'snapshots').length;
      const [snap, ...others] = await r.snapshots({ tags: [tag] });
      expect(others).toEqual([]);
      expect(snap).toMatchObject({ id: first.snapshotId, hostname: 'wild-test', paths: ['/app/data.bin'] });
      expect(snap!.tags).toEqual(expect.arrayContaining(['wild-backup', tag, 'artifact:pvc:data']));

      const count = listings();
      expect(await repo().snapshots({ tags: [tag] })).toHaveLength(1);
      expect(listings()).toBe(count);

      const second = randomStream(SECOND_SIZE);
      await r.backupStdin({ stdin: second.stream, filename: 'app/small.bin', host: 'wild-test', tags: [tag] });
      expect(await r.snapshots({ tags: [tag] })).toHaveLength(2);
      expect(listings()).toBeGreaterThan(count);
    });

    it('reports raw-data and restore-size statistics', async () => {
      const r = repo();
      const restore = await r.stats('restore-size');
      expect(restore).toMatchObject({ snapshotsCount: 2, totalSize: SIZE + SECOND_SIZE });
      const raw = await r.stats('raw-data');
      expect(raw.totalSize).toBeGreaterThan(SIZE);
    });

    it('dumps the stream back byte-identical', async () => {
      const back = await sha256Of(repo().dump(first.snapshotId, '/app/data.bin'));
      expect(back).toEqual({ hex: first.digest, bytes: SIZE });
    });

    it('fails fast and typed on a wrong password, without the password in the message', async () => {
      const r = open(backend.settings(location), wrongPassword);
      const started = Date.now();
      const err = await r.snapshots({ refresh: true }).catch((e: unknown) => e);
      scan.record(err);
      expect(err).toBeInstanceOf(ResticWrongPasswordError);
      expect(Date.now() - started).toBeLessThan(15_000);
      const status = await r.status();
      scan.record(status);
      expect(status).toMatchObject({ reachable: true, initialized: true, errorCode: 'RESTIC_WRONG_PASSWORD' });
    });

    it('reports an unreachable server, typed and within a bounded time', async (ctx) => {
      if (!backend.unreachable) return ctx.skip();
      const r = open(backend.unreachable());
      const started = Date.now();
      const status = await r.status({ timeoutMs: 3_000 });
      scan.record(status);
      expect(status).toMatchObject({ reachable: false, initialized: false, errorCode: 'RESTIC_UNREACHABLE' });
      const err = await r.snapshots({ refresh: true, timeoutMs: 3_000 }).catch((e: unknown) => e);
      scan.record(err);
      expect(err).toBeInstanceOf(ResticUnreachableError);
      expect(Date.now() - started).toBeLessThan(20_000);
    });

    it('kept every secret out of log lines, errors, responses and argv', () => {
      scan.record(...spawned.map((s) => s.argv.join(' ')));
      expect(scan.texts.length).toBeGreaterThan(5);
      expect(scan.findings(secrets())).toEqual([]);
    });
  });
}
