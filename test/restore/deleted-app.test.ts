// An app deleted by mistake (`wild app delete` removes its directory and its namespace; its
// settings stay in config.yaml) or whose files got broken comes back from its backup's CONFIG:
// its app directory, byte for byte and mode for mode, and its settings. Its data then goes into it
// once it is deployed again. Anything else asked of such an app is refused, changing nothing. And
// around it: a database its server lost comes back with its owner, a volume's restore into an app
// not deployed says so at once, and a backup of an app not deployed fails rather than complete
// without its data.
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, startSimApp, type SimApp } from '../helpers/sim-app.js';
import { setPath, updateYamlFile, withFileLock } from '../../src/wild/writer.js';

let s: SimApp;
let appsDir: string;
let configFile: string;

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
  appsDir = s.app.services.store.paths.appsDir('test');
  configFile = s.app.services.store.paths.configFile('test');
  // The user's own changes to the app's files, as Wild Cloud invites: a patch, in a folder, mode 0640.
  await mkdir(path.join(appsDir, 'gitea', 'patches'), { recursive: true });
  await writeFile(path.join(appsDir, 'gitea', 'patches', 'resources.yaml'), 'spec:\n  template:\n    spec:\n      containers: []\n');
  await chmod(path.join(appsDir, 'gitea', 'patches', 'resources.yaml'), 0o640);
}, 180_000);
afterAll(async () => { await s?.close(); });

const RESTORE = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ... on OperationPayload { operation { id } } ... on Error { __typename message } } }`;
const RUN = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ${OP_FIELDS} } }`;
const timezone = async () => (await s.app.services.store.requireInstance('test')).config.apps?.gitea?.timezone;
const leftovers = async () => (await readdir(appsDir)).filter((n) => n.startsWith('.'));
const operations = async () => (await s.app.services.engine.list({})).length;

async function refused(input: Record<string, unknown>, message: RegExp): Promise<void> {
  const before = await operations();
  const res = await s.gql<{ restoreBackup: { __typename?: string; message?: string } }>(RESTORE, { input });
  expect(res.data?.restoreBackup.__typename, JSON.stringify(res)).toBe('ValidationError');
  expect(res.data?.restoreBackup.message).toMatch(message);
  expect(await operations(), 'no operation was started').toBe(before);
}

describe('an app that is gone from Wild Central', () => {
  it('comes back from its backup\'s CONFIG, files and settings exact, and the message says what is next', async () => {
    const b = await backupLatest(s, 'gitea');
    const files = await treeDigest(path.join(appsDir, 'gitea'));
    expect(files['patches/resources.yaml']).toMatch(/^f 640 /);
    // `wild app delete gitea`, and a setting changed since the backup.
    await rm(path.join(appsDir, 'gitea'), { recursive: true });
    await updateYamlFile(configFile, (doc) => { setPath(doc, ['apps', 'gitea', 'timezone'], 'Pacific/Auckland'); }, 0o644);
    const gone = await s.gql<{ instance: { app: unknown; backups: { edges: Array<{ node: { backupId: string } }> } } }>(
      `{ instance(name: "test") { app(name: "gitea") { name } backups(app: "gitea") { edges { node { backupId } } } } }`);
    expect(gone.data?.instance.app, JSON.stringify(gone)).toBeNull();
    expect(gone.data!.instance.backups.edges.map((e) => e.node.backupId)).toContain(b.backupId);

    // Its data has nowhere to go until it is deployed again.
    await refused({ backupId: b.id }, /is not on this Wild Central .* restore this backup's CONFIG alone first/);
    await refused({ backupId: b.id, components: ['CONFIG', 'VOLUMES'] }, /CONFIG alone first/);
    await refused({ backupId: b.id, components: ['DATABASES'] }, /CONFIG alone first/);
    const drill = await s.gql<{ verifyBackup: { __typename: string; message: string } }>(`mutation($id: ID!) { verifyBackup(id: $id) { __typename ... on Error { message } } }`, { id: b.id });
    expect(drill.data!.verifyBackup).toMatchObject({ __typename: 'NotFoundError', message: expect.stringMatching(/"gitea" is not on this Wild Central: .*Bring it back first/) });
    expect(await readdir(appsDir)).not.toContain('gitea');

    const rec = await s.runOperation(RUN, { input: { backupId: b.id, components: ['CONFIG'] } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await treeDigest(path.join(appsDir, 'gitea'))).toEqual(files);
    expect(await timezone()).toBe('UTC');
    expect(await leftovers()).toEqual([]);
    const op = await s.gql<{ operation: { message: string; backup: { reason: string; artifacts: Array<{ kind: string }> }; log: string[] } }>(
      `query($id: ID!) { operation(id: $id) { message backup { reason artifacts { kind } } log(last: 50) } }`, { id: rec.id });
    const { message, backup, log } = op.data!.operation;
    expect(message).toMatch(/deploy gitea, then restore this backup's DATABASES and VOLUMES into it/);
    // The settings it replaced are in its safety backup (its only artifact: there was nothing else).
    expect(backup.reason).toBe('safety');
    expect(backup.artifacts.map((a) => a.kind).filter((k) => k !== 'manifest')).toEqual(['config']);
    expect(log.join('\n')).toContain('brought back the app directory');
    expect(log.join('\n')).toContain('nothing in the cluster is touched');
    const back = await s.gql<{ instance: { app: { name: string; problems: unknown[] } } }>(`{ instance(name: "test") { app(name: "gitea") { name problems { message } } } }`);
    expect(back.data!.instance.app).toEqual({ name: 'gitea', problems: [] });
  }, 240_000);

  it('a broken app directory is replaced by the backup\'s, and put back when the restore fails', async () => {
    const b = await backupLatest(s, 'gitea');
    const files = await treeDigest(path.join(appsDir, 'gitea'));
    await writeFile(path.join(appsDir, 'gitea', 'manifest.yaml'), 'name: [not, yaml');
    await writeFile(path.join(appsDir, 'gitea', 'left-by-hand.txt'), 'x');
    const broken = await treeDigest(path.join(appsDir, 'gitea'));
    await refused({ backupId: b.id }, /has broken files: restore this backup's CONFIG alone first/);

    // The settings cannot be written (another writer holds config.yaml past the lock's wait): the
    // restore fails after the directory was swapped in, and the broken one comes back as it was.
    await updateYamlFile(configFile, (doc) => { setPath(doc, ['apps', 'gitea', 'timezone'], 'Europe/Oslo'); }, 0o644);
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    const holding = withFileLock(configFile, () => held);
    try {
      const failed = await s.runOperation(RUN, { input: { backupId: b.id, components: ['CONFIG'], safetyBackup: false } });
      expect(failed.status).toBe('FAILED');
      expect(JSON.stringify(failed.error)).toMatch(/locked by another writer/);
    } finally {
      release();
      await holding;
    }
    expect(await treeDigest(path.join(appsDir, 'gitea'))).toEqual(broken);
    expect(await timezone()).toBe('Europe/Oslo');
    expect(await leftovers()).toEqual([]);

    const rec = await s.runOperation(RUN, { input: { backupId: b.id, components: ['CONFIG'] } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await treeDigest(path.join(appsDir, 'gitea'))).toEqual(files);
    expect(await timezone()).toBe('UTC');
    expect(await leftovers()).toEqual([]);
  }, 240_000);

  it('a database dropped from its server (a server rebuilt empty) comes back with its owner role', async () => {
    const pg = s.sim.databases.postgres!;
    const b = await backupLatest(s, 'gitea');
    const before = await pgTableDigests(pg, 'gitea');
    await pg.query('drop database gitea with (force)');
    await pg.query('drop role gitea');
    const rec = await s.runOperation(RUN, { input: { backupId: b.id, components: ['DATABASES'] } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await pgTableDigests(pg, 'gitea')).toEqual(before);
    expect((await pg.query(`select pg_get_userbyid(datdba) from pg_database where datname = 'gitea'`)).trim()).toBe('gitea');
    const log = (await s.app.services.engine.logTail(rec.id, 100)).join('\n');
    expect(log).toContain('created missing roles: gitea');
    // Nothing was there to keep aside, and the log does not say otherwise.
    expect(log).toMatch(/swapped in postgres:gitea$/m);
  }, 240_000);

  it('its data, before it is deployed again, fails at once with what to do, with no safety backup taken', async () => {
    const b = await backupLatest(s, 'gitea');
    // `wild app delete` again, but its directory brought back already: the namespace is still gone.
    s.sim.kube.runtime.remove('namespaces', undefined, 'gitea');
    for (let i = 0; i < 100 && s.sim.kube.runtime.store.peek('namespaces', undefined, 'gitea'); i++) await new Promise((r) => setTimeout(r, 100));
    const rec = await s.runOperation(RUN, { input: { backupId: b.id, components: ['VOLUMES'] } });
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/gitea is not deployed \(the cluster has no namespace gitea\): deploy it, then restore its volume gitea-data/);
    const op = await s.gql<{ operation: { backup: unknown } }>(`query($id: ID!) { operation(id: $id) { backup { backupId } } }`, { id: rec.id });
    expect(op.data!.operation.backup).toBeNull();
  }, 240_000);

  it('a backup of it while it is not deployed fails, instead of a COMPLETE backup without its data', async () => {
    // The namespace is still gone (the test before), the app's directory and settings are here.
    const latest = async () => (await s.gql<{ instance: { app: { latestBackup: { backupId: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { backupId } } } }`)).data!.instance.app.latestBackup.backupId;
    const before = await latest();
    const rec = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
    expect(rec.status).toBe('FAILED');
    expect(rec.error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/gitea is not deployed \(the cluster has no namespace gitea\): there is none of its data to back up/) });
    expect(await latest()).toBe(before);
  }, 120_000);

  it('a clone still needs its target app to exist', async () => {
    const b = (await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`)).data!.instance.app.latestBackup;
    const res = await s.gql<{ restoreBackup: { __typename?: string } }>(RESTORE, { input: { backupId: b.id, targetApp: 'gitea-copy', components: ['CONFIG'] } });
    expect(res.data?.restoreBackup.__typename).toBe('NotFoundError');
  }, 120_000);
});
