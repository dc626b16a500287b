// Restores refused up front, before a safety backup is taken or anything is scaled down:
// - a database server app (postgres): its backup is a whole-server dump (postgres:all), which is
//   for rebuilding a server, not for restoreBackup; nor is it a clone target for an app's database;
// - an app restored in place whose database setting changed since the backup: the backup's
//   database is not the one the app uses, nor one the safety backup would keep.
// And the drill of a server app's backup: its whole-server dump is read back and checked, not loaded.
// And app backups and restores refused while config.yaml cannot be read (the app's settings are in it).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { pgTableDigests } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea', 'ghost'] });
  await initRepository(s);
}, 180_000);
afterAll(async () => { await s?.close(); });

const RESTORE = `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ${OP_FIELDS} } }`;

function serverDeployment(): { replicas: unknown; generation: unknown } {
  const d = s.sim.kube.runtime.store.list('deployments', 'postgres')[0]!;
  return { replicas: (d.spec as { replicas?: number }).replicas, generation: d.metadata.generation };
}

describe('restoring the postgres server app', () => {
  it('is refused before anything happens: no operation, no safety backup, the server never scaled down', async () => {
    const pg = s.sim.databases.postgres!;
    const b = await backupLatest(s, 'postgres');
    const arts = await s.gql<{ node: { artifacts: Array<{ kind: string; name: string }> } }>(`query($id: ID!) { node(id: $id) { ... on Backup { artifacts { kind name } } } }`, { id: b.id });
    expect(arts.data!.node.artifacts).toContainEqual({ kind: 'postgres', name: 'all' });
    const deploymentBefore = serverDeployment();
    expect(deploymentBefore.replicas).toBe(1);
    const giteaBefore = await pgTableDigests(pg, 'gitea');
    const backupsBefore = await s.app.services.backups.list(await s.app.services.store.requireInstance('test'), { app: 'postgres' });

    const res = await s.gql<{ restoreBackup: { __typename: string; code?: string; message?: string; operation?: unknown } }>(RESTORE, { input: { backupId: b.id } });
    expect(res.errors).toBeUndefined();
    expect(res.data!.restoreBackup).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
    expect(res.data!.restoreBackup.message).toMatch(/whole-server dump/);
    expect(res.data!.restoreBackup.message).toMatch(/restore each app from its own backup/i);

    // Nothing started: no restore operation, no safety backup, the shared server untouched.
    await new Promise((r) => setTimeout(r, 500));
    expect(s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'RESTORE_APP')).toEqual([]);
    const backupsAfter = await s.app.services.backups.list(await s.app.services.store.requireInstance('test'), { app: 'postgres' });
    expect(backupsAfter.map((x) => x.backupId)).toEqual(backupsBefore.map((x) => x.backupId));
    expect(backupsAfter.filter((x) => x.manifest?.reason === 'safety')).toEqual([]);
    expect(serverDeployment()).toEqual(deploymentBefore);
    expect(await pgTableDigests(pg, 'gitea')).toEqual(giteaBefore);
  }, 240_000);
});

describe('cloning an app into a database server app', () => {
  it('is refused before anything happens, whatever the components: the server is not stopped, no whole-server safety backup', async () => {
    const pg = s.sim.databases.postgres!;
    const b = await backupLatest(s, 'gitea');
    const deploymentBefore = serverDeployment();
    const databasesBefore = await pg.query('select datname from pg_database order by 1');
    const backupsBefore = (await s.app.services.backups.list(await s.app.services.store.requireInstance('test'), { app: 'postgres' })).map((x) => x.backupId);
    const restoresBefore = s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'RESTORE_APP').length;
    for (const components of [undefined, ['DATABASES']]) {
      const res = await s.gql<{ restoreBackup: { __typename: string; code?: string; message?: string } }>(RESTORE, { input: { backupId: b.id, targetApp: 'postgres', components } });
      expect(res.errors).toBeUndefined();
      expect(res.data!.restoreBackup, JSON.stringify(components)).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED' });
      expect(res.data!.restoreBackup.message).toMatch(/"postgres" is the postgres server itself/);
    }
    expect(s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'RESTORE_APP').length).toBe(restoresBefore);
    expect((await s.app.services.backups.list(await s.app.services.store.requireInstance('test'), { app: 'postgres' })).map((x) => x.backupId)).toEqual(backupsBefore);
    expect(serverDeployment()).toEqual(deploymentBefore);
    expect(await pg.query('select datname from pg_database order by 1')).toBe(databasesBefore);
  }, 120_000);
});

describe('restoring in place after the app\'s database setting changed', () => {
  it('is refused, whatever the components, and nothing happens; once the setting is back it restores', async () => {
    const pg = s.sim.databases.postgres!;
    const b = await backupLatest(s, 'gitea');
    const config = path.join(s.sim.instanceDir, 'config.yaml');
    const giteaBefore = await pgTableDigests(pg, 'gitea');
    const restoresBefore = s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'RESTORE_APP').length;
    await updateYamlFile(config, (doc) => setPath(doc, ['apps', 'gitea', 'dbName'], 'gitea_new'), 0o644);
    try {
      for (const components of [['DATABASES'], undefined]) {
        const res = await s.gql<{ restoreBackup: { __typename: string; message?: string } }>(RESTORE, { input: { backupId: b.id, ...(components ? { components } : {}) } });
        expect(res.errors).toBeUndefined();
        expect(res.data!.restoreBackup).toMatchObject({ __typename: 'ValidationError' });
        expect(res.data!.restoreBackup.message).toMatch(/postgres database "gitea" is not the one gitea uses now \("gitea_new"\)/);
        expect(res.data!.restoreBackup.message).toMatch(/targetApp/);
      }
      await new Promise((r) => setTimeout(r, 500));
      expect(s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'RESTORE_APP')).toHaveLength(restoresBefore);
      expect(await pgTableDigests(pg, 'gitea')).toEqual(giteaBefore);
    } finally {
      await updateYamlFile(config, (doc) => setPath(doc, ['apps', 'gitea', 'dbName'], 'gitea'), 0o644);
    }
    // The same restore with the setting back is accepted and succeeds: the refusal was the name.
    const res = await s.gql<{ restoreBackup: { __typename: string; operation?: { operationId: string } } }>(RESTORE, { input: { backupId: b.id, components: ['DATABASES'], safetyBackup: false } });
    expect(res.data!.restoreBackup.__typename).toBe('OperationPayload');
    const rec = await s.app.services.engine.waitFor(res.data!.restoreBackup.operation!.operationId);
    expect(rec.status).toBe('SUCCEEDED');
    expect(await pgTableDigests(pg, 'gitea')).toEqual(giteaBefore);
  }, 240_000);
});

describe('verifying the database server apps', () => {
  it('reads each whole-server dump back whole, ending with its tool\'s completion line, and passes', async () => {
    for (const [app, tool, database] of [['postgres', 'pg_dumpall', 'gitea'], ['mysql', 'mysqldump', 'ghost']] as const) {
      const b = await backupLatest(s, app);
      const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
      expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
      const v = await s.gql<{ node: { sizeBytes: number; verification: { ok: boolean; details: string } } }>(`query($id: ID!) { node(id: $id) { ... on Backup { sizeBytes verification { ok details } } } }`, { id: b.id });
      const { ok, details } = v.data!.node.verification;
      expect(ok, details).toBe(true);
      const m = new RegExp(`^${app}:all: (\\d+) bytes read back whole, (\\d+) databases, ending with ${tool}'s completion line`).exec(details);
      expect(m, details).not.toBeNull();
      // The server's only artifact besides its config: the dump is most of the backup.
      expect(Number(m![1])).toBeGreaterThan(0.5 * v.data!.node.sizeBytes);
      expect(Number(m![2])).toBeGreaterThanOrEqual(1);
      // And the app's database is in it.
      const repo = await s.app.services.repositories.open(await s.app.services.store.requireInstance('test'));
      const node = await s.gql<{ node: { artifacts: Array<{ kind: string; name: string; snapshot: { snapshotId: string; paths: string[] } }> } }>(`query($id: ID!) { node(id: $id) { ... on Backup { artifacts { kind name snapshot { snapshotId paths } } } } }`, { id: b.id });
      const art = node.data!.node.artifacts.find((a) => a.name === 'all')!;
      let text = '';
      for await (const chunk of repo.dump(art.snapshot.snapshotId, art.snapshot.paths[0]!)) text += (chunk as Buffer).toString('latin1');
      expect(text).toMatch(new RegExp(`\\nCREATE DATABASE (/\\*[^*]*\\*/ )?\\W?${database}\\W`));
    }
  }, 240_000);
});

describe('while config.yaml cannot be read', () => {
  it('app backups and restores are refused up front, and backupHealth says why; once mended they run', async () => {
    const b = await backupLatest(s, 'gitea');
    const file = path.join(s.sim.instanceDir, 'config.yaml');
    const { appendFile, readFile: read, writeFile: write } = await import('node:fs/promises');
    const good = await read(file, 'utf8');
    const operationsBefore = s.app.services.engine.list({ instance: 'test' }).length;
    await appendFile(file, 'cloud:\n  backup: [unclosed\n');
    try {
      const backup = await s.gql<{ backupApp: { __typename: string; message?: string } }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
      expect(backup.data!.backupApp).toMatchObject({ __typename: 'ValidationError', message: expect.stringMatching(/^a backup of "gitea" needs the app's settings from config\.yaml, which cannot be read now; mend it first: instances\/test\/config\.yaml/) });
      const restore = await s.gql<{ restoreBackup: { __typename: string; message?: string } }>(RESTORE, { input: { backupId: b.id } });
      expect(restore.data!.restoreBackup).toMatchObject({ __typename: 'ValidationError', message: expect.stringMatching(/^a restore into "gitea" needs the app's settings from config\.yaml/) });
      expect(s.app.services.engine.list({ instance: 'test' }).length, 'no operation was started').toBe(operationsBefore);
      const health = await s.gql<{ instance: { backupHealth: { apps: Array<{ app: { name: string }; reason: string | null }> } } }>(`{ instance(name: "test") { backupHealth { apps { app { name } reason } } } }`);
      for (const a of health.data!.instance.backupHealth.apps) expect(a.reason, a.app.name).toMatch(/config\.yaml cannot be read \(.+\): no app is backed up until it is mended$/);
    } finally {
      await write(file, good);
    }
    const again = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
    expect(again.status, JSON.stringify(again.error)).toBe('SUCCEEDED');
  }, 120_000);
});
