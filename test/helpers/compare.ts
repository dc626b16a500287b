// Proof helpers: load an artifact that restic dumps back into a fresh server or a directory, and
// describe databases and trees so they can be compared with their sources.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MariadbServer, PostgresServer } from '../../src/sim/databases.js';

/** Feeds a stream to a local command's stdin; rejects with its stderr when it fails. */
export async function pipeInto(stream: Readable, cmd: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exit = new Promise<number>((resolve, reject) => { child.on('error', reject); child.on('close', (c) => resolve(c ?? -1)); });
  // tar stops reading at its end-of-archive marker; the padding after it may then hit a closed pipe.
  const fed = await pipeline(stream, child.stdin).then(() => null, (err: unknown) => err as Error);
  const code = await exit;
  if (code !== 0) throw new Error(`${cmd} exited ${code}: ${stderr}`);
  if (fed && !/premature close|EPIPE/i.test(`${fed.message} ${(fed as NodeJS.ErrnoException).code ?? ''}`)) throw fed;
}

export async function pgRestore(pg: PostgresServer, stream: Readable, db: string): Promise<void> {
  await pg.query(`drop database if exists "${db}"; create database "${db}";`);
  const env = pg.execEnv();
  await pipeInto(stream, path.join(env.PATH!.split(':')[0]!, 'pg_restore'), ['-h', env.PGHOST!, '-p', env.PGPORT!, '-U', 'postgres', '--no-owner', '--exit-on-error', '-d', db]);
}

/** table -> "rows:md5 of the rows' text" for every user table of a PostgreSQL database. */
export async function pgTableDigests(pg: PostgresServer, db: string): Promise<Record<string, string>> {
  const tables = (await pg.query(`select schemaname || '.' || tablename from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by 1`, db)).split('\n').filter(Boolean);
  const out: Record<string, string> = {};
  for (const t of tables) {
    const [schema, name] = t.split('.');
    out[t] = (await pg.query(`select count(*) || ':' || coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from "${schema}"."${name}" x`, db)).trim();
  }
  return out;
}

export async function mariadbLoad(db: MariadbServer, stream: Readable, schema: string): Promise<void> {
  await db.query(`drop database if exists \`${schema}\`; create database \`${schema}\`;`);
  await pipeInto(stream, 'mariadb', ['--no-defaults', '-S', db.socket, '-uroot', schema], { MYSQL_PWD: db.rootPassword });
}

/** table -> "rows:checksum" for every table of a MariaDB schema. */
export async function mariadbTableDigests(db: MariadbServer, schema: string): Promise<Record<string, string>> {
  const tables = (await db.query(`select table_name from information_schema.tables where table_schema = '${schema}' and table_type = 'BASE TABLE' order by 1`)).split('\n').filter(Boolean);
  const out: Record<string, string> = {};
  for (const t of tables) {
    const count = (await db.query(`select count(*) from \`${schema}\`.\`${t}\``)).trim();
    const sum = (await db.query(`checksum table \`${schema}\`.\`${t}\``)).trim().split('\t')[1];
    out[t] = `${count}:${sum}`;
  }
  return out;
}

export async function untar(stream: Readable, dir: string): Promise<void> {
  await pipeInto(stream, 'tar', ['-x', '-f', '-', '-p', '-C', dir]);
}

/** relative path -> "type mode size sha256 mtime(s)" of every entry under dir. */
export async function treeDigest(dir: string, opts: { skip?: (rel: string) => boolean } = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(path.join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (opts.skip?.(r)) continue;
      const st = await lstat(path.join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[r] = `d ${mode}`;
        await walk(r);
      } else if (st.isFile()) {
        const sha = createHash('sha256').update(await readFile(path.join(dir, r))).digest('hex');
        out[r] = `f ${mode} ${st.size} ${sha} ${Math.floor(st.mtimeMs / 1000)}`;
      } else out[r] = `${st.isSymbolicLink() ? 'l' : '?'} ${mode}`;
    }
  }
  await walk('');
  return out;
}
