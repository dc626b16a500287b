// Restoring a database server app (postgres): its backup is a whole-server dump (postgres:all),
// which is for rebuilding a server, not for restoreBackup. The restore is refused up front, before
// a safety backup is taken or the shared server (which every app's database lives on) is scaled down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgTableDigests } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
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
