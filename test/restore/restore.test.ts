// restoreBackup end to end against the simulated cluster: data changed after a backup comes back
// exactly as backed up (rows, files, modes; files created later are gone), the app is quiesced and
// scaled back, a safety backup is taken first, a cancelled restore leaves everything as it was,
// and verifyBackup proves a backup by restoring it into scratch space.
import { chmod, rm, writeFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClientFor, listWorkloads, openExecSockets } from '../../src/kube/index.js';
import { mariadbTableDigests, pgTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, holdExecs, startSimApp, type SimApp } from '../helpers/sim-app.js';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';

const run = promisify(execFile);

let s: SimApp;
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini';

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea', 'ghost', 'whoami'] });
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
}, 180_000);
afterAll(async () => { await s?.close(); });

const backup = (app: string) => backupLatest(s, app);

const RESTORE = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ${OP_FIELDS} } }`;

async function replicas(ns: string): Promise<Record<string, number>> {
  const ws = await listWorkloads(kubeClientFor(s.sim.kubeconfigPath), ns);
  return Object.fromEntries(ws.map((w) => [`${w.kind}/${w.name}`, w.replicas]));
}

describe('restoreBackup', () => {
  it('brings gitea (postgres + PVC) back exactly as backed up, after a safety backup, and scales it back', async () => {
    const pg = s.sim.databases.postgres!;
    const pvc = s.sim.pvcDir('gitea', 'gitea-data');
    const b = await backup('gitea');
    const dbBefore = await pgTableDigests(pg, 'gitea');
    const filesBefore = await treeDigest(pvc, { skip: NESTED });
    const replicasBefore = await replicas('gitea');

    // Life goes on: rows change, files appear, disappear and change mode.
    const [table, other] = Object.keys(dbBefore) as [string, string];
    expect(other, 'the seeded gitea database has at least two tables').toBeDefined();
    const cols = (await pg.query(`select column_name from information_schema.columns where table_schema || '.' || table_name = '${table}' and data_type = 'text' limit 1`, 'gitea')).trim();
    if (cols) await pg.query(`update ${table} set ${cols} = 'updated after the backup' where ctid in (select ctid from ${table} limit 7)`, 'gitea');
    await pg.query(`delete from ${table} where ctid in (select ctid from ${table} limit 5)`, 'gitea');
    await pg.query(`drop table ${other} cascade`, 'gitea');
    await pg.query(`create table added_later (x int); insert into added_later values (1)`, 'gitea');
    const someFile = Object.keys(filesBefore).find((k) => filesBefore[k]!.startsWith('f '))!;
    await unlink(path.join(pvc, someFile));
    await writeFile(path.join(pvc, 'created-after-backup.txt'), 'new');
    const another = Object.keys(filesBefore).filter((k) => filesBefore[k]!.startsWith('f ')).at(-1)!;
    await chmod(path.join(pvc, another), 0o600);
    const third = Object.keys(filesBefore).filter((k) => filesBefore[k]!.startsWith('f ')).at(-2)!;
    await writeFile(path.join(pvc, third), 'contents changed after the backup');
    expect(await treeDigest(pvc, { skip: NESTED })).not.toEqual(filesBefore);

    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await pgTableDigests(pg, 'gitea')).toEqual(dbBefore);
    expect(await treeDigest(pvc, { skip: NESTED })).toEqual(filesBefore);
    expect(await replicas('gitea')).toEqual(replicasBefore);
    // No side database or side directory is left.
    expect((await pg.query(`select datname from pg_database where datname like 'gitea_wb%'`)).trim()).toBe('');
    expect(Object.keys(await treeDigest(pvc)).filter((k) => k.startsWith('.wild-backup'))).toEqual([]);

    // The operation names the safety backup, which holds the state just before the restore.
    const op = await s.gql<{ operation: { backup: { backupId: string; reason: string; status: string }; log: string[] } }>(
      `query($id: ID!) { operation(id: $id) { backup { backupId reason status } log(last: 50) } }`, { id: rec.id });
    expect(op.data!.operation.backup).toMatchObject({ reason: 'safety', status: 'COMPLETE' });
    expect(op.data!.operation.log.join('\n')).toContain(op.data!.operation.backup.backupId);
    expect(op.data!.operation.log.join('\n')).toMatch(/quiesced Deployment\/gitea/);
    expect(openExecSockets()).toBe(0);
  }, 240_000);

  it('brings ghost (MariaDB + PVC) back with one atomic table swap', async () => {
    const db = s.sim.databases.mysql!;
    const schema = String((await s.app.services.store.requireApp(await s.app.services.store.requireInstance('test'), 'ghost')).config.dbName ?? 'ghost');
    const b = await backup('ghost');
    const before = await mariadbTableDigests(db, schema);
    const [table, other] = Object.keys(before) as [string, string];
    await db.query(`delete from \`${schema}\`.\`${table}\` limit 3`);
    if (other) await db.query(`drop table \`${schema}\`.\`${other}\``);
    await db.query(`create table \`${schema}\`.added_later (x int)`);
    expect(await mariadbTableDigests(db, schema)).not.toEqual(before);
    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, components: ['DATABASES'], safetyBackup: false } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await mariadbTableDigests(db, schema)).toEqual(before);
    expect((await s.app.services.engine.logTail(rec.id, 100)).join('\n')).toMatch(new RegExp(`swapped in mysql:${schema}; the data it replaced is kept as ${schema}_wbo_[0-9a-f]+ until the restore is done`));
    expect((await db.query(`select schema_name from information_schema.schemata where schema_name like '${schema}_wb%'`)).trim()).toBe('');
  }, 240_000);

  it('a MariaDB server that lost the schema and its user gets both back, and ghost logs in with its own password', async () => {
    const db = s.sim.databases.mysql!;
    const b = await backup('ghost');
    const before = await mariadbTableDigests(db, 'ghost');
    const artifacts = await s.gql<{ node: { artifacts: Array<{ kind: string; name: string }> } }>(`query($id: ID!) { node(id: $id) { ... on Backup { artifacts { kind name } } } }`, { id: b.id });
    expect(artifacts.data!.node.artifacts).toContainEqual({ kind: 'mysql-users', name: 'ghost' });
    const dropUser = () => db.query("drop user if exists 'ghost'@'%'");
    const userExists = async () => (await db.query("select count(*) from mysql.user where user = 'ghost' and host = '%'")).trim() === '1';
    await db.query('drop database ghost');
    await dropUser();

    // A restore that fails after the user was made (cancelled while its schema loads) drops it again.
    const held = holdExecs(s, (c) => c.some((a) => a.startsWith('--database=ghost_wbr_')));
    try {
      const started = await s.gql<{ restoreBackup: { operation: { operationId: string } } }>(RESTORE, { input: { backupId: b.id, components: ['DATABASES'], safetyBackup: false } });
      const opId = started.data!.restoreBackup.operation.operationId;
      await expect.poll(async () => (await s.app.services.engine.logTail(opId, 50)).join('\n'), { timeout: 60_000, interval: 100 }).toContain("created missing users: ghost@%");
      expect(await userExists()).toBe(true);
      await s.gql(`mutation($id: ID!) { cancelOperation(id: $id) { __typename } }`, { id: opId });
      held.release();
      expect((await s.app.services.engine.waitFor(opId)).status).toBe('CANCELLED');
      expect((await s.app.services.engine.logTail(opId, 50)).join('\n')).toContain('dropped the users this restore created: ghost@%');
      expect(await userExists()).toBe(false);
    } finally {
      held.release();
    }

    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, components: ['DATABASES'] } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(await mariadbTableDigests(db, 'ghost')).toEqual(before);
    // The schema did not exist: nothing was replaced, and the log does not say something was kept.
    const log = (await s.app.services.engine.logTail(rec.id, 100)).join('\n');
    expect(log).toMatch(/swapped in mysql:ghost\n/);
    expect(log).not.toMatch(/kept as ghost_wbo_/);
    // The app's own login: its user, its password from secrets.yaml, its grants on the schema.
    const password = String((await s.app.services.store.secrets('test')).apps?.ghost?.dbPassword);
    const { stdout } = await run('mariadb', ['--no-defaults', '-h', '127.0.0.1', '-P', String(db.port), '-u', 'ghost', '-N', '-B', '-e', 'select count(*) from ghost.posts'], { env: { ...process.env, MYSQL_PWD: password } });
    expect(Number(stdout.trim())).toBeGreaterThan(0);
  }, 240_000);

  it('restores an older backup while a newer one exists, and the newer one stays restorable', async () => {
    const pg = s.sim.databases.postgres!;
    const older = await backup('gitea');
    const olderRows = await pgTableDigests(pg, 'gitea');
    await pg.query(`create table only_in_newer (x int); insert into only_in_newer values (2)`, 'gitea');
    const newer = await backup('gitea');
    const newerRows = await pgTableDigests(pg, 'gitea');
    expect(newerRows).not.toEqual(olderRows);
    const r1 = await s.runOperation(RESTORE, { input: { backupId: older.id, components: ['DATABASES'], safetyBackup: false } });
    expect(r1.status, JSON.stringify(r1.error)).toBe('SUCCEEDED');
    expect(await pgTableDigests(pg, 'gitea')).toEqual(olderRows);
    const r2 = await s.runOperation(RESTORE, { input: { backupId: newer.backupId, components: ['DATABASES'], safetyBackup: false } });
    expect(r2.status, JSON.stringify(r2.error)).toBe('SUCCEEDED');
    expect(await pgTableDigests(pg, 'gitea')).toEqual(newerRows);
  }, 240_000);

  it('a cancelled restore leaves the data and the replicas as they were', async () => {
    const pvc = s.sim.pvcDir('gitea', 'gitea-data');
    await writeFile(path.join(pvc, 'big.bin'), Buffer.alloc(80 << 20, 1));
    const b = await backup('gitea');
    await rm(path.join(pvc, 'big.bin'));
    await writeFile(path.join(pvc, 'after.txt'), 'still here');
    const filesBefore = await treeDigest(pvc, { skip: NESTED });
    const dbBefore = await pgTableDigests(s.sim.databases.postgres!, 'gitea');
    const replicasBefore = await replicas('gitea');
    const res = await s.gql<{ restoreBackup: { operation: { operationId: string } } }>(RESTORE, { input: { backupId: b.id, safetyBackup: false } });
    const opId = res.data!.restoreBackup.operation.operationId;
    for await (const ev of s.app.services.pubsub.subscribe(`operation:${opId}`, { bufferSize: 10_000 })) {
      if (/^restoring .*\bpvc:/.test(ev.operation.progress.phase) && ev.operation.progress.bytesDone > 0) break;
      if (ev.type === 'FINISHED') break;
    }
    await s.gql(`mutation($id: ID!) { cancelOperation(id: $id) { __typename } }`, { id: opId });
    const rec = await s.app.services.engine.waitFor(opId);
    expect(rec.status).toBe('CANCELLED');
    expect(await treeDigest(pvc, { skip: NESTED })).toEqual(filesBefore);
    expect(await pgTableDigests(s.sim.databases.postgres!, 'gitea')).toEqual(dbBefore);
    expect(await replicas('gitea')).toEqual(replicasBefore);
    expect(openExecSockets()).toBe(0);
  }, 240_000);

  it("CONFIG alone comes back with the app still running: it is Wild Central's files, not the cluster's", async () => {
    const b = await backup('gitea');
    const configFile = s.app.services.store.paths.configFile('test');
    const { setPath, updateYamlFile } = await import('../../src/wild/writer.js');
    await updateYamlFile(configFile, (doc) => { setPath(doc, ['apps', 'gitea', 'timezone'], 'Pacific/Auckland'); }, 0o644);
    const d = () => { const x = s.sim.kube.runtime.store.list('deployments', 'gitea')[0]!; return { generation: x.metadata.generation, replicas: (x.spec as { replicas?: number }).replicas }; };
    const before = d();
    const pod = s.sim.kube.runtime.store.list('pods', 'gitea')[0]!.metadata.name;
    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, components: ['CONFIG'] } });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect((await s.app.services.store.requireInstance('test')).config.apps?.gitea?.timezone).toBe('UTC');
    expect(d(), 'never scaled').toEqual(before);
    expect(s.sim.kube.runtime.store.list('pods', 'gitea').map((p) => p.metadata.name)).toEqual([pod]);
    expect((await s.app.services.engine.logTail(rec.id, 100)).join('\n')).toContain('the app keeps running');
  }, 180_000);

  it('refuses bad requests with typed errors and changes nothing', async () => {
    const b = await backup('ghost');
    const empty = await backup('whoami');
    const operationsBefore = (await s.app.services.engine.list({})).length;
    const cases: Array<[Record<string, unknown>, string, RegExp?]> = [
      [{ backupId: 'nope' }, 'NotFoundError'],
      [{ backupId: b.id, targetApp: '../../etc' }, 'ValidationError'],
      [{ backupId: b.id, targetApp: 'no-such-app' }, 'NotFoundError'],
      [{ backupId: b.id, targetApp: 'gitea', components: ['CONFIG'] }, 'ValidationError'],
      [{ backupId: b.id, components: [] }, 'ValidationError', /at least one component/],
      // ghost's MariaDB schema has nowhere to go in gitea, which uses PostgreSQL.
      [{ backupId: b.id, targetApp: 'gitea' }, 'ValidationError', /"gitea" uses no mysql database/],
      [{ backupId: b.id, targetApp: 'gitea', components: ['DATABASES'] }, 'ValidationError', /uses no mysql database/],
      // An app with no data: its backup holds only its config.
      [{ backupId: empty.id, components: ['DATABASES', 'VOLUMES'] }, 'ValidationError', /holds nothing of DATABASES, VOLUMES/],
    ];
    for (const [input, type, message] of cases) {
      const res = await s.gql<{ restoreBackup: { __typename: string; message?: string } }>(RESTORE, { input });
      expect(res.data?.restoreBackup.__typename, JSON.stringify(input)).toBe(type);
      if (message) expect(res.data?.restoreBackup.message).toMatch(message);
    }
    expect((await s.app.services.engine.list({})).length, 'no operation was started').toBe(operationsBefore);
  });

  it('fails a restore into an app without the volume before its safety backup, with the app running', async () => {
    // gitea's volume into ghost: no database comes along, and ghost has no PVC gitea-data.
    const b = await backup('gitea');
    const ghostFiles = await treeDigest(s.sim.pvcDir('ghost', 'ghost-content'));
    const replicasBefore = await replicas('ghost');
    const rec = await s.runOperation(RESTORE, { input: { backupId: b.id, targetApp: 'ghost', components: ['VOLUMES'] } });
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.message).toMatch(/pvc:gitea-data: ghost has no volume gitea-data to restore into \(namespace ghost has only ghost-content\)/);
    expect((await s.app.services.engine.logTail(rec.id, 50)).join('\n')).not.toMatch(/safety backup|quiesced/);
    expect(rec.backupId ?? null, 'no safety backup was made').toBeNull();
    expect(await replicas('ghost')).toEqual(replicasBefore);
    expect(await treeDigest(s.sim.pvcDir('ghost', 'ghost-content'))).toEqual(ghostFiles);
  }, 120_000);
});

describe('verifyBackup', () => {
  it('restores every artifact into scratch space, compares with the manifest, cleans up, and the result outlives a restart', async () => {
    const b = await backup('gitea');
    const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    const q = `query($id: ID!) { node(id: $id) { ... on Backup { verification { ok details verifiedAt } } } }`;
    const v = await s.gql<{ node: { verification: { ok: boolean; details: string } } }>(q, { id: b.id });
    expect(v.data!.node.verification.ok).toBe(true);
    expect(v.data!.node.verification.details).toMatch(/database gitea: \d+ tables, \d+ rows, as recorded/);
    expect(v.data!.node.verification.details).toMatch(/volume gitea-data: \d+ files, \d+ bytes, listing as recorded/);
    // The app's settings and its roles, which a restore also reads, are read back whole.
    expect(rec.message).toBe(`backup ${b.backupId} verified: 2 artifacts restored and 2 read back and checked`);
    expect(v.data!.node.verification.details).toMatch(/config:gitea: \d+ files, \d+ bytes read back whole, as recorded/);
    expect(v.data!.node.verification.details).toMatch(/postgres-roles:gitea: \d+ bytes read back whole, as recorded/);
    expect((await s.sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea_wb%'`)).trim()).toBe('');
    // Another server on the same data directory (a restart) still knows the result.
    const { buildApp } = await import('../../src/server.js');
    await s.app.stop();
    s.app = await buildApp({ dataDir: s.sim.dataDir, port: 0, env: { WILD_BACKUP_TOKEN: 'test-admin-token-0123456789abcdef', WILD_BACKUP_READONLY_TOKEN: 'test-readonly-token-0123456789abcdef' } });
    const again = await s.gql<{ node: { verification: { ok: boolean } } }>(q, { id: b.id });
    expect(again.data!.node.verification.ok).toBe(true);
  }, 240_000);

  it("fails when the app's settings do not read back as recorded, naming them", async () => {
    const b = await backup('gitea');
    const svc = s.app.services;
    const config = (await svc.backups.get(await svc.store.requireInstance('test'), b.backupId))!.manifest!.artifacts.find((a) => a.kind === 'config')!;
    config.sizeBytes += 512; // as a snapshot that lost a block would read back
    try {
      const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.message).toMatch(/^verification of \S+ failed: config:gitea: \d+ bytes read back, the backup recorded \d+$/);
    } finally {
      config.sizeBytes -= 512;
    }
  }, 120_000);
});
