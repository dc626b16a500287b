// PostgreSQL restore: the dump goes into a side database (pg_restore from restic's stream), is
// checked against the manifest's tables and row counts, then swapped in by renaming (connections
// to the live one terminated); the old database is dropped only when the whole restore succeeded.
import type { Readable } from 'node:stream';
import type { ArtifactRecord } from '../../engine/backup/manifest.js';
import { createdThenAbortable, filledOrDiscarded, type ArtifactRestorer, type RestoreTarget, type SideDescription, type SideRestore } from '../../engine/restore/side.js';
import { readAll } from '../../engine/backup/catalog.js';
import { podText, streamIntoPod, type PodTarget } from '../exec-source.js';
import type { KubeClient } from '../../kube/index.js';
import { appDatabaseName } from './detect.js';
import { postgresRowCounts } from './postgres.js';
import { checkDatabaseName, engineServer, serverPod } from './server.js';
import { checkServerDump, compareRowCounts, type DumpEnding } from './verify.js';
import { ensureRoomFor, sideCopyBytes } from '../free-space.js';

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

function psql(client: KubeClient, target: PodTarget, sql: string, db = 'postgres', signal?: AbortSignal): Promise<string> {
  return podText(client, target, ['psql', '-U', 'postgres', `--dbname=${db}`, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], signal);
}

const exists = async (client: KubeClient, target: PodTarget, db: string, signal?: AbortSignal) =>
  (await psql(client, target, `select 1 from pg_database where datname = '${db}'`, 'postgres', signal)) === '1';

async function terminate(client: KubeClient, target: PodTarget, db: string, signal?: AbortSignal): Promise<void> {
  await psql(client, target, `select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '${db}' and pid <> pg_backend_pid()`, 'postgres', signal);
}

async function rename(client: KubeClient, target: PodTarget, from: string, to: string, signal?: AbortSignal): Promise<void> {
  await terminate(client, target, from, signal);
  await psql(client, target, `alter database ${q(from)} rename to ${q(to)}`, 'postgres', signal);
}

const roleNames = async (client: KubeClient, target: PodTarget, signal?: AbortSignal): Promise<Set<string>> =>
  new Set((await psql(client, target, 'select rolname from pg_roles', 'postgres', signal)).split('\n'));

/** Creates the roles of a roles-only dump that do not exist yet; existing roles are left as they are. */
export async function applyMissingRoles(client: KubeClient, target: PodTarget, rolesSql: string, signal?: AbortSignal): Promise<string[]> {
  const existing = await roleNames(client, target, signal);
  const name = (raw: string) => (raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw);
  const missing = new Set<string>();
  for (const m of rolesSql.matchAll(/^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);$/gm)) if (!existing.has(name(m[1]!))) missing.add(m[1]!);
  const lines = rolesSql.split('\n').filter((l) => [...missing].some((r) => l.startsWith(`CREATE ROLE ${r};`) || l.startsWith(`ALTER ROLE ${r} `)));
  if (lines.length === 0) return [];
  const script = lines.join('\n') + '\n';
  await podText(client, target, ['psql', '-U', 'postgres', '--dbname=postgres', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], signal, script);
  return [...missing].map(name);
}

interface PgDescription extends SideDescription {
  kind: 'postgres';
  live: string;
  side: string;
  old: string;
  hadLive: boolean;
}

/** The server pod is looked up for every step: after a server restart it is another pod. */
function handle(client: KubeClient, locate: (signal?: AbortSignal) => Promise<PodTarget>, d: PgDescription, artifact?: ArtifactRecord): SideRestore {
  return {
    description: d,
    async check(signal) {
      const target = await locate(signal);
      const counts = await postgresRowCounts(client, target, d.side, signal);
      return compareRowCounts(`database ${d.live}`, counts, artifact?.meta);
    },
    async swapIn(signal) {
      const target = await locate(signal);
      if (d.hadLive) await rename(client, target, d.live, d.old, signal);
      // A failed second rename is undone by swapBack (the restore's rollback), which looks at
      // what exists rather than at how far this got.
      await rename(client, target, d.side, d.live, signal);
    },
    async swapBack(signal) {
      // Works from any point of swapIn (also after a crash), and again after itself: the restored
      // copy goes back aside, the old data back in place.
      const target = await locate(signal);
      const [oldThere, liveThere, sideThere] = await Promise.all([exists(client, target, d.old, signal), exists(client, target, d.live, signal), exists(client, target, d.side, signal)]);
      if (liveThere && !sideThere && (oldThere || !d.hadLive)) await rename(client, target, d.live, d.side, signal);
      if (oldThere) await rename(client, target, d.old, d.live, signal);
    },
    async commit(signal) {
      const target = await locate(signal);
      await terminate(client, target, d.old, signal);
      await psql(client, target, `drop database if exists ${q(d.old)}`, 'postgres', signal);
    },
    async discard(signal) {
      const target = await locate(signal);
      await terminate(client, target, d.side, signal);
      await psql(client, target, `drop database if exists ${q(d.side)}`, 'postgres', signal);
    },
  };
}

/** Side names stay within PostgreSQL's 63-byte identifiers. */
export function sideNames(live: string, suffix: string): { side: string; old: string } {
  const base = live.slice(0, 63 - 6 - suffix.length);
  return { side: `${base}_wbr_${suffix}`, old: `${base}_wbo_${suffix}` };
}

/** Room on the server's volume (shared by every app using that server) for a side copy of the artifact's database. */
async function roomForSide(client: KubeClient, target: PodTarget, artifact: ArtifactRecord, what: string, signal: AbortSignal): Promise<void> {
  const dataDir = await psql(client, target, 'show data_directory', 'postgres', signal);
  await ensureRoomFor(client, target, dataDir, sideCopyBytes(artifact), `${what} on the PostgreSQL server's volume (every app using that server needs it)`, signal);
}

/** pg_dumpall's last lines. */
const PG_DUMPALL_END: DumpEnding = { tool: 'pg_dumpall', ending: /\n--\n-- PostgreSQL database cluster dump complete\n--\n*$/ };

export const postgresRestorer: ArtifactRestorer = {
  serverApp: 'postgres',
  checkUnloaded(artifact) {
    return artifact.name === 'all' ? (stream) => checkServerDump(`postgres:all`, artifact, stream, PG_DUMPALL_END) : undefined;
  },
  async preflight(t, artifact, signal) {
    if (artifact.name === 'all') return; // refused before this (restore) or not checked (drill)
    const target = await serverPod(t.client, engineServer(t.inst, 'postgres'), 'postgres', signal);
    await roomForSide(t.client, target, artifact, `a side copy of database ${artifact.name}`, signal);
  },
  async restoreSide(t: RestoreTarget, artifact, stream: Readable, suffix, signal) {
    if (artifact.name === 'all') throw new Error('a whole-server dump (pg_dumpall) is for rebuilding a server; restore each app from its own backup');
    const target = await serverPod(t.client, engineServer(t.inst, 'postgres'), 'postgres', signal);
    const live = checkDatabaseName(t.app.name === t.sourceApp ? artifact.name : appDatabaseName({ instance: t.inst.name, app: t.app.name, manifest: t.app.manifest!, appConfig: t.app.config }));
    const { side, old } = sideNames(live, suffix);
    const clone = t.app.name !== t.sourceApp;
    const owner = clone
      ? String(t.app.config.dbUser ?? t.app.config.dbUsername ?? 'postgres')
      : (await psql(t.client, target, `select pg_get_userbyid(datdba) from pg_database where datname = '${live}'`, 'postgres', signal)) || String(t.app.config.dbUser ?? t.app.config.dbUsername ?? 'postgres');
    const ownerExists = (await psql(t.client, target, `select 1 from pg_roles where rolname = '${owner.replace(/'/g, "''")}'`, 'postgres', signal)) === '1';
    const d: PgDescription = { kind: 'postgres', live, side, old, hadLive: await exists(t.client, target, live) };
    await roomForSide(t.client, target, artifact, `the side database ${side}`, signal);
    const locate = (s?: AbortSignal) => serverPod(t.client, engineServer(t.inst, 'postgres'), 'postgres', s);
    // A clone's objects belong to the clone's own role; an in-place restore keeps the owners.
    const command = ['pg_restore', '-U', 'postgres', `--dbname=${side}`, '--exit-on-error', '--no-password',
      ...(clone ? ['--no-owner', '--no-privileges', ...(ownerExists ? [`--role=${owner}`] : [])] : [])];
    return filledOrDiscarded(handle(t.client, locate, d, artifact), async () => {
      await createdThenAbortable(() => psql(t.client, target, `create database ${q(side)}${ownerExists ? ` owner ${q(owner)}` : ''}`), signal);
      await streamIntoPod(t.client, target, command, stream, artifact.sizeBytes, signal);
    }, t);
  },
  async fromDescription(t, d) {
    return handle(t.client, (s) => serverPod(t.client, engineServer(t.inst, 'postgres'), 'postgres', s), d as PgDescription);
  },
};

/** Applies a postgres-roles artifact (missing roles only) before the databases are restored. */
export async function restorePostgresRoles(t: RestoreTarget, stream: Readable, signal: AbortSignal): Promise<string[]> {
  const target = await serverPod(t.client, engineServer(t.inst, 'postgres'), 'postgres', signal);
  const sql = (await readAll(stream, 16 << 20)).toString('utf8');
  return applyMissingRoles(t.client, target, sql, signal);
}

/**
 * Drops roles that a failed restore created, once its side copies are gone (so they own nothing it
 * made). Each is dropped on its own: one that something else has come to depend on meanwhile
 * stays. Returns the roles still there.
 */
export async function dropPostgresRoles(t: RestoreTarget, roles: readonly string[], signal: AbortSignal): Promise<string[]> {
  if (roles.length === 0) return [];
  const target = await serverPod(t.client, engineServer(t.inst, 'postgres'), 'postgres', signal);
  const script = roles.map((r) => `DROP ROLE IF EXISTS ${q(r)};`).join('\n') + '\n';
  // Without ON_ERROR_STOP each statement stands alone; which roles are left is read afterwards.
  await podText(t.client, target, ['psql', '-U', 'postgres', '--dbname=postgres', '-X', '-q', '-f', '-'], signal, script);
  const left = await roleNames(t.client, target, signal);
  return roles.filter((r) => left.has(r));
}
