// backupApp end to end against the simulated cluster, through GraphQL: every demo app gets a
// COMPLETE backup, and what restic gives back, loaded into a fresh server or untarred, equals the
// source: same rows, same files, same bytes, same modes.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResticRepository } from '../../src/engine/restic/index.js';
import { mariadbLoad, mariadbTableDigests, pgRestore, pgTableDigests, treeDigest, untar } from '../helpers/compare.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let repo: ResticRepository;
let scratch: string;

beforeAll(async () => {
  s = await startSimApp();
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
  repo = await s.app.services.repositories.open(await s.app.services.store.requireInstance('test'));
  scratch = await mkdtemp(path.join(os.tmpdir(), 'wild-verify-'));
}, 180_000);
afterAll(async () => {
  await s?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

interface BackupNode {
  backupId: string; status: string; sizeBytes: number; skipped: string[];
  artifacts: Array<{ kind: string; name: string; sizeBytes: number; snapshot: { snapshotId: string; paths: string[] } }>;
}

const BACKUP_OF = `query($app: String!) { instance(name: "test") { app(name: $app) { latestBackup { backupId status sizeBytes skipped artifacts { kind name sizeBytes snapshot { snapshotId paths } } } } } }`;

async function backupApp(app: string): Promise<BackupNode> {
  const done = await s.runOperation(`mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
  expect(done.status, `${app}: ${JSON.stringify(done.error)}`).toBe('SUCCEEDED');
  // Its message says what it holds and what it left out (immich's redis, a server's data directory).
  expect(done.message).toMatch(new RegExp(`^backup ${done.backupId}: \\d+ artifacts?, \\d+ bytes(; skipped \\S+)?$`));
  if (app === 'immich') expect(done.message).toMatch(/; skipped redis:redis$/);
  const res = await s.gql<{ instance: { app: { latestBackup: BackupNode } } }>(BACKUP_OF, { app });
  const b = res.data!.instance.app.latestBackup;
  expect(b.backupId).toBe(done.backupId);
  expect(b.status).toBe('COMPLETE');
  return b;
}

const dumpOf = (a: BackupNode['artifacts'][number]) => repo.dump(a.snapshot.snapshotId, a.snapshot.paths[0]!);

/**
 * Files that other volumes mount inside a PVC's mount path (gitea's app.ini, a configMap by
 * subPath) are not volume data: the backup leaves them out. The sim writes them into the PVC's
 * host directory, so the comparison leaves them out too.
 */
const NESTED_MOUNTS: Record<string, string[]> = { 'gitea-data': ['gitea/conf/app.ini'] };

async function expectVolumeEqual(b: BackupNode, namespace: string, pvc: string): Promise<void> {
  const art = b.artifacts.find((a) => a.kind === 'pvc' && a.name === pvc)!;
  expect(art, `artifact pvc:${pvc}`).toBeDefined();
  const dir = await mkdtemp(path.join(scratch, `${pvc}-`));
  await untar(dumpOf(art), dir);
  const restored = await treeDigest(dir);
  const nested = NESTED_MOUNTS[pvc] ?? [];
  const source = await treeDigest(s.sim.pvcDir(namespace, pvc), { skip: (rel) => nested.includes(rel) });
  for (const n of nested) expect(restored[n], `${n} is a nested mount, not volume data`).toBeUndefined();
  expect(Object.keys(restored).length).toBeGreaterThan(0);
  expect(restored).toEqual(source);
}

async function expectPostgresEqual(b: BackupNode, db: string): Promise<void> {
  const art = b.artifacts.find((a) => a.kind === 'postgres' && a.name === db)!;
  expect(art, `artifact postgres:${db}`).toBeDefined();
  const pg = s.sim.databases.postgres!;
  await pgRestore(pg, dumpOf(art), `verify_${db}`);
  const source = await pgTableDigests(pg, db);
  expect(Object.keys(source).length).toBeGreaterThan(0);
  expect(await pgTableDigests(pg, `verify_${db}`)).toEqual(source);
}

describe('backupApp', () => {
  it('gitea: postgres + PVC, restorable byte for byte and row for row', async () => {
    const b = await backupApp('gitea');
    expect(b.artifacts.map((a) => `${a.kind}:${a.name}`).sort()).toEqual(['config:gitea', 'manifest:backup.json', 'postgres-roles:gitea', 'postgres:gitea', 'pvc:gitea-data']);
    // Each artifact's size is what its snapshot holds, backup.json's own included.
    for (const a of b.artifacts) {
      let n = 0;
      for await (const chunk of dumpOf(a)) n += (chunk as Buffer).length;
      expect(a.sizeBytes, `${a.kind}:${a.name}`).toBe(n);
      expect(n, `${a.kind}:${a.name}`).toBeGreaterThan(0);
    }
    await expectPostgresEqual(b, 'gitea');
    await expectVolumeEqual(b, 'gitea', 'gitea-data');
  });

  it('immich: postgres + two PVCs, redis skipped with its reason', async () => {
    const b = await backupApp('immich');
    expect(b.artifacts.map((a) => `${a.kind}:${a.name}`).sort()).toEqual(['config:immich', 'manifest:backup.json', 'postgres-roles:immich', 'postgres:immich', 'pvc:immich-cache-pvc', 'pvc:immich-pvc']);
    expect(b.skipped).toEqual([expect.stringMatching(/^redis:.*cache/)]);
    await expectPostgresEqual(b, 'immich');
    await expectVolumeEqual(b, 'immich', 'immich-pvc');
    await expectVolumeEqual(b, 'immich', 'immich-cache-pvc');
  });

  it('ghost: mysql + PVC', async () => {
    const b = await backupApp('ghost');
    const pvcs = b.artifacts.filter((a) => a.kind === 'pvc').map((a) => a.name);
    expect(b.artifacts.some((a) => a.kind === 'mysql')).toBe(true);
    const art = b.artifacts.find((a) => a.kind === 'mysql')!;
    const db = s.sim.databases.mysql!;
    await mariadbLoad(db, dumpOf(art), 'verify_ghost');
    const source = await mariadbTableDigests(db, art.name);
    expect(Object.keys(source).length).toBeGreaterThan(0);
    expect(await mariadbTableDigests(db, 'verify_ghost')).toEqual(source);
    for (const p of pvcs) await expectVolumeEqual(b, 'ghost', p);
    expect(pvcs.length).toBeGreaterThan(0);
  });

  it('the static website (a PVC only) and the app with no data', async () => {
    const site = await backupApp('website');
    expect(site.artifacts.map((a) => a.kind).sort()).toEqual(['config', 'manifest', 'pvc']);
    await expectVolumeEqual(site, 'website', 'website-content');
    const empty = await backupApp('whoami');
    expect(empty.artifacts.map((a) => a.kind).sort()).toEqual(['config', 'manifest']);
  });

  it('the database servers: a logical dump of the whole server, never a tar of the data directory', async () => {
    const pg = await backupApp('postgres');
    expect(pg.artifacts.map((a) => `${a.kind}:${a.name}`).sort()).toEqual(['config:postgres', 'manifest:backup.json', 'postgres:all']);
    expect(pg.skipped).toEqual([expect.stringContaining('pvc:postgres-pvc')]);
    const sql = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const st = dumpOf(pg.artifacts.find((a) => a.kind === 'postgres')!);
      st.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks).toString())).on('error', reject);
    });
    expect(sql).toContain('CREATE ROLE gitea');
    expect(sql).toMatch(/CREATE DATABASE immich/);
    const my = await backupApp('mysql');
    expect(my.artifacts.map((a) => `${a.kind}:${a.name}`).sort()).toEqual(['config:mysql', 'manifest:backup.json', 'mysql:all']);
  });

  it('backupCluster: the instance\'s own files, and the etcd snapshot skipped with its reason', async () => {
    // Two asked at once: the second is refused while the first is under way, as for an app.
    const [first, second] = await Promise.all([0, 1].map(() => s.gql<{ backupCluster: { __typename: string; message?: string; operation?: { operationId: string } } }>(
      `mutation { backupCluster(input: { instance: "test" }) { ${OP_FIELDS} } }`)));
    const answers = [first!.data!.backupCluster, second!.data!.backupCluster];
    expect(answers.map((a) => a.__typename).sort()).toEqual(['ConflictError', 'OperationPayload']);
    const started = answers.find((a) => a.operation)!.operation!.operationId;
    expect(answers.find((a) => !a.operation)!.message).toMatch(new RegExp(`^instance "test" is busy with its backup, operation ${started} \\((QUEUED|RUNNING)\\)$`));
    const done = await s.app.services.engine.waitFor(started);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    // Its operation says what it wrote, as an app backup's does.
    expect(done.message).toMatch(new RegExp(`^backup ${done.backupId}: 1 artifact, \\d+ bytes; skipped etcd:test$`));
    const res = await s.gql<{ instance: { backups: { edges: Array<{ node: BackupNode & { kind: string; appName: string | null } }> } } }>(
      `{ instance(name: "test") { backups(kind: CLUSTER) { edges { node { backupId kind appName status skipped sizeBytes artifacts { kind name sizeBytes snapshot { snapshotId paths } } } } } } }`);
    const b = res.data!.instance.backups.edges[0]!.node;
    expect(b).toMatchObject({ kind: 'CLUSTER', appName: null, status: 'COMPLETE' });
    expect(b.skipped).toEqual([expect.stringMatching(/^etcd:test: (talosctl is not installed|no talos)/)]);
    const art = b.artifacts.find((a) => a.kind === 'cluster-config')!;
    const dir = await mkdtemp(path.join(scratch, 'cluster-'));
    await untar(dumpOf(art), dir);
    const { readFile } = await import('node:fs/promises');
    for (const f of ['config.yaml', 'secrets.yaml', 'kubeconfig']) {
      expect(await readFile(path.join(dir, f), 'utf8')).toBe(await readFile(path.join(s.sim.instanceDir, f), 'utf8'));
    }
    // restoreBackup does not write a cluster backup over the running instance's files, and says how it is used.
    const restore = await s.gql<{ restoreBackup: { __typename: string; message: string } }>(
      `mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { __typename ... on Error { message } } }`, { id: b.backupId });
    expect(restore.data!.restoreBackup).toEqual({ __typename: 'ValidationError', message: expect.stringMatching(new RegExp(`^backup ${b.backupId} is a cluster backup .*by hand with restic .*verifyBackup checks it$`)) });
    // Its drill reads each artifact back whole and checks it against the manifest.
    const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.backupId });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect(rec.message).toBe(`backup ${b.backupId} verified: 1 artifact read back and checked`);
    const v = await s.gql<{ instance: { backups: { edges: Array<{ node: { verification: { ok: boolean; details: string } | null } }> } } }>(
      `{ instance(name: "test") { backups(kind: CLUSTER) { edges { node { verification { ok details } } } } } }`);
    expect(v.data!.instance.backups.edges[0]!.node.verification).toEqual({
      ok: true,
      details: expect.stringMatching(new RegExp(`^cluster-config:test: [34] files \\(config\\.yaml, secrets\\.yaml, kubeconfig(, talos/generated/talosconfig)?\\), ${art.sizeBytes} bytes read back whole, as recorded$`)),
    });
  });

  it('refuses a second backup of a busy app with ConflictError and runs two apps side by side', async () => {
    const start = (app: string) => s.gql<{ backupApp: { __typename: string; operation?: { operationId: string } } }>(
      `mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
    const a = await start('gitea');
    const again = await start('gitea');
    const b = await start('website');
    expect(again.data!.backupApp.__typename).toBe('ConflictError');
    expect(b.data!.backupApp.__typename).toBe('OperationPayload');
    const ids = [a.data!.backupApp.operation!.operationId, b.data!.backupApp.operation!.operationId];
    const [ra, rb] = await Promise.all(ids.map((id) => s.app.services.engine.waitFor(id)));
    expect([ra!.status, rb!.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    // They overlapped in time: each started before the other finished.
    expect(ra!.startedAt! < rb!.finishedAt! && rb!.startedAt! < ra!.finishedAt!).toBe(true);
  });

  it('lists backups with pagination and deletes one', async () => {
    const page = await s.gql<{ instance: { backups: { totalCount: number; edges: Array<{ node: { id: string; appName: string } }>; pageInfo: { hasNextPage: boolean } } } }>(
      `{ instance(name: "test") { backups(app: "gitea", first: 1) { totalCount edges { node { id appName } } pageInfo { hasNextPage } } } }`);
    const conn = page.data!.instance.backups;
    expect(conn.totalCount).toBe(2);
    expect(conn.pageInfo.hasNextPage).toBe(true);
    const del = await s.runOperation(`mutation($id: ID!) { deleteBackup(id: $id) { ${OP_FIELDS} } }`, { id: conn.edges[0]!.node.id });
    expect(del.status).toBe('SUCCEEDED');
    const after = await s.gql<{ instance: { backups: { totalCount: number } } }>(`{ instance(name: "test") { backups(app: "gitea") { totalCount } } }`);
    expect(after.data!.instance.backups.totalCount).toBe(1);
  });
});
