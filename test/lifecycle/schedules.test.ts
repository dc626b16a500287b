// Schedules through GraphQL, on a fake clock: validated and written to config.yaml, with next run
// times; a due schedule starts ordinary operations; a run that finds the previous one running is
// skipped and says so; a backup of an app busy with other work waits for it; a server that was
// down across scheduled times runs the missed one once.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from '../helpers/app.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

/** A clock and timers the test moves by hand. */
class FakeTime {
  now = new Date('2026-11-26T10:30:00Z');
  private timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  readonly timing = {
    now: () => new Date(this.now),
    setTimer: (fn: () => void, ms: number) => { const t = { at: this.now.getTime() + ms, fn, live: true }; this.timers.push(t); return t; },
    clearTimer: (h: unknown) => { (h as { live: boolean }).live = false; },
  };
  /** Moves the clock and fires every timer that is due by then. */
  advanceTo(iso: string): void {
    this.now = new Date(iso);
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= this.now.getTime()).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      due.live = false;
      due.fn();
    }
  }
}

const time = new FakeTime();
let s: SimApp;
const SET = `mutation($input: SetSchedulesInput!) { setSchedules(input: $input) { __typename ... on SetSchedulesPayload { schedules { name cron timezone action apps nextRunAt lastRunAt lastSkipReason } } ... on ValidationError { issues { path message } } ... on Error { message } } }`;
const SCHEDULES = `{ instance(name: "test") { schedules { name nextRunAt lastRunAt lastSkippedAt lastSkipReason } } }`;
const scheduledBackups = () => s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'BACKUP_APP');
/** Waits (up to 15 s: the timer's work is asynchronous, and a loaded machine is slow) until `ready()`. */
async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 150 && !ready(); i++) await new Promise((r) => setTimeout(r, 100));
}

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] }, { scheduleTiming: time.timing });
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
}, 180_000);
afterAll(async () => { await s?.close(); });

describe('schedules', () => {
  it('refuses invalid schedules with their paths and writes nothing', async () => {
    const config = await readFile(path.join(s.sim.instanceDir, 'config.yaml'), 'utf8');
    const res = await s.gql<{ setSchedules: { __typename: string; issues: Array<{ path: string }> } }>(SET, { input: { instance: 'test', schedules: [
      { cron: '61 * * * *', action: 'BACKUP' },
      { cron: '@daily', action: 'BACKUP', apps: ['../etc'] },
      { cron: '@daily', action: 'CHECK', readDataPercent: 250 },
      { cron: '@daily', action: 'CHECK', timezone: 'Europe/Atlantis' },
    ] } });
    expect(res.data!.setSchedules.__typename).toBe('ValidationError');
    const paths = res.data!.setSchedules.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['input.schedules.0.cron', expect.stringMatching(/^input\.schedules\.1\.apps/), expect.stringMatching(/^input\.schedules\.2\.readDataPercent/), 'input.schedules.3.timezone']));
    // A misspelt app: a schedule that would never back anything up.
    const typo = await s.gql<{ setSchedules: { __typename: string; issues: Array<{ path: string; message: string }> } }>(SET, { input: { instance: 'test', schedules: [
      { cron: '@daily', action: 'BACKUP', apps: ['website', 'webiste'] },
    ] } });
    expect(typo.data!.setSchedules.__typename).toBe('ValidationError');
    expect(typo.data!.setSchedules.issues).toEqual([{ path: 'input.schedules.0.apps.1', message: expect.stringMatching(/has no app named "webiste" \(its apps: .*website/) }]);
    expect(await readFile(path.join(s.sim.instanceDir, 'config.yaml'), 'utf8')).toBe(config);
  });

  it('writes valid schedules to config.yaml and shows their next run, in their time zone', async () => {
    const res = await s.gql<{ setSchedules: { __typename: string; schedules: Array<{ name: string; nextRunAt: string; apps: string[]; timezone: string }> } }>(SET, { input: { instance: 'test', schedules: [
      { name: 'hourly-site', cron: '0 * * * *', action: 'BACKUP', apps: ['website'] },
      { name: 'nightly-check', cron: '@daily', action: 'CHECK', readDataPercent: 10 },
      // 03:00 on New Year's Day in Auckland (UTC+13 then): 14:00 UTC the day before.
      { name: 'new-year', cron: '0 3 1 1 *', action: 'CHECK', timezone: 'Pacific/Auckland' },
    ] } });
    expect(res.data!.setSchedules.__typename).toBe('SetSchedulesPayload');
    expect(res.data!.setSchedules.schedules.map((x) => [x.name, x.nextRunAt, x.timezone])).toEqual([
      ['hourly-site', '2026-11-26T11:00:00.000Z', 'UTC'], ['nightly-check', '2026-11-27T00:00:00.000Z', 'UTC'],
      ['new-year', '2026-12-31T14:00:00.000Z', 'Pacific/Auckland'],
    ]);
    const config = await readFile(path.join(s.sim.instanceDir, 'config.yaml'), 'utf8');
    expect(config).toContain('hourly-site');
    expect(config).toContain('0 * * * *');
    expect(config).toContain('timezone: Pacific/Auckland');
  });

  it('runs a due schedule as an ordinary operation, and skips the next run while it still runs', async () => {
    await writeFile(path.join(s.sim.pvcDir('website', 'website-content'), 'big.bin'), randomBytes(48 << 20));
    const before = scheduledBackups().length;
    time.advanceTo('2026-11-26T11:00:00Z');
    await until(() => scheduledBackups().length > before);
    const started = scheduledBackups();
    expect(started.length).toBe(before + 1);
    const op = started[0]!;
    // The next hour comes while that backup still runs: skipped, and it says so. Its state cannot
    // be written meanwhile (a file where the state directory was, as on a full or read-only disk):
    // the skip is still shown, and the server goes on (a rejection left unhandled would end it).
    const stateDir = path.join(s.sim.dataDir, 'wild-backup', 'schedules');
    await rename(stateDir, `${stateDir}.away`);
    await writeFile(stateDir, '');
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
    process.on('unhandledRejection', onUnhandled);
    try {
      time.advanceTo('2026-11-26T12:00:00Z');
      await new Promise((r) => setTimeout(r, 200));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await rm(stateDir);
      await rename(`${stateDir}.away`, stateDir);
    }
    const view = await s.gql<{ instance: { schedules: Array<{ name: string; lastSkippedAt: string; lastSkipReason: string; lastRunAt: string }> } }>(SCHEDULES);
    const hourly = view.data!.instance.schedules.find((x) => x.name === 'hourly-site')!;
    expect(hourly.lastSkippedAt).toBe('2026-11-26T12:00:00.000Z');
    expect(hourly.lastSkipReason).toMatch(/still running/i);
    expect(scheduledBackups().length).toBe(before + 1);
    const done = await s.app.services.engine.waitFor(op.id);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    const b = await s.gql<{ instance: { app: { latestBackup: { reason: string } } } }>(`{ instance(name: "test") { app(name: "website") { latestBackup { reason } } } }`);
    expect(b.data!.instance.app.latestBackup.reason).toBe('schedule');
  }, 180_000);

  it('a server down across two scheduled times runs the missed backup once at start-up', async () => {
    await s.app.stop();
    // Down from 12:10 to 14:30: the 13:00 and 14:00 runs were missed.
    const stateFile = path.join(s.sim.dataDir, 'wild-backup', 'schedules', 'test.json');
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as { lastRun: Record<string, string> };
    state.lastRun['hourly-site'] = '2026-11-26T12:00:00.000Z';
    state.lastRun['nightly-check'] = '2026-11-26T12:00:00.000Z';
    await mkdir(path.dirname(stateFile), { recursive: true });
    await writeFile(stateFile, JSON.stringify(state));
    time.now = new Date('2026-11-26T14:30:00Z');
    s.app = await buildApp({ dataDir: s.sim.dataDir, port: 0, scheduleTiming: time.timing, env: { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN } });
    time.advanceTo('2026-11-26T14:30:00Z'); // fires what is due now (the catch-up runs through the same timers)
    const running = () => s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'BACKUP_APP' && ['QUEUED', 'RUNNING'].includes(o.status));
    await until(() => running().length > 0);
    await new Promise((r) => setTimeout(r, 300)); // ... and no second one follows
    const fresh = s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'BACKUP_APP' && ['QUEUED', 'RUNNING'].includes(o.status));
    expect(fresh.length).toBe(1);
    const done = await s.app.services.engine.waitFor(fresh[0]!.id);
    expect(done.status).toBe('SUCCEEDED');
    await new Promise((r) => setTimeout(r, 300));
    expect(s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'BACKUP_APP' && ['QUEUED', 'RUNNING'].includes(o.status))).toEqual([]);
    const view = await s.gql<{ instance: { schedules: Array<{ name: string; lastRunAt: string; nextRunAt: string }> } }>(SCHEDULES);
    expect(view.data!.instance.schedules.find((x) => x.name === 'hourly-site')).toMatchObject({ lastRunAt: '2026-11-26T14:00:00.000Z', nextRunAt: '2026-11-26T15:00:00.000Z' });
  }, 180_000);

  it('a scheduled backup of an app busy with other work runs once that is done; one already being backed up is skipped', async () => {
    const set = await s.gql<{ setSchedules: { __typename: string } }>(SET, { input: { instance: 'test', schedules: [
      { name: 'site-busy', cron: '10 15 * * *', action: 'BACKUP', apps: ['website'] },
      { name: 'site-again', cron: '20 15 * * *', action: 'BACKUP', apps: ['website'] },
    ] } });
    expect(set.data!.setSchedules.__typename).toBe('SetSchedulesPayload');
    const latest = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "website") { latestBackup { id } } } }`);
    const verify = await s.gql<{ verifyBackup: { __typename: string; operation: { id: string } } }>(
      `mutation($id: ID!) { verifyBackup(id: $id) { __typename ... on OperationPayload { operation { id } } } }`, { id: latest.data!.instance.app.latestBackup.id });
    expect(verify.data!.verifyBackup.__typename).toBe('OperationPayload');
    const opId = (id: string) => Buffer.from(id, 'base64').toString('utf8').replace(/^Operation:/, ''); // the engine's id of a node id
    const drillId = opId(verify.data!.verifyBackup.operation.id);
    // The drill holds the app when the schedule comes: the backup waits for it, then runs.
    const before = scheduledBackups().length;
    time.advanceTo('2026-11-26T15:10:00Z');
    await until(() => scheduledBackups().length > before);
    const queued = scheduledBackups()[0]!;
    expect(scheduledBackups().length).toBe(before + 1);
    const drill = await s.app.services.engine.waitFor(drillId);
    expect(drill.status, JSON.stringify(drill.error)).toBe('SUCCEEDED');
    const backup = await s.app.services.engine.waitFor(queued.id);
    expect(backup.status, JSON.stringify(backup.error)).toBe('SUCCEEDED');
    expect(queued.createdAt < drill.finishedAt!).toBe(true); // made while the drill ran ...
    expect(backup.startedAt! >= drill.finishedAt!).toBe(true); // ... and started after it
    const view = async () => (await s.gql<{ instance: { schedules: Array<{ name: string; lastRunAt: string | null; lastSkippedAt: string | null; lastSkipReason: string | null }> } }>(SCHEDULES)).data!.instance.schedules;
    expect((await view()).find((x) => x.name === 'site-busy')).toMatchObject({ lastRunAt: '2026-11-26T15:10:00.000Z', lastSkippedAt: null, lastSkipReason: null });
    // A backup of the app already running when the schedule comes is this run's backup: skipped.
    const manual = await s.gql<{ backupApp: { __typename: string; operation: { id: string } } }>(
      `mutation { backupApp(input: { instance: "test", app: "website" }) { __typename ... on OperationPayload { operation { id } } } }`);
    expect(manual.data!.backupApp.__typename).toBe('OperationPayload');
    const count = scheduledBackups().length;
    time.advanceTo('2026-11-26T15:20:00Z');
    const again = async () => (await view()).find((x) => x.name === 'site-again')!;
    for (let i = 0; i < 150 && !(await again()).lastSkipReason; i++) await new Promise((r) => setTimeout(r, 100));
    const manualId = opId(manual.data!.backupApp.operation.id);
    expect((await again()).lastSkipReason).toMatch(new RegExp(`^backup not started for website: .*already being backed up by operation ${manualId}`));
    expect(scheduledBackups().length).toBe(count);
    expect((await s.app.services.engine.waitFor(manualId)).status).toBe('SUCCEEDED');
  }, 180_000);

  it('runs a scheduled restore drill of the app\'s latest complete backup, and says why an app without one was not drilled', async () => {
    const set = await s.gql<{ setSchedules: { __typename: string } }>(SET, { input: { instance: 'test', schedules: [
      { name: 'drill', cron: '25 15 * * *', action: 'VERIFY' },
    ] } });
    expect(set.data!.setSchedules.__typename).toBe('SetSchedulesPayload');
    const latest = async () => (await s.gql<{ instance: { app: { latestBackup: { backupId: string; verification: { ok: boolean } | null } } } }>(
      `{ instance(name: "test") { app(name: "website") { latestBackup { backupId verification { ok } } } } }`)).data!.instance.app.latestBackup;
    const before = await latest();
    expect(before.verification).toBeNull();
    const drills = () => s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'VERIFY_BACKUP');
    const count = drills().length;
    // Every app of the instance: website, and one whose directory is there but that was never backed up.
    const neverDir = path.join(s.sim.instanceDir, 'apps', 'never-backed-up');
    await mkdir(neverDir, { recursive: true });
    await writeFile(path.join(neverDir, 'manifest.yaml'), 'name: never-backed-up\nversion: 1.0.0\ndescription: an app with no backup yet\n');
    try {
      time.advanceTo('2026-11-26T15:25:00Z');
      await until(() => drills().length > count);
      // The drill names its backup once it runs (a loaded machine can still have it queued here).
      const drill = await s.app.services.engine.waitFor(drills()[0]!.id);
      expect(drill.status, JSON.stringify(drill.error)).toBe('SUCCEEDED');
      expect(drill.backupId).toBe(before.backupId);
      expect((await latest()).verification).toEqual({ ok: true });
      const view = async () => (await s.gql<{ instance: { schedules: Array<{ name: string; lastRunAt: string | null; lastSkipReason: string | null }> } }>(SCHEDULES)).data!.instance.schedules.find((x) => x.name === 'drill')!;
      for (let i = 0; i < 150 && !(await view()).lastSkipReason; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await view()).toMatchObject({ lastRunAt: '2026-11-26T15:25:00.000Z', lastSkipReason: 'drill not started for never-backed-up: app "never-backed-up" has no complete backup to verify' });
      expect(drills().length).toBe(count + 1);
    } finally {
      await rm(neverDir, { recursive: true, force: true });
    }
  }, 180_000);

  it('runs scheduled retention and check on a served repository (rest: through rclone serve restic)', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const os = await import('node:os');
    const { freePort, waitForPort } = await import('../../src/util/net.js');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wild-sched-rclone-'));
    const port = await freePort();
    const rclone = spawn('rclone', ['serve', 'restic', '--addr', `127.0.0.1:${port}`, path.join(dir, 'data')], { stdio: 'ignore', env: { ...process.env, RCLONE_CONFIG: path.join(dir, 'rclone.conf') } });
    try {
      await waitForPort(port);
      const upd = await s.gql<{ updateBackupConfig: { __typename: string } }>(
        `mutation($r: String!) { updateBackupConfig(input: { instance: "test", config: { repository: $r, password: "sched-served-password-7", retention: { keepLast: 1 } } }) { __typename } }`, { r: `rest:http://127.0.0.1:${port}/` });
      expect(upd.data!.updateBackupConfig.__typename).toBe('BackupConfigPayload');
      const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
      expect(init.status, JSON.stringify(init.error)).toBe('SUCCEEDED');
      for (let i = 0; i < 2; i++) expect((await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`)).status).toBe('SUCCEEDED');
      const set = await s.gql<{ setSchedules: { __typename: string } }>(SET, { input: { instance: 'test', schedules: [
        { name: 'prune', cron: '30 15 * * *', action: 'RETENTION' }, { name: 'check', cron: '45 15 * * *', action: 'CHECK', readDataPercent: 100 },
      ] } });
      expect(set.data!.setSchedules.__typename).toBe('SetSchedulesPayload');
      const ops = () => s.app.services.engine.list({ instance: 'test' });
      const appears = async (kind: string) => {
        for (let i = 0; i < 200 && !ops().some((o) => o.kind === kind); i++) await new Promise((r) => setTimeout(r, 100));
        return ops().find((o) => o.kind === kind);
      };
      time.advanceTo('2026-11-26T15:30:00Z');
      const retention = (await appears('APPLY_RETENTION'))!;
      expect(retention).toBeDefined();
      expect((await s.app.services.engine.waitFor(retention.id)).status).toBe('SUCCEEDED');
      const left = await s.gql<{ instance: { backups: { totalCount: number } } }>(`{ instance(name: "test") { backups(app: "website") { totalCount } } }`);
      expect(left.data!.instance.backups.totalCount).toBe(1);
      time.advanceTo('2026-11-26T15:45:00Z');
      const check = (await appears('CHECK_REPOSITORY'))!;
      expect(check).toBeDefined();
      expect((await s.app.services.engine.waitFor(check.id)).status).toBe('SUCCEEDED');
    } finally {
      rclone.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('a scheduled backup of an app removed since says why it did not start', async () => {
    const set = await s.gql<{ setSchedules: { __typename: string } }>(SET, { input: { instance: 'test', schedules: [
      { name: 'site', cron: '0 16 * * *', action: 'BACKUP', apps: ['website'] },
    ] } });
    expect(set.data!.setSchedules.__typename).toBe('SetSchedulesPayload');
    const appDir = path.join(s.sim.instanceDir, 'apps', 'website');
    await rename(appDir, `${appDir}.removed`);
    try {
      const before = scheduledBackups().length;
      time.advanceTo('2026-11-26T16:00:00Z');
      const site = async () => (await s.gql<{ instance: { schedules: Array<{ name: string; lastSkippedAt: string | null; lastSkipReason: string | null }> } }>(SCHEDULES)).data!.instance.schedules.find((x) => x.name === 'site')!;
      for (let i = 0; i < 150 && !(await site()).lastSkipReason; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await site()).toMatchObject({ lastSkippedAt: '2026-11-26T16:00:00.000Z', lastSkipReason: expect.stringMatching(/^backup not started for website: .*no app named "website"/) });
      expect(scheduledBackups().length).toBe(before);
    } finally {
      await rename(`${appDir}.removed`, appDir);
    }
  }, 60_000);

  it('a backup of all apps names an app it cannot back up for its broken files, not leave it out unsaid', async () => {
    const set = await s.gql<{ setSchedules: { __typename: string } }>(SET, { input: { instance: 'test', schedules: [
      { name: 'all', cron: '0 17 * * *', action: 'BACKUP' },
    ] } });
    expect(set.data!.setSchedules.__typename).toBe('SetSchedulesPayload');
    const manifest = path.join(s.sim.instanceDir, 'apps', 'website', 'manifest.yaml');
    const text = await readFile(manifest, 'utf8');
    await writeFile(manifest, 'name: [website');
    try {
      const before = scheduledBackups().length;
      time.advanceTo('2026-11-26T17:00:00Z');
      const all = async () => (await s.gql<{ instance: { schedules: Array<{ name: string; lastSkippedAt: string | null; lastSkipReason: string | null }> } }>(SCHEDULES)).data!.instance.schedules.find((x) => x.name === 'all')!;
      for (let i = 0; i < 150 && !(await all()).lastSkipReason; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await all()).toMatchObject({ lastSkippedAt: '2026-11-26T17:00:00.000Z', lastSkipReason: expect.stringMatching(/^backup not started for website: app "website" cannot be backed up until its files are fixed/) });
      expect(scheduledBackups().length).toBe(before);
    } finally {
      await writeFile(manifest, text);
    }
  }, 60_000);
});
