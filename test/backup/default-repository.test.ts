// With no repository configured, an instance backs up to the embedded default repository, whose
// path and password are Wild Backup's own: the first backup creates it (backups starting at once
// share one `restic init`) instead of failing with "initialise it first". A configured repository
// is never created unasked: its backup fails with RESTIC_NOT_INITIALIZED and nothing is made there.
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { OperationRecord } from '../../src/engine/operations/index.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let elsewhere = '';

beforeAll(async () => {
  s = await startSimApp({ apps: ['website', 'whoami'] });
  elsewhere = await mkdtemp(path.join(tmpdir(), 'wild-configured-repo-'));
}, 180_000);
afterAll(async () => {
  await s?.close();
  if (elsewhere) await rm(elsewhere, { recursive: true, force: true });
});

const BACKUP = `mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`;

it('the first backups create the embedded default repository, once, and complete', async () => {
  const dir = s.app.services.store.paths.defaultRepository('test');
  await expect(access(path.join(dir, 'config'))).rejects.toThrow();
  const [a, b] = await Promise.all([s.runOperation(BACKUP, { app: 'website' }), s.runOperation(BACKUP, { app: 'whoami' })]);
  for (const op of [a, b]) expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
  const created = async (op: OperationRecord) => (await s.app.services.engine.logTail(op.id, 200)).some((l) => l.includes(`created the embedded default repository at ${dir}`));
  expect([await created(a), await created(b)].filter(Boolean)).toHaveLength(1);
  await access(path.join(dir, 'config'));
  const res = await s.gql<{ instance: { repository: { status: { initialized: boolean; snapshotCount: number } }; apps: Array<{ name: string; latestBackup: { status: string } | null }> } }>(
    `{ instance(name: "test") { repository { status { initialized snapshotCount } } apps { name latestBackup { status } } } }`);
  expect(res.errors).toBeUndefined();
  expect(res.data!.instance.repository.status.initialized).toBe(true);
  const latest = Object.fromEntries(res.data!.instance.apps.map((x) => [x.name, x.latestBackup?.status]));
  expect(latest).toMatchObject({ website: 'COMPLETE', whoami: 'COMPLETE' });
  // The next backup finds it there.
  const c = await s.runOperation(BACKUP, { app: 'website' });
  expect(c.status).toBe('SUCCEEDED');
  expect(await created(c)).toBe(false);
}, 180_000);

it('a configured repository that does not exist is not created: the backup fails saying to initialise it', async () => {
  const repo = path.join(elsewhere, 'repo');
  const set = await s.gql<{ updateBackupConfig: { __typename: string } }>(
    `mutation($r: String!) { updateBackupConfig(input: { instance: "test", config: { repository: $r, password: "a-long-enough-password-9" } }) { __typename } }`, { r: repo });
  expect(set.data!.updateBackupConfig.__typename).toBe('BackupConfigPayload');
  const op = await s.runOperation(BACKUP, { app: 'website' });
  expect(op.status).toBe('FAILED');
  expect(op.error?.code).toBe('RESTIC_NOT_INITIALIZED');
  expect(op.error?.message).toMatch(/initialise it first/);
  expect(await readdir(elsewhere)).toEqual([]);
}, 120_000);
