// deleteBackup is a `restic forget`, which takes the repository's exclusive lock (restic 0.14):
// it cannot run beside another app's backup, whose restics hold their locks. Found in the demo:
// backups of eight apps and deletes of older backups at once, two deletes FAILED with "the
// repository ... is locked by another restic process". A delete now waits for the instance's
// running work, as retention and checks do, and goes through once it is done.
import { expect, it } from 'vitest';
import { OP_FIELDS, backupLatest, holdExecs, useSimApp } from '../helpers/sim-app.js';
import { lockFiles } from '../helpers/faults.js';

const suite = useSimApp(['website', 'gitea']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("waits for another app's running backup instead of failing on its lock", async () => {
  const s = suite();
  const old = await backupLatest(s, 'website');
  const repoUri = (await s.gql<{ instance: { repository: { uri: string } } }>(`{ instance(name: "test") { repository { uri } } }`)).data!.instance.repository.uri;
  const locks = () => lockFiles(repoUri);

  // gitea's backup runs, held: its dump and its volume's tar wait at the gate while their restics hold their locks.
  const held = holdExecs(s, (command) => ['tar', 'pg_dump'].includes(command[0] ?? ''));
  const engine = s.app.services.engine;
  try {
    const started = await s.gql<{ backupApp: { operation: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
    const backupOp = started.data!.backupApp.operation.operationId;
    for (let i = 0; i < 200 && (await locks()).length === 0; i++) await sleep(50);
    expect((await locks()).length, "gitea's restics hold their locks").toBeGreaterThan(0);

    const del = await s.gql<{ deleteBackup: { __typename: string; operation: { operationId: string } } }>(`mutation($id: ID!) { deleteBackup(id: $id) { ${OP_FIELDS} } }`, { id: old.id });
    expect(del.data!.deleteBackup.__typename).toBe('OperationPayload');
    const delOp = del.data!.deleteBackup.operation.operationId;
    await sleep(2_000);
    expect(engine.get(delOp)?.status, 'the delete waits its turn').toBe('QUEUED');
    expect(engine.get(backupOp)?.status).toBe('RUNNING');

    held.release();
    expect((await engine.waitFor(backupOp)).status).toBe('SUCCEEDED');
    const done = await engine.waitFor(delOp);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  } finally {
    held.release();
  }
  const left = await s.gql<{ instance: { backups: { edges: Array<{ node: { backupId: string; appName: string } }> } } }>(`{ instance(name: "test") { backups { edges { node { backupId appName } } } } }`);
  expect(left.data!.instance.backups.edges.map((e) => e.node.appName)).toEqual(['gitea']);
  expect(left.data!.instance.backups.edges.map((e) => e.node.backupId)).not.toContain(old.backupId);
}, 180_000);
