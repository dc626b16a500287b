// PostgreSQL engine plugin: `pg_dump --format=custom --compress=0` of the app's database (restic
// compresses; a compressed dump defeats deduplication) plus the roles, or `pg_dumpall` of the
// whole server for the postgres app itself. Inside the official image `psql -U postgres` is the
// superuser over the local socket, so no password is needed at all.
import { PassThrough } from 'node:stream';
import type { ArtifactSource } from '../../engine/backup/source.js';
import { execSource, podText, type PodTarget } from '../exec-source.js';
import { execStream, type KubeClient } from '../../kube/index.js';
import { DEFAULT_LOCK_WAIT_MS, type ClusterContext, type DatabasePlugin } from './types.js';
import { detectSqlDependency } from './detect.js';
import { checkDatabaseName, engineServer, serverPod } from './server.js';

/** Exact row counts of every user table, in one statement (one snapshot). */
const ROW_COUNTS_SQL = `select n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
order by 1`;

function parseRowCounts(lines: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of lines) {
    const [table, n] = line.split('\t');
    if (table && n !== undefined) counts[table] = Number(n);
  }
  return counts;
}

export async function postgresRowCounts(client: KubeClient, target: PodTarget, db: string, signal?: AbortSignal): Promise<Record<string, number>> {
  const out = await podText(client, target, ['psql', '-U', 'postgres', `--dbname=${db}`, '-X', '-A', '-t', '-F', '\t', '-c', ROW_COUNTS_SQL], signal);
  return parseRowCounts(out.split('\n'));
}

/**
 * A dump that gave up waiting for a table lock (--lock-wait-timeout: pg_dump says "statement
 * timeout" on its LOCK TABLE), in words: which table, and what holds such locks.
 */
function lockWaitExplained(lockWaitMs: number): (exitCode: number | null, stderr: string) => string | undefined {
  return (_code, stderr) => {
    const table = /Query was: LOCK TABLE (\S+) IN ACCESS SHARE MODE/.exec(stderr)?.[1];
    if (!table || !/canceling statement due to (statement|lock) timeout/.test(stderr)) return undefined;
    return `table ${table} is locked by another session of the database (an app's migration, a VACUUM FULL, a transaction left open): the dump waited ${lockWaitMs / 1000} s for it and gave up; back up again once it is released`;
  };
}

/** A transaction whose snapshot pg_dump shares, and the row counts taken in it. */
interface SharedSnapshot {
  /** For `pg_dump --snapshot`. */
  id: string;
  /** Exactly the rows the dump holds, even while the app writes. */
  counts: Promise<Record<string, number>>;
  /** Ends the transaction (once pg_dump has its own copy of the snapshot, i.e. when it ended). */
  release(): Promise<void>;
}

const SNAPSHOT_ID = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i;
const COUNTS_DONE = 'wild-backup:row-counts-done';

/**
 * Opens a read-only REPEATABLE READ transaction in psql, exports its snapshot and counts every
 * table's rows in it, while pg_dump (started with `--snapshot`) dumps the same snapshot: the counts
 * describe the dump exactly, cost one pass over the tables, and run beside the dump rather than
 * before and after it. The transaction stays open until `release()`: pg_dump imports the snapshot
 * when it starts, which must happen while the exporting transaction lives.
 */
async function shareSnapshot(client: KubeClient, target: PodTarget, db: string, lockWaitMs: number, signal: AbortSignal): Promise<SharedSnapshot> {
  // The counts wait for a locked table no longer than the dump does.
  const begin = `begin isolation level repeatable read, read only;\nset local lock_timeout = ${lockWaitMs};\nselect pg_export_snapshot();\n`;
  const count = `${ROW_COUNTS_SQL};\n\\echo ${COUNTS_DONE}\n`;
  const commit = 'commit;\n\\q\n';
  const input = new PassThrough();
  const ex = await execStream(client, {
    ...target, signal, stdin: input, stdinEndsItself: true,
    command: ['psql', '-U', 'postgres', `--dbname=${db}`, '-X', '-A', '-t', '-q', '-F', '\t', '-v', 'ON_ERROR_STOP=1'],
  });
  // stdin stays open after the counts: its end would end the transaction.
  input.write(begin + count);
  let resolveId!: (id: string) => void, resolveCounts!: (c: Record<string, number>) => void;
  const id = new Promise<string>((res) => { resolveId = res; });
  const counted = new Promise<Record<string, number>>((res) => { resolveCounts = res; });
  let haveCounts = false;
  // psql answers each statement as it completes: the snapshot id first, then the counts.
  const session = (async () => {
    let rest = '';
    const lines: string[] = [];
    for await (const chunk of ex.stdout as AsyncIterable<Buffer>) {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop()!;
      for (const line of parts) {
        if (line === COUNTS_DONE) {
          haveCounts = true;
          resolveCounts(parseRowCounts(lines.slice(1)));
          continue;
        }
        if (lines.length === 0 && !SNAPSHOT_ID.test(line)) throw new Error(`psql did not export a snapshot: ${line.slice(0, 200)}`);
        lines.push(line);
        if (lines.length === 1) resolveId(line);
      }
    }
    await ex.done;
    if (!haveCounts) throw new Error('psql ended before it had counted the rows');
  })();
  const failure = session.then(() => null, (err: unknown) => err as Error);
  const failed = failure.then((err) => { if (err) throw err; return new Promise<never>(() => undefined); });
  const snapshot = await Promise.race([id, failed]);
  const counts = Promise.race([counted, failed]);
  counts.catch(() => undefined); // a backup that fails before its manifest never asks for them
  return {
    id: snapshot,
    counts,
    async release() {
      // With the counts in hand: commit and let psql exit (an error now, say an idle-session
      // timeout, changes no count taken). Without: the dump failed first; end the session.
      if (haveCounts) input.end(commit);
      else ex.abort(new Error('the dump ended before the row counts'));
      await failure;
    },
  };
}

/**
 * The database's size (the room a side copy needs) and its tables' (what pg_dump reads, the
 * progress's estimate): indexes and the catalogs are not dumped, and an app's small database is
 * mostly catalogs (7-8 MB for a dump of 0.5 MB). Large objects are dumped: pg_largeobject counts.
 */
const SIZES_SQL = `select pg_database_size(current_database()), coalesce(sum(pg_table_size(c.oid)), 0) from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where (c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast') or c.oid = 'pg_largeobject'::regclass`;

function psql(target: PodTarget, client: KubeClient, db: string, sql: string, signal?: AbortSignal): Promise<string> {
  return podText(client, target, ['psql', '-U', 'postgres', `--dbname=${db}`, '-X', '-A', '-t', '-c', sql], signal);
}

export const postgresPlugin: DatabasePlugin = {
  name: 'postgres',
  description: 'PostgreSQL: pg_dump in custom format streamed into restic, with the roles it needs',
  canRestore: true,
  canVerify: true,
  detect: (ctx) => detectSqlDependency(ctx, 'postgres', 'PostgreSQL'),

  async sources(ctx: ClusterContext, dep, signal): Promise<ArtifactSource[]> {
    const server = engineServer(ctx.inst, 'postgres');
    // A table locked by another session (an app's migration, a VACUUM FULL) fails the dump after
    // this long, naming the table, instead of holding it silently until the start bound (10 min).
    const lockWait = Math.max(1, Math.round(ctx.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS));
    const target = await serverPod(ctx.client, server, 'postgres', signal);
    const version = await psql(target, ctx.client, 'postgres', 'show server_version', signal);
    if (dep.databaseName === null) {
      return [execSource({
        client: ctx.client, target, artifact: { kind: 'postgres', name: 'all' }, extension: '.sql',
        command: ['pg_dumpall', '-U', 'postgres', '--clean', '--if-exists', `--lock-wait-timeout=${lockWait}ms`],
        explainFailure: lockWaitExplained(lockWait),
        estimate: async (s) => Number(await psql(target, ctx.client, 'postgres', 'select sum(pg_database_size(datname)) from pg_database', s)) || null,
        meta: async () => ({ serverVersion: version, format: 'plain' }),
      })];
    }
    const db = checkDatabaseName(dep.databaseName);
    if (ctx.missingOk && (await psql(target, ctx.client, 'postgres', `select count(*) from pg_database where datname = '${db}'`, signal)) === '0') return [];
    let shared: SharedSnapshot | undefined;
    let databaseBytes: number | null = null;
    return [
      execSource({
        client: ctx.client, target, artifact: { kind: 'postgres', name: db }, extension: '.pgdump',
        command: async (s) => {
          shared = await shareSnapshot(ctx.client, target, db, lockWait, s);
          return ['pg_dump', '-U', 'postgres', '--format=custom', '--compress=0', '--no-password', `--lock-wait-timeout=${lockWait}ms`, `--snapshot=${shared.id}`, `--dbname=${db}`];
        },
        explainFailure: lockWaitExplained(lockWait),
        estimate: async (s) => {
          const [database, tables] = (await psql(target, ctx.client, db, SIZES_SQL, s)).split('|').map(Number);
          databaseBytes = database || null;
          return tables || databaseBytes;
        },
        // Counted in the dump's own snapshot: exact, whatever the app wrote meanwhile. databaseBytes:
        // the room a restore's side copy needs on the server's volume, measured by the estimate
        // (which execSource lets finish before it asks for these facts).
        meta: async () => ({ serverVersion: version, database: db, format: 'custom', rowCounts: await shared!.counts, rowCountsExact: true, ...(databaseBytes ? { databaseBytes } : {}) }),
        cleanup: async () => { await shared?.release(); },
      }),
      execSource({
        client: ctx.client, target, artifact: { kind: 'postgres-roles', name: db }, extension: '.sql',
        command: ['pg_dumpall', '-U', 'postgres', '--roles-only', '--no-password'],
        meta: async () => ({ serverVersion: version }),
      }),
    ];
  },
};
