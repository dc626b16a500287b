// PostgreSQL engine plugin: `pg_dump --format=custom --compress=0` of the app's database (restic
// compresses; a compressed dump defeats deduplication) plus the roles, or `pg_dumpall` of the
// whole server for the postgres app itself. Inside the official image `psql -U postgres` is the
// superuser over the local socket, so no password is needed at all.
import type { ArtifactSource } from '../../engine/backup/source.js';
import { execSource, podText, type PodTarget } from '../exec-source.js';
import type { KubeClient } from '../../kube/index.js';
import type { ClusterContext, DatabasePlugin } from './types.js';
import { detectSqlDependency } from './detect.js';
import { checkDatabaseName, engineServer, serverPod } from './server.js';

/** Exact row counts of every user table, in one statement (one snapshot). */
const ROW_COUNTS_SQL = `select n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
order by 1`;

export async function postgresRowCounts(client: KubeClient, target: PodTarget, db: string, signal?: AbortSignal): Promise<Record<string, number>> {
  const out = await podText(client, target, ['psql', '-U', 'postgres', `--dbname=${db}`, '-X', '-A', '-t', '-F', '\t', '-c', ROW_COUNTS_SQL], signal);
  const counts: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const [table, n] = line.split('\t');
    if (table && n !== undefined) counts[table] = Number(n);
  }
  return counts;
}

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
    const target = await serverPod(ctx.client, server, 'postgres', signal);
    const version = await psql(target, ctx.client, 'postgres', 'show server_version', signal);
    if (dep.databaseName === null) {
      return [execSource({
        client: ctx.client, target, artifact: { kind: 'postgres', name: 'all' }, extension: '.sql',
        command: ['pg_dumpall', '-U', 'postgres', '--clean', '--if-exists'],
        estimate: async (s) => Number(await psql(target, ctx.client, 'postgres', 'select sum(pg_database_size(datname)) from pg_database', s)) || null,
        meta: async () => ({ serverVersion: version, format: 'plain' }),
      })];
    }
    const db = checkDatabaseName(dep.databaseName);
    if (ctx.missingOk && (await psql(target, ctx.client, 'postgres', `select count(*) from pg_database where datname = '${db}'`, signal)) === '0') return [];
    let countsBefore: Record<string, number> = {};
    return [
      execSource({
        client: ctx.client, target, artifact: { kind: 'postgres', name: db }, extension: '.pgdump',
        command: ['pg_dump', '-U', 'postgres', '--format=custom', '--compress=0', '--no-password', `--dbname=${db}`],
        estimate: async (s) => {
          countsBefore = await postgresRowCounts(ctx.client, target, db, s);
          return Number(await psql(target, ctx.client, db, 'select pg_database_size(current_database())', s)) || null;
        },
        // Counts before and after the dump agree unless the app wrote meanwhile; only then are they exact.
        meta: async (s) => {
          const after = await postgresRowCounts(ctx.client, target, db, s);
          const exact = JSON.stringify(after) === JSON.stringify(countsBefore);
          return { serverVersion: version, database: db, format: 'custom', rowCounts: after, rowCountsExact: exact };
        },
      }),
      execSource({
        client: ctx.client, target, artifact: { kind: 'postgres-roles', name: db }, extension: '.sql',
        command: ['pg_dumpall', '-U', 'postgres', '--roles-only', '--no-password'],
        meta: async () => ({ serverVersion: version }),
      }),
    ];
  },
};
