// A restore or a verification of an app creates, renames and drops databases on its database
// server app, and the server's own backup is a whole-server dump. Found in the demo: the mysql
// app's backup FAILED every time a ghost restore swapped its tables in meanwhile (mysqldump:
// "Error 1412: Table definition has changed, please retry transaction"). Such work now holds the
// server app too: the server's backup and an app's restore or drill do not run at once. A restore
// of the server app's settings alone stops nothing, and runs beside its apps' backups.
import { expect, it } from 'vitest';
import { OP_FIELDS, backupLatest, holdExecs, untilRunning, useSimApp } from '../helpers/sim-app.js';

const suite = useSimApp(['ghost', 'mysql']);

type Started = { __typename: string; code?: string; message?: string; operation?: { operationId: string } };
const start = async (mutation: string, variables?: Record<string, unknown>): Promise<Started> =>
  Object.values((await suite().gql<Record<string, Started>>(mutation, variables)).data!)[0]!;
const RESTORE = `mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`;
const VERIFY = `mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`;
const BACKUP_SERVER = `mutation { backupApp(input: { instance: "test", app: "mysql" }) { ${OP_FIELDS} } }`;

/**
 * Starts `restore` (not held), checks that `other` is refused while it is queued or runs, with the
 * refusal naming it as `described` (e.g. "RESTORE_APP of ghost"), then that both succeed in turn.
 */
async function refusedWhileRestoring(restore: string, variables: Record<string, unknown>, other: string, described: string): Promise<void> {
  const s = suite();
  const started = await start(restore, variables);
  expect(started.__typename, JSON.stringify(started)).toBe('OperationPayload');
  const restoreOp = started.operation!.operationId;
  const refused = await start(other);
  expect(refused.__typename).toBe('ConflictError');
  expect(refused.message).toMatch(new RegExp(`^app "mysql" of instance "test" is busy with operation ${restoreOp} \\(${described}, (QUEUED|RUNNING)\\)$`));
  const restored = await s.app.services.engine.waitFor(restoreOp);
  expect(restored.status, JSON.stringify(restored.error)).toBe('SUCCEEDED');
  const after = await s.runOperation(other);
  expect(after.status, JSON.stringify(after.error)).toBe('SUCCEEDED');
}

it("refuses an app's restore or drill while its database server's backup runs, and the server's backup while a restore runs", async () => {
  const s = suite();
  const ghost = await backupLatest(s, 'ghost');
  const engine = s.app.services.engine;

  // The server's whole dump, held before it starts.
  const gate = holdExecs(s, (command) => command.join(' ').includes('--all-databases'));
  try {
    const server = await start(BACKUP_SERVER);
    expect(server.__typename, JSON.stringify(server)).toBe('OperationPayload');
    const serverOp = server.operation!.operationId;
    await untilRunning(s, serverOp);
    for (const m of [RESTORE, VERIFY]) {
      const refused = await start(m, { id: ghost.id });
      expect(refused.__typename, JSON.stringify(refused)).toBe('ConflictError');
      expect(refused.message).toBe(`app "mysql" of instance "test" is busy with operation ${serverOp} (BACKUP_APP, RUNNING)`);
    }
    gate.release();
    const done = await engine.waitFor(serverOp);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  } finally {
    gate.release();
  }

  // The other way round: while ghost's restore is queued or runs, the server's backup is refused.
  await refusedWhileRestoring(RESTORE, { id: ghost.id }, BACKUP_SERVER, 'RESTORE_APP of ghost');
}, 240_000);

it("a restore of the database server app's settings alone runs beside an app's backup that dumps from it: the server is never stopped", async () => {
  const s = suite();
  const server = await backupLatest(s, 'mysql');
  const engine = s.app.services.engine;
  const RESTORE_SERVER = `mutation($id: ID!) { restoreBackup(input: { backupId: $id, components: [CONFIG], safetyBackup: false }) { ${OP_FIELDS} } }`;
  const BACKUP_GHOST = `mutation { backupApp(input: { instance: "test", app: "ghost" }) { ${OP_FIELDS} } }`;
  const statefulSet = () => { const x = s.sim.kube.runtime.store.list('statefulsets', 'mysql')[0]!; return { generation: x.metadata.generation, replicas: (x.spec as { replicas?: number }).replicas }; };
  const before = statefulSet();

  // ghost's own dump, held before it starts. Found in the demo: the postgres app's restore (its
  // CONFIG only) stopped the server under immich's backup, which FAILED with POD_NOT_FOUND. Such
  // a restore was then refused while the backup ran; now it stops nothing (the settings are Wild
  // Central's files), so both run.
  const gate = holdExecs(s, (command) => {
    const line = command.join(' ');
    return line.includes('mysqldump') && !line.includes('--all-databases');
  });
  try {
    const backup = await start(BACKUP_GHOST);
    const backupOp = backup.operation!.operationId;
    await untilRunning(s, backupOp);
    const restore = await start(RESTORE_SERVER, { id: server.id });
    expect(restore.__typename, JSON.stringify(restore)).toBe('OperationPayload');
    const restored = await engine.waitFor(restore.operation!.operationId);
    expect(restored.status, JSON.stringify(restored.error)).toBe('SUCCEEDED');
    expect(statefulSet(), 'the server never scaled').toEqual(before);
    gate.release();
    const done = await engine.waitFor(backupOp);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  } finally {
    gate.release();
  }
}, 240_000);
