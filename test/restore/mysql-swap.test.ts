// The MariaDB swap and its undo against the simulated cluster's real MariaDB: the undo puts the
// app's own tables back exactly once, whatever point it is asked at: after the swap, again after
// it was undone and the side dropped (a start-up recovery after a crash that followed an undone
// swap), or before the swap ever happened. Each time the app's data must survive discard(). And
// loading a dump into the side schema never alters the live one (mysqldump's ALTER DATABASE lines).
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeClientFor } from '../../src/kube/index.js';
import { commentOutAlters, mysqlRestorer } from '../../src/plugins/databases/mysql-restore.js';
import type { RestoreTarget, SideDescription, SideRestore } from '../../src/engine/restore/side.js';
import type { MariadbServer } from '../../src/sim/index.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

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

async function through(t: NodeJS.ReadWriteStream, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => { t.on('data', (c: Buffer) => out.push(c)); t.on('end', resolve); t.on('error', reject); });
  Readable.from(chunks).pipe(t as unknown as NodeJS.WritableStream);
  await done;
  return Buffer.concat(out);
}

it("comments out the dump's ALTER DATABASE lines of the live schema, the same length, wherever the chunks break", async () => {
  const dump = Buffer.from([
    '-- MariaDB dump', 'CREATE TABLE `posts` (id int);',
    "ALTER DATABASE `ghost` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;",
    'CREATE TRIGGER t BEFORE INSERT ON posts FOR EACH ROW SET NEW.id = NEW.id ;;',
    "ALTER DATABASE `ghost` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;",
    "ALTER DATABASE `ghost2` CHARACTER SET latin1 ;", "SELECT 'ALTER DATABASE `ghost` ' ;", '',
  ].join('\n'));
  const want = Buffer.from(dump.toString().replace(/\nALTER DATABASE `ghost` /g, '\n-- ER DATABASE `ghost` '));
  expect(want.toString()).toContain('-- ER DATABASE `ghost` CHARACTER SET latin1');
  expect(want.toString()).toContain('ALTER DATABASE `ghost2`');
  for (let cut = 1; cut < dump.length; cut++) {
    const got = await through(commentOutAlters('ghost'), [dump.subarray(0, cut), dump.subarray(cut)]);
    expect(got.toString(), `cut at ${cut}`).toBe(want.toString());
  }
  const bytewise = await through(commentOutAlters('ghost'), [...dump].map((b) => Buffer.from([b])));
  expect(bytewise.toString()).toBe(want.toString());
});

it('a drill of a schema whose trigger was made under another collation never alters the live schema', async () => {
  const schema = 'ghost';
  const [charset, collation] = (await db.query(`select default_character_set_name, default_collation_name from information_schema.schemata where schema_name = '${schema}'`)).trim().split('\t');
  // As an app's migrations make them: in its own schema, names unqualified.
  await db.query(`alter database ${schema} character set latin1 collate latin1_swedish_ci;
    create table wb_counted (id int);
    create trigger wb_trigger before insert on wb_counted for each row set new.id = new.id;
    alter database ${schema} character set ${charset} collate ${collation};`, schema);
  await initRepository(s);
  const b = await backupLatest(s, 'ghost');
  // The backup's dump names the live schema in ALTER DATABASE lines around the trigger.
  const svc = s.app.services;
  const inst = await svc.store.requireInstance('test');
  const artifact = (await svc.backups.get(inst, b.backupId))!.manifest!.artifacts.find((a) => a.kind === 'mysql')!;
  const chunks: Buffer[] = [];
  for await (const c of (await svc.repositories.open(inst)).dump(artifact.snapshotId, `/${artifact.filename}`)) chunks.push(c as Buffer);
  expect(Buffer.concat(chunks).toString()).toMatch(/^ALTER DATABASE `ghost` CHARACTER SET latin1/m);
  await db.query("set global log_output = 'TABLE'; truncate table mysql.general_log; set global general_log = 1;");
  try {
    const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  } finally {
    await db.query('set global general_log = 0;');
  }
  // The drill made the trigger in its side schema, and no statement altered the live schema.
  const ran = (await db.query("select argument from mysql.general_log where argument like '%TRIGGER%' or argument like '%ALTER DATABASE%'")).trim();
  expect(ran).toMatch(/trigger `?wb_trigger/i);
  expect(ran).not.toMatch(/ALTER DATABASE `ghost` /);
  expect((await db.query(`select concat(default_character_set_name, ' ', default_collation_name) from information_schema.schemata where schema_name = '${schema}'`)).trim()).toBe(`${charset} ${collation}`);
}, 240_000);

// MariaDB cannot move a table with triggers to another schema (RENAME TABLE fails), so the swap
// cannot take a schema with triggers in or out. The restore says so before it stops the app,
// from what the backup recorded and what the live schema has; a swap asked anyway moves nothing.
it('a restore of a schema with triggers is refused before the app stops, with the reason; the swap moves nothing', async () => {
  // The trigger the drill test above made is still in the live ghost schema, and its backup
  // recorded it. A backup taken now does too.
  expect((await db.query(`select trigger_name from information_schema.triggers where event_object_schema = 'ghost'`)).trim()).toBe('wb_trigger');
  const b = await backupLatest(s, 'ghost');
  const svc = s.app.services;
  const inst = await svc.store.requireInstance('test');
  const artifact = (await svc.backups.get(inst, b.backupId))!.manifest!.artifacts.find((a) => a.kind === 'mysql')!;
  expect(artifact.meta.triggers).toBe(1);

  const before = (await db.query('select count(*) from ghost.wb_counted')).trim();
  const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: b.id });
  expect(rec.status).toBe('FAILED');
  expect(rec.error?.message).toMatch(/schema ghost has a trigger \(wb_trigger\).*cannot move a table with triggers to another schema/);
  const op = await s.gql<{ operation: { log: string[] } }>(`query($id: ID!) { operation(id: $id) { log(last: 50) } }`, { id: rec.id });
  expect(op.data!.operation.log.join('\n')).not.toMatch(/quiesced/);
  expect((await db.query('select count(*) from ghost.wb_counted')).trim()).toBe(before);
  expect(await schemas('ghost_wb%')).toEqual([]);

  // The backup's own record is enough: with the live trigger gone, the restore is still refused.
  await db.query('drop trigger wb_trigger', 'ghost');
  await expect(mysqlRestorer.preflight!(target, artifact, new AbortController().signal)).rejects.toThrow(/the backup's schema ghost has 1 trigger.*cannot move/);

  // A swap asked anyway (a backup from before triggers were recorded) moves nothing and says why.
  const { side, d } = await prepare('h');
  await db.query('create trigger h_upper before insert on posts for each row set new.title = upper(new.title)', d.side);
  await expect(side.swapIn()).rejects.toThrow(new RegExp(`schema ${d.side} has a trigger \\(h_upper\\)`));
  expect(await titles(d.live)).toBe('live,live too');
  expect(await titles(d.side)).toBe('restored');
  await side.swapBack();
  await side.discard();
  expect(await titles(d.live)).toBe('live,live too');
  expect(await schemas('app_h%')).toEqual(['app_h']);
}, 240_000);
