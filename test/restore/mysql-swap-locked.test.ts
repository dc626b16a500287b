// A MariaDB table of the app held by another session (a transaction left open in a database
// client) when a restore swaps the schema in. RENAME TABLE would wait for the server's
// lock_wait_timeout (a day) with the app stopped; it waits the lock wait instead, moves nothing,
// and the restore fails naming the session, with the app's data and replicas as they were. Once
// the session is gone, the same restore succeeds.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeClientFor, listWorkloads } from '../../src/kube/index.js';
import type { MariadbServer } from '../../src/sim/index.js';
import { mariadbTableDigests, treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let db: MariadbServer;

beforeAll(async () => {
  s = await startSimApp({ apps: ['ghost'] }, { lockWaitMs: 2000 });
  db = s.sim.databases.mysql!;
  await initRepository(s);
}, 180_000);
afterAll(async () => { await s?.close(); });

/** A client session with an open transaction that has read `table` of `schema`: it holds the table's metadata lock. */
async function openTransaction(schema: string, table: string): Promise<ChildProcessWithoutNullStreams> {
  const client = spawn('mariadb', ['--no-defaults', '--unbuffered', '-S', db.socket, '-uroot', '-N', schema], { env: { ...process.env, MYSQL_PWD: db.rootPassword } });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    client.stdout.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('held')) resolve(); });
    client.on('exit', (code) => reject(new Error(`mariadb exited ${code}`)));
    client.stdin.write(`begin;\nselect count(*) from ${table};\nselect 'held';\n`);
  });
  return client;
}

it('fails the swap after the lock wait naming the session, leaves the app as it was, and restores once the session is gone', async () => {
  const { backupId } = await backupLatest(s, 'ghost');
  const client = kubeClientFor(s.sim.kubeconfigPath);
  const replicas = async () => Object.fromEntries((await listWorkloads(client, 'ghost')).map((w) => [`${w.kind}/${w.name}`, w.replicas]));
  // The app's state now differs from the backup: a restore would change it.
  await db.query("insert into ghost.posts (id, title) values ('after-the-backup', 'written after the backup')");
  const before = { rows: await mariadbTableDigests(db, 'ghost'), files: await treeDigest(s.sim.pvcDir('ghost', 'ghost-content')), replicas: await replicas() };

  const session = await openTransaction('ghost', 'posts');
  let failed;
  try {
    failed = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: backupId });
  } finally {
    session.kill('SIGKILL');
  }
  expect(failed.status).toBe('FAILED');
  expect(failed.error?.message).toMatch(/swapping in mysql:ghost: the tables of schema ghost are in use by another session of the MariaDB server \(session \d+ of root@localhost: .*\): the swap waited 2 s for them and moved nothing/);
  expect({ rows: await mariadbTableDigests(db, 'ghost'), files: await treeDigest(s.sim.pvcDir('ghost', 'ghost-content')), replicas: await replicas() }).toEqual(before);

  const done = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: backupId });
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  expect(await mariadbTableDigests(db, 'ghost')).not.toEqual(before.rows);
}, 240_000);
