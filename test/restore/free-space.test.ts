// Room for a side copy is checked before it is made. A restore or a drill writes its copy beside
// the live data on the same volume (the database server's, shared by every app using it, or the
// app's own PVC): one that would not fit fails with NOT_ENOUGH_SPACE, naming the volume, and
// changes nothing; a restore finds out before it stops the app or takes its safety backup. The backups record the database's size for this (meta.databaseBytes).
import { statfs } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELPER_LABEL, kubeClientFor, listPods, listWorkloads } from '../../src/kube/index.js';
import type { ArtifactRecord } from '../../src/engine/backup/manifest.js';
import { pgTableDigests, treeDigest } from '../helpers/compare.js';
import { holdExecs, initRepository, OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let backupId = '';
let nodeId = '';
const NESTED = (rel: string) => rel === 'gitea/conf/app.ini';

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea', 'ghost'] });
  await initRepository(s);
  const rec = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  backupId = rec.backupId!;
  const b = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "gitea") { latestBackup { id } } } }`);
  nodeId = b.data!.instance.app.latestBackup.id;
}, 180_000);
afterAll(async () => { await s?.close(); });

/** An artifact of the manifest the server holds (the catalog keeps one object per backup). */
async function artifactOf(kind: string, id = backupId): Promise<ArtifactRecord> {
  const svc = s.app.services;
  const view = await svc.backups.get(await svc.store.requireInstance('test'), id);
  return view!.manifest!.artifacts.find((a) => a.kind === kind)!;
}

async function freeBytes(dir: string): Promise<number> {
  const st = await statfs(dir);
  return st.bavail * st.bsize;
}

async function liveState() {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  return {
    rows: await pgTableDigests(s.sim.databases.postgres!, 'gitea'),
    files: await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'), { skip: NESTED }),
    replicas: Object.fromEntries((await listWorkloads(client, 'gitea')).map((w) => [`${w.kind}/${w.name}`, w.replicas])),
  };
}

/** The app's Deployment as the cluster holds it: a scale-down and back changes its generation. */
function giteaDeployment(): { replicas: unknown; generation: unknown } {
  const d = s.sim.kube.runtime.store.list('deployments', 'gitea')[0]!;
  return { replicas: (d.spec as { replicas?: number }).replicas, generation: d.metadata.generation };
}

async function backupIds(): Promise<string[]> {
  return (await s.app.services.backups.list(await s.app.services.store.requireInstance('test'), { app: 'gitea' })).map((b) => b.backupId);
}

async function expectNothingLeft(): Promise<void> {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  expect((await s.sim.databases.postgres!.query(`select datname from pg_database where datname like 'gitea_w%'`)).trim()).toBe('');
  expect(Object.keys(await treeDigest(s.sim.pvcDir('gitea', 'gitea-data'))).filter((k) => k.startsWith('.wild-backup'))).toEqual([]);
  await expect.poll(async () => (await listPods(client, 'gitea', `${HELPER_LABEL}=true`)).length, { timeout: 20_000 }).toBe(0);
}

describe('room for a side copy', () => {
  it('the backup records the database size a side copy needs', async () => {
    const pg = await artifactOf('postgres');
    const size = Number(await s.sim.databases.postgres!.query(`select pg_database_size('gitea')`));
    expect(pg.meta.databaseBytes).toBeGreaterThan(pg.sizeBytes);
    expect(Math.abs(Number(pg.meta.databaseBytes) - size) / size).toBeLessThan(0.5);
  });

  it('the database size is recorded even when the dump ends before its estimate (PostgreSQL and MariaDB)', async () => {
    // The streams start while the estimates run: a small database's dump can end first.
    for (const [app, kind, marker] of [['gitea', 'postgres', 'pg_table_size'], ['ghost', 'mysql', 'sum(data_length + index_length)']] as const) {
      const held = holdExecs(s, (command) => command.some((a) => a.includes(marker)));
      const timer = setTimeout(() => held.release(), 3000);
      try {
        const rec = await s.runOperation(`mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
        expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
        const art = await artifactOf(kind, rec.backupId!);
        expect(Number(art.meta.databaseBytes), `${kind}: ${JSON.stringify(art.meta)}`).toBeGreaterThan(art.sizeBytes);
      } finally {
        clearTimeout(timer);
        held.release();
      }
    }
  }, 120_000);

  it("the progress's estimate of a database is its tables' size, not the database's: indexes and catalogs are not dumped", async () => {
    const pg = await artifactOf('postgres');
    const op = s.app.services.engine.list({ instance: 'test' }).find((o) => o.backupId === backupId)!;
    const line = (await s.app.services.engine.logTail(op.id, 200)).find((l) => l.includes('postgres:gitea: about'))!;
    const estimate = Number(/about (\d+) bytes/.exec(line)![1]);
    // The database is mostly catalogs here: its size is over ten times its dump's.
    expect(Number(pg.meta.databaseBytes)).toBeGreaterThan(10 * pg.sizeBytes);
    expect(estimate / pg.sizeBytes, line).toBeGreaterThan(0.5);
    expect(estimate / pg.sizeBytes, line).toBeLessThan(3); // whole 8 KiB pages of a few rows
  });

  it('a volume without room for the restored copy: NOT_ENOUGH_SPACE before the app is stopped or a safety backup taken, the live data as it was', async () => {
    const before = await liveState();
    const deployment = giteaDeployment();
    const backupsBefore = await backupIds();
    const pvc = await artifactOf('pvc');
    const saved = pvc.sizeBytes;
    pvc.sizeBytes = (await freeBytes(s.sim.pvcDir('gitea', 'gitea-data'))) + (1 << 30);
    try {
      const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`, { id: nodeId });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.code).toBe('NOT_ENOUGH_SPACE');
      expect(rec.error?.message).toMatch(/^pvc:gitea-data: not enough free space for the restored copy of volume gitea-data, .* only [\d.]+ GiB of [\d.]+ GiB is free\. Nothing was changed/);
    } finally {
      pvc.sizeBytes = saved;
    }
    expect(await liveState()).toEqual(before);
    expect(giteaDeployment(), 'never scaled down').toEqual(deployment);
    expect(await backupIds(), 'no safety backup').toEqual(backupsBefore);
    await expectNothingLeft();
  }, 120_000);

  it('a database server without room for the side database: the restore fails before the app is stopped', async () => {
    const deployment = giteaDeployment();
    const pg = await artifactOf('postgres');
    const saved = pg.meta.databaseBytes;
    const dataDir = (await s.sim.databases.postgres!.query('show data_directory')).trim();
    pg.meta.databaseBytes = (await freeBytes(dataDir)) + (1 << 30);
    try {
      const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, components: [DATABASES] }) { ${OP_FIELDS} } }`, { id: nodeId });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.code).toBe('NOT_ENOUGH_SPACE');
      expect(rec.error?.message).toMatch(/^postgres:gitea: not enough free space for a side copy of database gitea on the PostgreSQL server's volume/);
    } finally {
      pg.meta.databaseBytes = saved;
    }
    expect(giteaDeployment(), 'never scaled down').toEqual(deployment);
    await expectNothingLeft();
  }, 120_000);

  it('a database server without room for a drill\'s side database: the drill fails naming it, no side database made', async () => {
    const pg = await artifactOf('postgres');
    const saved = pg.meta.databaseBytes;
    const dataDir = (await s.sim.databases.postgres!.query('show data_directory')).trim();
    pg.meta.databaseBytes = (await freeBytes(dataDir)) + (1 << 30);
    try {
      const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: nodeId });
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.message).toMatch(/postgres:gitea: not enough free space for the side database gitea_wbr_\w+ on the PostgreSQL server's volume/);
    } finally {
      pg.meta.databaseBytes = saved;
    }
    await expectNothingLeft();
    // With the recorded size back, the same drill passes: the check is not what failed it.
    const ok = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: nodeId });
    expect(ok.status, JSON.stringify(ok.error)).toBe('SUCCEEDED');
  }, 120_000);

  it('MariaDB: the backup records the schema size, and a server without room for the side schema fails the drill naming it', async () => {
    const rec = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "ghost" }) { ${OP_FIELDS} } }`);
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    const my = await artifactOf('mysql', rec.backupId!);
    expect(my.meta.databaseBytes).toBeGreaterThan(0);
    // The estimate leaves the indexes out (mysqldump writes only their definitions).
    const line = (await s.app.services.engine.logTail(rec.id, 200)).find((l) => l.includes('mysql:ghost: about'))!;
    expect(Number(/about (\d+) bytes/.exec(line)![1]), line).toBeLessThan(Number(my.meta.databaseBytes));
    const ghost = await s.gql<{ instance: { app: { latestBackup: { id: string } } } }>(`{ instance(name: "test") { app(name: "ghost") { latestBackup { id } } } }`);
    const dataDir = (await s.sim.databases.mysql!.query('select @@datadir')).trim();
    my.meta.databaseBytes = (await freeBytes(dataDir)) + (1 << 30);
    const drill = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: ghost.data!.instance.app.latestBackup.id });
    expect(drill.status).toBe('FAILED');
    expect(drill.error?.message).toMatch(/mysql:ghost: not enough free space for the side schema ghost_wbr_\w+ on the MariaDB server's volume/);
    expect((await s.sim.databases.mysql!.query(`select schema_name from information_schema.schemata where schema_name like 'ghost\\_w%'`)).trim()).toBe('');
  }, 120_000);
});
