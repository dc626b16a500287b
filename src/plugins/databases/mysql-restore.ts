// MariaDB restore: the dump is loaded into a side schema, checked, then swapped in with one atomic
// RENAME TABLE of all tables (the live tables move to an "old" schema, kept until the whole
// restore succeeded). Triggers and views do not move across schemas; see docs/DESIGN.md: a schema
// with triggers is refused before the app stops (from the backup's record and the live schema),
// and the swap itself checks again before it moves anything.
import { PassThrough, Transform, type Readable } from 'node:stream';
import type { KubeClient } from '../../kube/index.js';
import type { ArtifactRecord } from '../../engine/backup/manifest.js';
import { createdThenAbortable, filledOrDiscarded, type ArtifactRestorer, type RestoreTarget, type SideDescription, type SideRestore } from '../../engine/restore/side.js';
import { streamIntoPod, type PodTarget } from '../exec-source.js';
import { appDatabaseName } from './detect.js';
import { mysqlCommand, mysqlQuery, mysqlRowCounts, mysqlTriggers, quoteIdent as q } from './mysql.js';
import { adminPassword, checkDatabaseName, engineServer, serverPod } from './server.js';
import { checkServerDump, compareRowCounts, type DumpEnding } from './verify.js';
import { DEFAULT_LOCK_WAIT_MS } from './types.js';
import { ensureRoomFor, sideCopyBytes } from '../free-space.js';

/** The table that moves with a swap: in the old schema exactly while the restored tables are live. */
const SWAPPED = 'wild_backup_swapped';

interface MyDescription extends SideDescription {
  kind: 'mysql';
  live: string;
  side: string;
  old: string;
  /** Whether the live schema existed before the restore (a swap makes an empty one when not). */
  hadLive: boolean;
}

async function tables(client: KubeClient, target: PodTarget, pw: string, schema: string, signal?: AbortSignal): Promise<string[]> {
  return (await mysqlQuery(client, target, pw, `select table_name from information_schema.tables where table_schema = '${schema}' and table_type = 'BASE TABLE' order by 1`, undefined, signal)).map((r) => r[0]!);
}

/** MariaDB's RENAME TABLE cannot move a table with triggers to another schema (ERROR 1435). */
function triggersRefused(whose: string, what: string): Error {
  return new Error(`${whose} has ${what}, and MariaDB cannot move a table with triggers to another schema, so this restore cannot swap the restored tables in; the live tables stay as they are. Restore it by hand into an emptied schema (\`restic dump\` of the backup's mysql artifact into mysql)`);
}

const named = (names: string[]) => `${names.length === 1 ? 'a trigger' : `${names.length} triggers`} (${names.join(', ')})`;

/**
 * mysqldump brackets each trigger and routine made under another collation than its database has
 * now with `ALTER DATABASE \`<db>\` CHARACTER SET ... ;` lines naming the dumped database: loaded
 * into the side schema as they are, they would change the live schema (a drill too). Each becomes a
 * comment of the same length (the stream's length is known in advance). Lines of other databases
 * are left as they are.
 */
export function commentOutAlters(live: string): Transform {
  const needle = Buffer.from(`\nALTER DATABASE ${q(live)} `);
  const keep = needle.length - 1; // a match may start in the last bytes of a chunk: held for the next
  let held = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const buf = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
      for (let i = buf.indexOf(needle); i !== -1; i = buf.indexOf(needle, i + 1)) buf.write('-- ', i + 1);
      const cut = Math.max(0, buf.length - keep);
      held = Buffer.from(buf.subarray(cut));
      cb(null, buf.subarray(0, cut));
    },
    flush(cb) {
      cb(null, held);
    },
  });
}

/** The server pod is looked up for every step: after a server restart it is another pod. */
function handle(client: KubeClient, locate: (signal?: AbortSignal) => Promise<PodTarget>, pw: string, d: MyDescription, artifact?: ArtifactRecord, lockWaitMs = DEFAULT_LOCK_WAIT_MS): SideRestore {
  // Each step's statements, bounded by the step's signal.
  const on = (signal?: AbortSignal) => ({
    run: async (sql: string) => mysqlQuery(client, await locate(signal), pw, sql, undefined, signal),
    tablesOf: async (schema: string) => tables(client, await locate(signal), pw, schema, signal),
    triggersOf: async (schema: string) => mysqlTriggers(client, await locate(signal), pw, schema, signal),
  });
  return {
    description: d,
    async check(signal) {
      return compareRowCounts(`schema ${d.live}`, await mysqlRowCounts(client, await locate(signal), pw, d.side, signal), artifact?.meta);
    },
    async swapIn(signal) {
      const { run, tablesOf, triggersOf } = on(signal);
      for (const schema of [d.live, d.side]) {
        const names = await triggersOf(schema);
        if (names.length > 0) throw triggersRefused(`schema ${schema}`, named(names));
      }
      const [liveTables, sideTables] = [await tablesOf(d.live), (await tablesOf(d.side)).filter((t) => t !== SWAPPED)];
      await run(`create database if not exists ${q(d.live)}; create database if not exists ${q(d.old)}; create table if not exists ${q(d.side)}.${q(SWAPPED)} (swapped int)`);
      // One atomic rename: the live tables out to old, the restored ones in, and the marker to old
      // with them. The marker in old is what says the swap happened (see swapBack). Another
      // session holding a live table (a transaction left open in a database client) would make it
      // wait for a day (the server's lock_wait_timeout) with the app stopped: it waits this long,
      // then fails having moved nothing, and says which sessions use the schema.
      const waitS = Math.max(1, Math.round(lockWaitMs / 1000));
      await run(`set session lock_wait_timeout = ${waitS}; rename table ${[
        ...liveTables.map((t) => `${q(d.live)}.${q(t)} to ${q(d.old)}.${q(t)}`),
        ...sideTables.map((t) => `${q(d.side)}.${q(t)} to ${q(d.live)}.${q(t)}`),
        `${q(d.side)}.${q(SWAPPED)} to ${q(d.old)}.${q(SWAPPED)}`,
      ].join(', ')}`).catch(async (err: unknown) => {
        if (!/Lock wait timeout exceeded|ERROR 1205/.test((err as Error).message)) throw err;
        const sessions = await run(`select id, user, host, command, time, left(coalesce(info, ''), 80) from information_schema.processlist where db = '${d.live}' and id <> connection_id() order by time desc limit 5`).catch(() => []);
        const who = sessions.map(([id, user, host, command, time, info]) => `session ${id} of ${user}@${host}: ${command} for ${time} s${info ? ` (${info})` : ''}`).join('; ');
        throw new Error(`the tables of schema ${d.live} are in use by another session of the MariaDB server${who ? ` (${who})` : ''}: the swap waited ${waitS} s for them and moved nothing. End that session or its transaction, then restore again`);
      });
    },
    async swapBack(signal) {
      const { run, tablesOf } = on(signal);
      // Only a swap that happened is undone, once: it may be asked again (a recovery after a crash
      // that followed an undone swap), or before the swap (a failure ahead of the rename). Moving
      // the live tables aside then would put the app's own data where discard() drops it.
      const [liveTables, oldTables, sideTables] = [await tablesOf(d.live), await tablesOf(d.old), await tablesOf(d.side)];
      // A swap of an earlier version of this code left no marker: its old tables say it.
      const swapped = oldTables.includes(SWAPPED) || (oldTables.length > 0 && !sideTables.includes(SWAPPED));
      if (!swapped) {
        if (oldTables.length === 0) await run(`drop database if exists ${q(d.old)}`); // made ahead of a rename that never came
        return;
      }
      await run(`create database if not exists ${q(d.side)}`);
      await run(`rename table ${[
        ...liveTables.map((t) => `${q(d.live)}.${q(t)} to ${q(d.side)}.${q(t)}`),
        ...oldTables.map((t) => `${q(d.old)}.${q(t)} to ${q(t === SWAPPED ? d.side : d.live)}.${q(t)}`),
      ].join(', ')}`);
      await run(`drop database if exists ${q(d.old)}`); // empty now
    },
    async commit(signal) {
      await on(signal).run(`drop database if exists ${q(d.old)}; drop database if exists ${q(d.side)}`);
    },
    async discard(signal) {
      await on(signal).run(`drop database if exists ${q(d.side)}`);
    },
  };
}

/** Room on the server's volume (shared by every app using that server) for a side copy of the artifact's schema. */
async function roomForSide(client: KubeClient, target: PodTarget, pw: string, artifact: ArtifactRecord, what: string, signal: AbortSignal): Promise<void> {
  const dataDir = (await mysqlQuery(client, target, pw, 'select @@datadir', undefined, signal))[0]?.[0] ?? '/var/lib/mysql';
  await ensureRoomFor(client, target, dataDir, sideCopyBytes(artifact), `${what} on the MariaDB server's volume (every app using that server needs it)`, signal);
}

/** The schema the artifact is restored into: its own, or the target app's in a clone. */
function liveSchema(t: RestoreTarget, artifact: ArtifactRecord): string {
  return checkDatabaseName(t.app.name === t.sourceApp ? artifact.name : appDatabaseName({ instance: t.inst.name, app: t.app.name, manifest: t.app.manifest!, appConfig: t.app.config }));
}

/** mysqldump's last line (without the date under --skip-dump-date). */
const MYSQLDUMP_END: DumpEnding = { tool: 'mysqldump', ending: /\n-- Dump completed( on [0-9: -]+)?\n$/ };

export const mysqlRestorer: ArtifactRestorer = {
  serverApp: 'mysql',
  checkUnloaded(artifact) {
    return artifact.name === 'all' ? (stream) => checkServerDump(`mysql:all`, artifact, stream, MYSQLDUMP_END) : undefined;
  },
  async preflight(t, artifact, signal) {
    if (artifact.name === 'all') return;
    const server = engineServer(t.inst, 'mysql');
    const target = await serverPod(t.client, server, 'mysql', signal);
    const pw = await adminPassword(t.client, server, signal);
    const live = liveSchema(t, artifact);
    const names = await mysqlTriggers(t.client, target, pw, live, signal);
    if (names.length > 0) throw triggersRefused(`schema ${live}`, named(names));
    const recorded = Number(artifact.meta.triggers);
    if (recorded > 0) throw triggersRefused(`the backup's schema ${artifact.name}`, `${recorded} trigger${recorded === 1 ? '' : 's'}`);
    await roomForSide(t.client, target, pw, artifact, `a side copy of schema ${artifact.name}`, signal);
  },
  async restoreSide(t: RestoreTarget, artifact, stream: Readable, suffix, signal) {
    if (artifact.name === 'all') throw new Error('a whole-server dump is for rebuilding a server; restore each app from its own backup');
    const server = engineServer(t.inst, 'mysql');
    const target = await serverPod(t.client, server, 'mysql', signal);
    const pw = await adminPassword(t.client, server, signal);
    const live = liveSchema(t, artifact);
    const base = live.slice(0, 64 - 6 - suffix.length);
    const existing = await mysqlQuery(t.client, target, pw, `select count(*) from information_schema.schemata where schema_name = '${live}'`, undefined, signal);
    const d: MyDescription = { kind: 'mysql', live, side: `${base}_wbr_${suffix}`, old: `${base}_wbo_${suffix}`, hadLive: existing[0]?.[0] !== '0' };
    await roomForSide(t.client, target, pw, artifact, `the side schema ${d.side}`, signal);
    const h = handle(t.client, (s) => serverPod(t.client, server, 'mysql', s), pw, d, artifact, t.lockWaitMs);
    return filledOrDiscarded(h, async () => {
      await createdThenAbortable(() => mysqlQuery(t.client, target, pw, `create database ${q(d.side)}`), signal);
      // The password line first (read by the pod's shell), then the dump, as one stdin.
      const stdin = new PassThrough();
      stdin.write(`${pw}\n`);
      const alters = commentOutAlters(live);
      stream.pipe(alters).pipe(stdin);
      stream.once('error', (e) => stdin.destroy(e));
      alters.once('error', (e) => stdin.destroy(e));
      stdin.on('error', () => undefined); // surfaced through the exec's own failure
      return streamIntoPod(t.client, target, mysqlCommand(['mysql', '-uroot', `--database=${d.side}`]), stdin, Buffer.byteLength(`${pw}\n`) + artifact.sizeBytes, signal);
    }, t);
  },
  async fromDescription(t, d) {
    const server = engineServer(t.inst, 'mysql');
    return handle(t.client, (s) => serverPod(t.client, server, 'mysql', s), await adminPassword(t.client, server), d as MyDescription);
  },
};
