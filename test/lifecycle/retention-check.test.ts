// Retention and checks against real repositories through GraphQL: a local one (the embedded
// default) and one served over rest: by `rclone serve restic`. A prune waits for a running backup.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitForPort } from '../../src/util/net.js';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let rclone: ChildProcess | undefined;
let rcloneDir = '';

const RETENTION = `mutation($input: ApplyRetentionInput!) { applyRetention(input: $input) { __typename ... on RetentionPreviewPayload { keep { backupId appName } remove { backupId appName } operation { operationId } } ... on Error { code message } } }`;
type Preview = { applyRetention: { __typename: string; keep: Array<{ backupId: string; appName: string }>; remove: Array<{ backupId: string; appName: string }>; operation: { operationId: string } | null } };

async function backup(app: string): Promise<string> {
  const rec = await s.runOperation(`mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  return rec.backupId!;
}

async function backupIds(app: string): Promise<string[]> {
  const res = await s.gql<{ instance: { backups: { edges: Array<{ node: { backupId: string } }> } } }>(`query($app: String) { instance(name: "test") { backups(app: $app) { edges { node { backupId } } } } }`, { app });
  return res.data!.instance.backups.edges.map((e) => e.node.backupId);
}

async function retentionRoundTrip(label: string): Promise<void> {
  const ids = [await backup('website'), await backup('website'), await backup('website')];
  const whoami = await backup('whoami');
  await updateYamlFile(path.join(s.sim.instanceDir, 'config.yaml'), (doc) => setPath(doc, ['cloud', 'backup', 'retention'], { keepLast: 1 }), 0o644);
  const dry = await s.gql<Preview>(RETENTION, { input: { instance: 'test', dryRun: true } });
  expect(dry.data!.applyRetention.__typename, label).toBe('RetentionPreviewPayload');
  expect(dry.data!.applyRetention.operation).toBeNull();
  expect(dry.data!.applyRetention.remove.map((b) => b.backupId).sort()).toEqual(ids.slice(0, 2).sort());
  expect(dry.data!.applyRetention.keep.map((b) => b.backupId)).toEqual(expect.arrayContaining([ids[2], whoami]));
  expect(await backupIds('website'), 'a dry run changes nothing').toHaveLength(3);

  const real = await s.gql<Preview>(RETENTION, { input: { instance: 'test' } });
  const rec = await s.app.services.engine.waitFor(real.data!.applyRetention.operation!.operationId);
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  expect(await backupIds('website')).toEqual([ids[2]]);
  expect(await backupIds('whoami')).toEqual([whoami]);
  // What is kept still restores: a restore drill of it passes.
  const node = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "website") { latestBackup { id } } } }`);
  const v = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: node.data!.instance.app.latestBackup.id });
  expect(v.status, JSON.stringify(v.error)).toBe('SUCCEEDED');
}

beforeAll(async () => {
  s = await startSimApp({ apps: ['website', 'whoami'] });
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
}, 180_000);
afterAll(async () => {
  if (rclone && rclone.exitCode === null) rclone.kill('SIGKILL');
  await s?.close();
  if (rcloneDir) await rm(rcloneDir, { recursive: true, force: true });
});

describe('retention', () => {
  it('on the local repository: a dry run answers and changes nothing; the real run forgets and prunes', async () => {
    await retentionRoundTrip('local');
  }, 240_000);

  it('a prune waits for a running backup, and that backup is COMPLETE and restorable afterwards', async () => {
    await writeFile(path.join(s.sim.pvcDir('website', 'website-content'), 'video.bin'), randomBytes(64 << 20));
    const b = await s.gql<{ backupApp: { operation: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`);
    const backupOp = b.data!.backupApp.operation.operationId;
    for await (const ev of s.app.services.pubsub.subscribe(`operation:${backupOp}`, { bufferSize: 10_000 })) {
      if (ev.operation.progress.phase.startsWith('backing up pvc') && ev.operation.progress.bytesDone > 0) break;
    }
    const r = await s.gql<Preview>(RETENTION, { input: { instance: 'test' } });
    const pruneOp = r.data!.applyRetention.operation!.operationId;
    expect(s.app.services.engine.get(pruneOp)?.status).toBe('QUEUED');
    const [br, pr] = await Promise.all([s.app.services.engine.waitFor(backupOp), s.app.services.engine.waitFor(pruneOp)]);
    expect(br.status).toBe('SUCCEEDED');
    expect(pr.status, JSON.stringify(pr.error)).toBe('SUCCEEDED');
    expect(pr.startedAt! >= br.finishedAt!).toBe(true);
    expect(await backupIds('website')).toEqual([br.backupId]);
    const node = await s.gql<{ instance: { app: { latestBackup: { id: string; status: string } } } }>(`{ instance(name: "test") { app(name: "website") { latestBackup { id status } } } }`);
    expect(node.data!.instance.app.latestBackup.status).toBe('COMPLETE');
    const v = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: node.data!.instance.app.latestBackup.id });
    expect(v.status, JSON.stringify(v.error)).toBe('SUCCEEDED');
  }, 240_000);
});

describe('checkRepository', () => {
  it("an app gone from Wild Central keeps its backups under retention (its newest kept); a name with neither is NotFound", async () => {
    await updateYamlFile(path.join(s.sim.instanceDir, 'config.yaml'), (doc) => setPath(doc, ['cloud', 'backup', 'retention'], { keepLast: 1 }), 0o644);
    await backup('whoami');
    const newest = await backup('whoami');
    const appDir = path.join(s.sim.instanceDir, 'apps', 'whoami');
    await rename(appDir, path.join(s.sim.instanceDir, 'apps', '.whoami-deleted'));
    try {
      const dry = await s.gql<Preview>(RETENTION, { input: { instance: 'test', app: 'whoami', dryRun: true } });
      expect(dry.data!.applyRetention.__typename, JSON.stringify(dry)).toBe('RetentionPreviewPayload');
      expect(dry.data!.applyRetention.keep.map((b) => b.backupId)).toEqual([newest]);
      expect(dry.data!.applyRetention.remove.length).toBeGreaterThan(0);
      expect(dry.data!.applyRetention.remove.every((b) => b.appName === 'whoami')).toBe(true);
      const none = await s.gql<{ applyRetention: { __typename: string; message: string } }>(RETENTION, { input: { instance: 'test', app: 'no-such-app', dryRun: true } });
      expect(none.data!.applyRetention).toMatchObject({ __typename: 'NotFoundError', message: expect.stringMatching(/no app named "no-such-app" and no backups of one/) });
    } finally {
      await rename(path.join(s.sim.instanceDir, 'apps', '.whoami-deleted'), appDir);
    }
  }, 120_000);

  it("keeps the newest backup holding a volume the later backups no longer hold, whatever the policy", async () => {
    const config = path.join(s.sim.instanceDir, 'config.yaml');
    await updateYamlFile(config, (doc) => setPath(doc, ['cloud', 'backup', 'retention'], { keepLast: 1 }), 0o644);
    const withVolume = await backup('website');
    // From now on its backups are COMPLETE without the volume (left out here by its setting; a
    // PVC deleted by mistake looks the same to the backups).
    await updateYamlFile(config, (doc) => setPath(doc, ['apps', 'website', 'backup', 'volumes', 'website-content'], false), 0o644);
    try {
      const older = await backup('website');
      const newest = await backup('website');
      const dry = await s.gql<Preview>(RETENTION, { input: { instance: 'test', app: 'website', dryRun: true } });
      expect(dry.data!.applyRetention.keep.map((b) => b.backupId).sort()).toEqual([newest, withVolume].sort());
      expect(dry.data!.applyRetention.remove.map((b) => b.backupId)).toContain(older);
    } finally {
      await updateYamlFile(config, (doc) => { doc.deleteIn(['apps', 'website', 'backup']); }, 0o644);
    }
  }, 120_000);

  it('answers a share of the data out of range with ValidationError in its union, and starts nothing', async () => {
    const before = s.app.services.engine.list().length;
    for (const pct of [0, -5, 101]) {
      const res = await s.gql<{ checkRepository: { __typename: string; code: string; message: string } }>(`mutation($p: Float) { checkRepository(input: { instance: "test", readDataPercent: $p }) { ${OP_FIELDS} } }`, { p: pct });
      expect(res.errors).toBeUndefined();
      expect(res.data!.checkRepository).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED', message: expect.stringContaining('input.readDataPercent') });
    }
    expect(s.app.services.engine.list()).toHaveLength(before);
  });

  it('passes on a healthy repository; a corrupted pack fails the check and names the problem; a later backup of other data is good', async () => {
    const ok = await s.runOperation(`mutation { checkRepository(input: { instance: "test", readDataPercent: 100 }) { ${OP_FIELDS} } }`);
    expect(ok.status, JSON.stringify(ok.error)).toBe('SUCCEEDED');
    expect(ok.message).toMatch(/no errors/);
    // Corrupt the largest pack (the video's data).
    const data = path.join(s.sim.instanceDir, 'backups', 'repository', 'data');
    let largest = { file: '', size: 0 };
    for (const dir of await readdir(data)) for (const f of await readdir(path.join(data, dir))) {
      const file = path.join(data, dir, f);
      const { size } = await stat(file);
      if (size > largest.size) largest = { file, size };
    }
    const fh = await open(largest.file, 'r+');
    await fh.write(Buffer.alloc(8192, 0x33), 0, 8192, Math.floor(largest.size / 2));
    await fh.close();
    const bad = await s.runOperation(`mutation { checkRepository(input: { instance: "test", readDataPercent: 100 }) { ${OP_FIELDS} } }`);
    expect(bad.status).toBe('FAILED');
    expect(bad.error?.code).toBe('CHECK_FAILED');
    expect(bad.error?.message).toMatch(/pack|hash|ciphertext|error/i);
    // whoami's data shares no pack with the video: a new backup of it is whole.
    await writeFile(path.join(s.sim.pvcDir('website', 'website-content'), 'video.bin'), 'replaced');
    const id = await backup('whoami');
    const node = await s.gql<{ instance: { app: { latestBackup: { id: string; backupId: string } } } }>(`{ instance(name: "test") { app(name: "whoami") { latestBackup { id backupId } } } }`);
    expect(node.data!.instance.app.latestBackup.backupId).toBe(id);
    const v = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: node.data!.instance.app.latestBackup.id });
    expect(v.status, JSON.stringify(v.error)).toBe('SUCCEEDED');
  }, 240_000);
});

describe('against a served backend', () => {
  it('retention and check work the same on rest: (rclone serve restic)', async () => {
    rcloneDir = await mkdtemp(path.join(os.tmpdir(), 'wild-rclone-'));
    const port = await freePort();
    rclone = spawn('rclone', ['serve', 'restic', '--addr', `127.0.0.1:${port}`, path.join(rcloneDir, 'data')], { stdio: 'ignore', env: { ...process.env, RCLONE_CONFIG: path.join(rcloneDir, 'rclone.conf') } });
    await waitForPort(port);
    const upd = await s.gql<{ updateBackupConfig: { __typename: string } }>(
      `mutation($r: String!) { updateBackupConfig(input: { instance: "test", config: { repository: $r, password: "served-repo-password-9" } }) { __typename } }`, { r: `rest:http://127.0.0.1:${port}/` });
    expect(upd.data!.updateBackupConfig.__typename).toBe('BackupConfigPayload');
    const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
    expect(init.status, JSON.stringify(init.error)).toBe('SUCCEEDED');
    await retentionRoundTrip('rest');
    const ok = await s.runOperation(`mutation { checkRepository(input: { instance: "test", readDataPercent: 50 }) { ${OP_FIELDS} } }`);
    expect(ok.status, JSON.stringify(ok.error)).toBe('SUCCEEDED');
  }, 300_000);
});
