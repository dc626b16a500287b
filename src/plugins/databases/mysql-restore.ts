// MariaDB restore: the dump is loaded into a side schema, checked, then swapped in with one atomic
// RENAME TABLE of all tables (the live tables move to an "old" schema, kept until the whole
// restore succeeded). Triggers and views do not move across schemas; see docs/DESIGN.md.
import { PassThrough, type Readable } from 'node:stream';
import type { KubeClient } from '../../kube/index.js';
import type { ArtifactRecord } from '../../engine/backup/manifest.js';
import { createdThenAbortable, filledOrDiscarded, type ArtifactRestorer, type RestoreTarget, type SideDescription, type SideRestore } from '../../engine/restore/side.js';
import { streamIntoPod, type PodTarget } from '../exec-source.js';
import { appDatabaseName } from './detect.js';
import { mysqlCommand, mysqlQuery, mysqlRowCounts } from './mysql.js';
import { adminPassword, checkDatabaseName, engineServer, serverPod } from './server.js';
import { compareRowCounts } from './verify.js';

const q = (s: string) => '`' + s.replace(/`/g, '``') + '`';

interface MyDescription extends SideDescription {
  kind: 'mysql';
  live: string;
  side: string;
  old: string;
}

async function tables(client: KubeClient, target: PodTarget, pw: string, schema: string): Promise<string[]> {
  return (await mysqlQuery(client, target, pw, `select table_name from information_schema.tables where table_schema = '${schema}' and table_type = 'BASE TABLE' order by 1`)).map((r) => r[0]!);
}

/** The server pod is looked up for every step: after a server restart it is another pod. */
function handle(client: KubeClient, locate: () => Promise<PodTarget>, pw: string, d: MyDescription, artifact?: ArtifactRecord): SideRestore {
  const run = async (sql: string) => mysqlQuery(client, await locate(), pw, sql);
  const tablesOf = async (schema: string) => tables(client, await locate(), pw, schema);
  return {
    description: d,
    async check(signal) {
      return compareRowCounts(`schema ${d.live}`, await mysqlRowCounts(client, await locate(), pw, d.side, signal), artifact?.meta);
    },
    async swapIn() {
      const [liveTables, sideTables] = [await tablesOf(d.live), await tablesOf(d.side)];
      await run(`create database if not exists ${q(d.live)}; create database if not exists ${q(d.old)}`);
      const moves = [
        ...liveTables.map((t) => `${q(d.live)}.${q(t)} to ${q(d.old)}.${q(t)}`),
        ...sideTables.map((t) => `${q(d.side)}.${q(t)} to ${q(d.live)}.${q(t)}`),
      ];
      if (moves.length) await run(`rename table ${moves.join(', ')}`);
    },
    async swapBack() {
      const [liveTables, oldTables] = [await tablesOf(d.live), await tablesOf(d.old)];
      await run(`create database if not exists ${q(d.side)}`);
      const moves = [
        ...liveTables.map((t) => `${q(d.live)}.${q(t)} to ${q(d.side)}.${q(t)}`),
        ...oldTables.map((t) => `${q(d.old)}.${q(t)} to ${q(d.live)}.${q(t)}`),
      ];
      if (moves.length) await run(`rename table ${moves.join(', ')}`);
    },
    async commit() {
      await run(`drop database if exists ${q(d.old)}; drop database if exists ${q(d.side)}`);
    },
    async discard() {
      await run(`drop database if exists ${q(d.side)}`);
    },
  };
}

export const mysqlRestorer: ArtifactRestorer = {
  async restoreSide(t: RestoreTarget, artifact, stream: Readable, suffix, signal) {
    if (artifact.name === 'all') throw new Error('a whole-server dump is for rebuilding a server; restore each app from its own backup');
    const server = engineServer(t.inst, 'mysql');
    const target = await serverPod(t.client, server, 'mysql', signal);
    const pw = await adminPassword(t.client, server, signal);
    const live = checkDatabaseName(t.app.name === t.sourceApp ? artifact.name : appDatabaseName({ instance: t.inst.name, app: t.app.name, manifest: t.app.manifest!, appConfig: t.app.config }));
    const base = live.slice(0, 64 - 6 - suffix.length);
    const d: MyDescription = { kind: 'mysql', live, side: `${base}_wbr_${suffix}`, old: `${base}_wbo_${suffix}` };
    const h = handle(t.client, () => serverPod(t.client, server, 'mysql'), pw, d, artifact);
    return filledOrDiscarded(h, async () => {
      await createdThenAbortable(() => mysqlQuery(t.client, target, pw, `create database ${q(d.side)}`), signal);
      // The password line first (read by the pod's shell), then the dump, as one stdin.
      const stdin = new PassThrough();
      stdin.write(`${pw}\n`);
      stream.pipe(stdin);
      stream.once('error', (e) => stdin.destroy(e));
      stdin.on('error', () => undefined); // surfaced through the exec's own failure
      return streamIntoPod(t.client, target, mysqlCommand(['mysql', '-uroot', `--database=${d.side}`]), stdin, Buffer.byteLength(`${pw}\n`) + artifact.sizeBytes, signal);
    }, t);
  },
  async fromDescription(t, d) {
    const server = engineServer(t.inst, 'mysql');
    return handle(t.client, () => serverPod(t.client, server, 'mysql'), await adminPassword(t.client, server), d as MyDescription);
  },
};
