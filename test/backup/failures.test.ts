// Failed backups leave no COMPLETE backup and no stray snapshot: a dump command that fails, the
// database pod deleted mid-dump, the repository server stopping mid-stream, and a cancel. No exec
// socket or restic process is left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClientFor } from '../../src/kube/index.js';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { freePort, waitForPort } from '../../src/util/net.js';
import { expectBackupLeftNothing, pauseResticOnce, whenStreaming } from '../helpers/faults.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let rcloneDir: string;
let rclonePort: number;
let rclone: ChildProcess | undefined;

async function startRclone(): Promise<void> {
  rclone = spawn('rclone', ['serve', 'restic', '--addr', `127.0.0.1:${rclonePort}`, path.join(rcloneDir, 'data')], {
    stdio: 'ignore', env: { ...process.env, RCLONE_CONFIG: path.join(rcloneDir, 'rclone.conf') },
  });
  await waitForPort(rclonePort);
}

async function stopRclone(): Promise<void> {
  const p = rclone;
  rclone = undefined;
  if (!p || p.exitCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

beforeAll(async () => {
  // 15 s without a byte moving, once an artifact is under way, for the test of a repository that
  // stops; the start bound (restic opening the repository, the source's first byte) keeps its
  // default, so that a loaded CI machine's slow start-ups are no stall.
  s = await startSimApp({ apps: ['gitea', 'website'] }, { stallTimeoutMs: 15_000, leftoverRetryMs: 500 });
  rcloneDir = await mkdtemp(path.join(os.tmpdir(), 'wild-rclone-'));
  rclonePort = await freePort();
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
}, 180_000);
afterAll(async () => {
  await stopRclone();
  await s?.close();
  if (rcloneDir) await rm(rcloneDir, { recursive: true, force: true });
});

const startBackup = async (app: string) => {
  const res = await s.gql<{ backupApp: { operation: { operationId: string } } }>(`mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
  return res.data!.backupApp.operation.operationId;
};

describe('failed backups', () => {
  it('a dump command that fails: FAILED naming the artifact and the stderr tail, nothing left', async () => {
    const config = path.join(s.sim.instanceDir, 'config.yaml');
    await updateYamlFile(config, (doc) => setPath(doc, ['apps', 'gitea', 'dbName'], 'no_such_db'), 0o644);
    try {
      const rec = await s.app.services.engine.waitFor(await startBackup('gitea'));
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.message).toMatch(/postgres:no_such_db/);
      expect(rec.error?.message).toMatch(/does not exist/);
      await expectBackupLeftNothing(s, rec, 'gitea');
    } finally {
      await updateYamlFile(config, (doc) => setPath(doc, ['apps', 'gitea', 'dbName'], 'gitea'), 0o644);
    }
  });

  it('cancelled mid-stream through GraphQL: CANCELLED, nothing left', async () => {
    await writeFile(path.join(s.sim.pvcDir('website', 'website-content'), 'big.bin'), randomBytes(96 << 20));
    const opId = await startBackup('website');
    // restic held after its first MiB, so that the cancel lands mid-stream on any machine.
    const restic = await pauseResticOnce(['backup', 'website/pvc-website-content.tar'], 'rchar', 1 << 20);
    await whenStreaming(s, opId, 'pvc:website-content', 256 << 10);
    const res = await s.gql<{ cancelOperation: { __typename: string } }>(`mutation($id: ID!) { cancelOperation(id: $id) { __typename } }`, { id: opId });
    expect(res.data!.cancelOperation.__typename).toBe('CancelOperationPayload');
    restic.resume();
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('CANCELLED');
    await expectBackupLeftNothing(s, rec, 'website');
  });

  it('the database pod deleted mid-dump: FAILED with a lost connection, nothing left', async () => {
    const pg = s.sim.databases.postgres!;
    await pg.query(`create table if not exists bulk as select g as id, repeat(md5(g::text), 30) as payload from generate_series(1, 250000) g`, 'gitea');
    const opId = await startBackup('gitea');
    await whenStreaming(s, opId, 'postgres:gitea', 1 << 20);
    const client = kubeClientFor(s.sim.kubeconfigPath);
    const pods = await client.core.listNamespacedPod({ namespace: 'postgres', labelSelector: 'app=postgres' });
    await client.core.deleteNamespacedPod({ namespace: 'postgres', name: pods.items[0]!.metadata!.name!, gracePeriodSeconds: 0 });
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('FAILED');
    // The dump or the roles (read from the same pod, side by side): whichever failed first.
    expect(rec.error?.message).toMatch(/postgres(-roles)?:gitea/);
    await expectBackupLeftNothing(s, rec, 'gitea');
  });
  it('the repository server stops mid-stream: FAILED, and once it is back no snapshot of that backup exists', async () => {
    await startRclone();
    const upd = await s.gql<{ updateBackupConfig: { __typename: string } }>(
      `mutation($r: String!) { updateBackupConfig(input: { instance: "test", config: { repository: $r, password: "rest-repo-password-1" } }) { __typename ... on Error { message } } }`,
      { r: `rest:http://127.0.0.1:${rclonePort}/` });
    expect(upd.data!.updateBackupConfig.__typename).toBe('BackupConfigPayload');
    const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
    expect(init.status, JSON.stringify(init.error)).toBe('SUCCEEDED');
    const opId = await startBackup('website');
    // The volume's restic is held before it opens the repository (the start bound, 10 minutes, is
    // what runs then) until the config beside it is written, and held again after its first MiB:
    // the repository then stops mid-stream for the volume alone, on any machine.
    const atStart = await pauseResticOnce(['backup', 'website/pvc-website-content.tar'], 'rchar', 0);
    // Alone with bytes done: the config's (the first report, before the config started, has none).
    await whenStreaming(s, opId, 'pvc:website-content', 1, { alone: true });
    const midStream = pauseResticOnce(['backup', 'website/pvc-website-content.tar'], 'rchar', 1 << 20);
    atStart.resume();
    const restic = await midStream;
    await whenStreaming(s, opId, 'pvc:website-content', 256 << 10);
    await stopRclone();
    restic.resume();
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/pvc:website-content/);
    expect(rec.error?.code).toBe('STALLED');
    // The repository could not forget the backup's snapshots while it was down: kept as a leftover.
    expect(await s.app.services.backups.leftovers.list('test')).toContain(rec.backupId);
    await startRclone();
    // Once the repository answers again, the background sweep removes them.
    await expect.poll(() => s.app.services.backups.leftovers.list('test'), { timeout: 60_000, interval: 250 }).toEqual([]);
    await expectBackupLeftNothing(s, rec, 'website');
  }, 120_000);

});
