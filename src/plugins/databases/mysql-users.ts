// MariaDB accounts beside an app's schema (the `mysql-users` artifact, mysql.ts): on a server that
// lost them (rebuilt empty), the accounts the app logs in with are made again before its schema is
// restored. Accounts that exist are left as they are, as PostgreSQL's roles are.
import type { Readable } from 'node:stream';
import { readAll } from '../../engine/backup/catalog.js';
import type { RestoreTarget } from '../../engine/restore/side.js';
import type { KubeClient } from '../../kube/index.js';
import { podText, type PodTarget } from '../exec-source.js';
import { mysqlCommand, mysqlQuery, quoteIdent, sqlString } from './mysql.js';
import { adminPassword, engineServer, serverPod } from './server.js';

export interface MysqlAccount {
  user: string;
  host: string;
  /** Its CREATE USER, then its GRANTs, as SHOW printed them (without the `;`). */
  statements: string[];
}

const CREATE = /^CREATE USER `((?:[^`]|``)*)`@`((?:[^`]|``)*)`(?: |$)/;

/**
 * The accounts of a mysql-users artifact. Only an account's CREATE USER and its own GRANTs are
 * taken, one statement a line: any other line fails the artifact before anything runs (the error
 * names the line's number, not its text, which may hold a password hash).
 */
export function parseMysqlAccounts(sql: string): MysqlAccount[] {
  const out: MysqlAccount[] = [];
  sql.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('--')) return;
    // One statement a line: a `;` would let a line run a second one.
    const m = line.includes(';') ? null : CREATE.exec(line);
    if (m) {
      out.push({ user: m[1]!.replace(/``/g, '`'), host: m[2]!.replace(/``/g, '`'), statements: [line] });
      return;
    }
    const cur = out.at(-1);
    if (cur && !line.includes(';') && line.startsWith('GRANT ') && line.includes(` TO ${quoteIdent(cur.user)}@${quoteIdent(cur.host)}`)) {
      cur.statements.push(line);
      return;
    }
    throw new Error(`mysql-users artifact: line ${i + 1} is not a CREATE USER or a GRANT of its account`);
  });
  return out;
}

const accountName = (a: { user: string; host: string }) => `${a.user}@${a.host}`;

async function accountNames(client: KubeClient, target: PodTarget, pw: string, signal?: AbortSignal): Promise<Set<string>> {
  return new Set((await mysqlQuery(client, target, pw, 'select user, host from mysql.user', undefined, signal)).map(([user, host]) => accountName({ user: user!, host: host! })));
}

async function server(t: RestoreTarget, signal?: AbortSignal): Promise<{ target: PodTarget; pw: string }> {
  const s = engineServer(t.inst, 'mysql');
  return { target: await serverPod(t.client, s, 'mysql', signal), pw: await adminPassword(t.client, s, signal) };
}

/** Makes the artifact's accounts the server lacks, with their grants; returns them (`user@host`). */
export async function applyMissingMysqlAccounts(t: RestoreTarget, stream: Readable, signal: AbortSignal): Promise<string[]> {
  const accounts = parseMysqlAccounts((await readAll(stream, 16 << 20)).toString('utf8'));
  const { target, pw } = await server(t, signal);
  const existing = await accountNames(t.client, target, pw, signal);
  const missing = accounts.filter((a) => !existing.has(accountName(a)));
  if (missing.length === 0) return [];
  // On stdin after the password's line, never in an argv: the statements hold password hashes.
  const script = missing.flatMap((a) => a.statements.map((s) => `${s};`)).join('\n');
  await podText(t.client, target, mysqlCommand(['mysql', '-uroot', '-N', '-B']), signal, `${pw}\n${script}\n`);
  return missing.map(accountName);
}

/** Drops accounts (`user@host`) that a failed restore made; returns those still there. */
export async function dropMysqlAccounts(t: RestoreTarget, names: readonly string[], signal: AbortSignal): Promise<string[]> {
  if (names.length === 0) return [];
  const { target, pw } = await server(t, signal);
  const script = names.map((n) => {
    const at = n.lastIndexOf('@');
    return `drop user if exists ${sqlString(n.slice(0, at))}@${sqlString(n.slice(at + 1))};`;
  }).join('\n');
  await podText(t.client, target, mysqlCommand(['mysql', '-uroot', '-N', '-B', '--force']), signal, `${pw}\n${script}\n`);
  const left = await accountNames(t.client, target, pw, signal);
  return names.filter((n) => left.has(n));
}
