// MySQL / MariaDB engine plugin: a single-transaction mysqldump with routines, triggers and events
// of the app's database (tables only, so it can be restored into any schema), or of every
// database for the mysql app itself. Beside an app's dump, the accounts with privileges on its
// schema (`mysql-users`), as PostgreSQL's roles go beside its dump. The root password comes from
// the mysql-secret secret and reaches the client on stdin (read into MYSQL_PWD by the pod's
// shell), never on argv.
import type { ArtifactSource } from '../../engine/backup/source.js';
import type { KubeClient } from '../../kube/index.js';
import { execSource, podText, type PodTarget } from '../exec-source.js';
import type { ClusterContext, DatabasePlugin } from './types.js';
import { detectSqlDependency } from './detect.js';
import { adminPassword, checkDatabaseName, engineServer, serverPod } from './server.js';

/** `sh -c` script: the first stdin line becomes MYSQL_PWD, then the client runs with "$@". */
const WITH_PASSWORD = 'IFS= read -r MYSQL_PWD; export MYSQL_PWD; exec "$@"';

export function mysqlCommand(argv: string[]): string[] {
  return ['sh', '-c', WITH_PASSWORD, 'wild-backup', ...argv];
}

export async function mysqlQuery(client: KubeClient, target: PodTarget, password: string, sql: string, db?: string, signal?: AbortSignal): Promise<string[][]> {
  const out = await podText(client, target, mysqlCommand(['mysql', '-uroot', '-N', '-B', ...(db ? [`--database=${db}`] : []), '-e', sql]), signal, `${password}\n`);
  return out ? out.split('\n').map((l) => l.split('\t')) : [];
}

/** A MariaDB identifier, quoted. */
export const quoteIdent = (s: string) => '`' + s.replace(/`/g, '``') + '`';

export async function mysqlRowCounts(client: KubeClient, target: PodTarget, password: string, db: string, signal?: AbortSignal): Promise<Record<string, number>> {
  const tables = await mysqlQuery(client, target, password, `select table_name from information_schema.tables where table_schema = '${db}' and table_type = 'BASE TABLE' order by 1`, undefined, signal);
  if (tables.length === 0) return {};
  const sql = tables.map(([t]) => `select '${t!.replace(/'/g, "''")}', count(*) from ${quoteIdent(db)}.${quoteIdent(t!)}`).join(' union all ');
  const rows = await mysqlQuery(client, target, password, sql, undefined, signal);
  return Object.fromEntries(rows.map(([t, n]) => [t!, Number(n)]));
}

/** The triggers on the tables of `db`: a restore cannot swap such a schema (mysql-restore.ts). */
export async function mysqlTriggers(client: KubeClient, target: PodTarget, password: string, db: string, signal?: AbortSignal): Promise<string[]> {
  return (await mysqlQuery(client, target, password, `select trigger_name from information_schema.triggers where event_object_schema = '${db}' order by 1`, undefined, signal)).map((r) => r[0]!);
}

/** A MariaDB string literal. */
export const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * The accounts with privileges on schema `db` (a grant on exactly it: mysql.db holds the name with
 * `_` escaped or not), as `SHOW CREATE USER` and `SHOW GRANTS` statements, one a line, after a
 * comment line: what a server rebuilt empty needs for the app to log in to its restored schema.
 */
async function accountsCommand(client: KubeClient, target: PodTarget, password: string, db: string, signal?: AbortSignal): Promise<string[]> {
  const accounts = await mysqlQuery(client, target, password, `select user, host from mysql.db where db in (${sqlString(db)}, ${sqlString(db.replace(/_/g, '\\_'))}) order by 1, 2`, undefined, signal);
  const shows = [...new Set(accounts.map(([u, h]) => `${sqlString(u!)}@${sqlString(h!)}`))].map((a) => `show create user ${a}; show grants for ${a};`);
  return mysqlCommand(['mysql', '-uroot', '-N', '-B', '-r', '-e', [`select ${sqlString(`-- MariaDB accounts with privileges on schema ${db}`)};`, ...shows].join(' ')]);
}

const DUMP_FLAGS = ['--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', '--default-character-set=utf8mb4'];

export const mysqlPlugin: DatabasePlugin = {
  name: 'mysql',
  description: 'MySQL / MariaDB: a single-transaction mysqldump with routines, triggers and events',
  canRestore: true,
  canVerify: true,
  detect: (ctx) => detectSqlDependency(ctx, 'mysql', 'MariaDB'),

  async sources(ctx: ClusterContext, dep, signal): Promise<ArtifactSource[]> {
    const server = engineServer(ctx.inst, 'mysql');
    const target = await serverPod(ctx.client, server, 'mysql', signal);
    const password = await adminPassword(ctx.client, server, signal);
    const [[version] = ['']] = await mysqlQuery(ctx.client, target, password, 'select version()', undefined, signal);
    if (dep.databaseName === null) {
      return [execSource({
        client: ctx.client, target, artifact: { kind: 'mysql', name: 'all' }, extension: '.sql', stdin: `${password}\n`,
        command: mysqlCommand(['mysqldump', '-uroot', ...DUMP_FLAGS, '--all-databases']),
        estimate: async (s) => Number((await mysqlQuery(ctx.client, target, password, 'select sum(data_length) from information_schema.tables', undefined, s))[0]?.[0]) || null,
        meta: async () => ({ serverVersion: version }),
      })];
    }
    const db = checkDatabaseName(dep.databaseName);
    if (ctx.missingOk && (await mysqlQuery(ctx.client, target, password, `select count(*) from information_schema.schemata where schema_name = '${db}'`, undefined, signal))[0]?.[0] === '0') return [];
    let before: Record<string, number> = {};
    let databaseBytes: number | null = null;
    const accounts = execSource({
      client: ctx.client, target, artifact: { kind: 'mysql-users', name: db }, extension: '.sql', stdin: `${password}\n`,
      command: (s) => accountsCommand(ctx.client, target, password, db, s),
      meta: async () => ({ serverVersion: version }),
    });
    return [execSource({
      client: ctx.client, target, artifact: { kind: 'mysql', name: db }, extension: '.sql', stdin: `${password}\n`,
      command: mysqlCommand(['mysqldump', '-uroot', ...DUMP_FLAGS, '--', db]),
      estimate: async (s) => {
        before = await mysqlRowCounts(ctx.client, target, password, db, s);
        // The schema's size is the room a side copy needs; its rows' (no index is dumped) the estimate.
        const rows = await mysqlQuery(ctx.client, target, password, `select sum(data_length + index_length), sum(data_length) from information_schema.tables where table_schema = '${db}'`, undefined, s);
        databaseBytes = Number(rows[0]?.[0]) || null;
        return Number(rows[0]?.[1]) || databaseBytes;
      },
      // Called once the estimate is in (execSource): `before` and databaseBytes are its.
      meta: async (s) => {
        const [after, triggers] = await Promise.all([mysqlRowCounts(ctx.client, target, password, db, s), mysqlTriggers(ctx.client, target, password, db, s)]);
        // triggers: a restore refuses a schema with triggers before it stops the app. databaseBytes:
        // the room a restore's side copy needs on the server's volume.
        return { serverVersion: version, database: db, rowCounts: after, rowCountsExact: JSON.stringify(after) === JSON.stringify(before), triggers: triggers.length, ...(databaseBytes ? { databaseBytes } : {}) };
      },
    }), accounts];
  },
};
