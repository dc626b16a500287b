// The MariaDB swap and its undo against the simulated cluster's real MariaDB: the undo puts the
// app's own tables back exactly once, whatever point it is asked at: after the swap, again after
// it was undone and the side dropped (a start-up recovery after a crash that followed an undone
// swap), or before the swap ever happened. Each time the app's data must survive discard().
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeClientFor } from '../../src/kube/index.js';
import { mysqlRestorer } from '../../src/plugins/databases/mysql-restore.js';
import type { RestoreTarget, SideDescription, SideRestore } from '../../src/engine/restore/side.js';
import type { MariadbServer } from '../../src/sim/index.js';
import { startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let db: MariadbServer;
let target: RestoreTarget;
beforeAll(async () => {
  s = await startSimApp({ apps: ['ghost'] });
  db = s.sim.databases.mysql!;
  const inst = await s.app.services.store.requireInstance('test');
  target = { client: kubeClientFor(s.sim.kubeconfigPath), inst, app: await s.app.services.store.requireApp(inst, 'ghost'), sourceApp: 'ghost' };
}, 180_000);
afterAll(async () => { await s?.close(); });

/** A live schema with the app's rows, a side schema with the restored ones. */
async function prepare(n: string, opts: { liveRows?: boolean } = {}): Promise<{ side: SideRestore; d: SideDescription & { live: string; side: string; old: string } }> {
  const d = { kind: 'mysql', live: `app_${n}`, side: `app_${n}_wbr_t${n}`, old: `app_${n}_wbo_t${n}` };
  await db.query(`create database ${d.live}; create database ${d.side};
    create table ${d.side}.posts (id int primary key, title text); insert into ${d.side}.posts values (1, 'restored');`);
  if (opts.liveRows !== false) {
    await db.query(`create table ${d.live}.posts (id int primary key, title text); insert into ${d.live}.posts values (1, 'live'), (2, 'live too');
      create table ${d.live}.users (id int primary key); insert into ${d.live}.users values (7);`);
  }
  return { side: await mysqlRestorer.fromDescription(target, d), d };
}

const rows = async (schema: string) => (await db.query(`select concat(table_name, ':', table_rows) from information_schema.tables where table_schema = '${schema}' order by 1`)).trim();
const titles = async (schema: string) => (await db.query(`select group_concat(title order by id) from ${schema}.posts`)).trim();
const schemas = async (like: string) => (await db.query(`select schema_name from information_schema.schemata where schema_name like '${like}' order by 1`)).trim().split('\n').filter(Boolean);

it('swaps in, and the undo puts the live tables back and leaves no schema of its own', async () => {
  const { side, d } = await prepare('a');
  await side.swapIn();
  expect(await titles(d.live)).toBe('restored');
  await side.swapBack();
  await side.discard();
  expect(await titles(d.live)).toBe('live,live too');
  expect(await db.query(`select count(*) from ${d.live}.users`)).toMatch(/^1/);
  expect(await schemas('app_a%')).toEqual(['app_a']);
});

it('an undo asked again after the swap was undone and the side dropped leaves the live data alone', async () => {
  const { side, d } = await prepare('b');
  await side.swapIn();
  await side.swapBack();
  await side.discard();
  // A restart: the recovery record still says "swapped", and the recovery runs the undo again.
  const again = await mysqlRestorer.fromDescription(target, d);
  await again.swapBack();
  await again.discard();
  expect(await titles(d.live)).toBe('live,live too');
  expect(await db.query(`select count(*) from ${d.live}.users`)).toMatch(/^1/);
});

it('an undo asked before the swap happened (a failure ahead of the rename) leaves the live data alone', async () => {
  const { side, d } = await prepare('c');
  await db.query(`create database ${d.old}`); // the swap got as far as making the old schema
  await side.swapBack();
  await side.discard();
  expect(await titles(d.live)).toBe('live,live too');
  expect(await schemas('app_c%')).toEqual(['app_c']);
});

it('a swap into an empty live schema is undone to the empty schema', async () => {
  const { side, d } = await prepare('e', { liveRows: false });
  await side.swapIn();
  expect(await titles(d.live)).toBe('restored');
  await side.swapBack();
  await side.discard();
  expect(await rows(d.live)).toBe('');
  await side.swapBack(); // once more: nothing to do
  expect(await rows(d.live)).toBe('');
});
