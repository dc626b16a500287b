// A restore drill's check of a whole-server dump, which it cannot load: the bytes read back are as
// many as recorded, they end with the dump tool's completion line, and the databases are counted
// wherever the chunks split.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ArtifactRecord } from '../../src/engine/backup/manifest.js';
import { mysqlRestorer } from '../../src/plugins/databases/mysql-restore.js';
import { postgresRestorer } from '../../src/plugins/databases/postgres-restore.js';

const PG = Buffer.from([
  '--\n-- PostgreSQL database cluster dump\n--\n\nCREATE ROLE gitea;\n',
  'CREATE DATABASE gitea WITH TEMPLATE = template0 OWNER = gitea;\n\\connect gitea\nCOPY t (x) FROM stdin;\n1\n\\.\n',
  'CREATE DATABASE immich WITH TEMPLATE = template0;\n\\connect immich\n',
  '\n--\n-- PostgreSQL database cluster dump complete\n--\n\n',
].join(''));
const MY = Buffer.from('-- MariaDB dump\n\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `ghost`;\nUSE `ghost`;\n\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `mysql`;\n\n-- Dump completed on 2026-11-29 12:08:06\n');

const artifact = (kind: string, bytes: Buffer, sizeBytes = bytes.length): ArtifactRecord => ({ kind, name: 'all', filename: `${kind}/${kind}-all.sql`, snapshotId: 'abcd1234', sizeBytes, addedBytes: null, meta: {} });
const check = (kind: 'postgres' | 'mysql', a: ArtifactRecord, chunks: Buffer[]) =>
  (kind === 'postgres' ? postgresRestorer : mysqlRestorer).checkUnloaded!(a)!(Readable.from(chunks));

describe('a drill of a whole-server dump', () => {
  it('passes a whole dump, counting its databases however the chunks split', async () => {
    for (const [kind, dump, tool] of [['postgres', PG, 'pg_dumpall'], ['mysql', MY, 'mysqldump']] as const) {
      const want = `${kind}:all: ${dump.length} bytes read back whole, 2 databases, ending with ${tool}'s completion line (a whole-server dump is not loaded by a drill: it is for rebuilding a server)`;
      expect(await check(kind, artifact(kind, dump), [dump])).toBe(want);
      expect(await check(kind, artifact(kind, dump), [...dump].map((b) => Buffer.from([b])))).toBe(want);
      for (let cut = 1; cut < dump.length; cut += 7) expect(await check(kind, artifact(kind, dump), [dump.subarray(0, cut), dump.subarray(cut)])).toBe(want);
    }
    const undated = Buffer.from(MY.toString().replace(/ on [0-9: -]+\n$/, '\n'));
    expect(await check('mysql', artifact('mysql', undated), [undated])).toMatch(/ending with mysqldump's completion line/);
  });

  it('fails a dump cut short, or of another length than recorded', async () => {
    for (const [kind, dump] of [['postgres', PG], ['mysql', MY]] as const) {
      const cut = dump.subarray(0, dump.length - 30);
      await expect(check(kind, artifact(kind, cut), [cut])).rejects.toThrow(/does not end with .*completion line: it was cut short/);
      await expect(check(kind, artifact(kind, dump, dump.length + 1), [dump])).rejects.toThrow(`${kind}:all: ${dump.length} bytes read back, the backup recorded ${dump.length + 1}`);
    }
  });

  it('is only for whole-server dumps: an app database is loaded', () => {
    expect(postgresRestorer.checkUnloaded!({ ...artifact('postgres', PG), name: 'gitea' })).toBeUndefined();
    expect(mysqlRestorer.checkUnloaded!({ ...artifact('mysql', MY), name: 'ghost' })).toBeUndefined();
  });
});
