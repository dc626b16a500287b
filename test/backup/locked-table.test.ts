// A table of the app's database locked by another session (an app's migration, a VACUUM FULL, a
// session left in a transaction) makes pg_dump wait. The backup then fails once the lock wait is
// over, naming the lock and the table, instead of hanging silently until its 10-minute start
// bound; nothing of it is left, and once the lock is gone the next backup is COMPLETE.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgresBinDir } from '../../src/sim/databases.js';
import { expectBackupLeftNothing } from '../helpers/faults.js';
import { OP_FIELDS, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] }, { lockWaitMs: 3000 });
  await initRepository(s);
}, 180_000);
afterAll(async () => { await s?.close(); });

/** A psql session holding ACCESS EXCLUSIVE on `table` of `db` until it is killed. */
async function holdLock(db: string, table: string): Promise<ChildProcessWithoutNullStreams> {
  const pg = s.sim.databases.postgres!;
  const psql = spawn(path.join(postgresBinDir(), 'psql'), ['-X', '-q', '-At', '-h', pg.runDir, '-p', String(pg.port), '-U', 'postgres', '-d', db]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    psql.stdout.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('locked')) resolve(); });
    psql.on('exit', (code) => reject(new Error(`psql exited ${code}`)));
    psql.stdin.write(`begin;\nlock table ${table} in access exclusive mode;\nselect 'locked';\n`);
  });
  return psql;
}

it('fails after the lock wait, naming the locked table, leaves nothing, and backs up once the lock is gone', async () => {
  const lock = await holdLock('gitea', 'issue');
  let failed;
  const started = Date.now();
  try {
    failed = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  } finally {
    lock.kill('SIGKILL');
  }
  expect(failed.status).toBe('FAILED');
  expect(Date.now() - started, 'failed after the 3 s lock wait, not the start bound').toBeLessThan(60_000);
  expect(failed.error?.message).toMatch(/^postgres:gitea: /);
  expect(failed.error?.message).toMatch(/^postgres:gitea: table public.issue is locked by another session of the database .*: the dump waited 3 s for it and gave up; back up again once it is released; pg_dump in /);
  expect(failed.error?.message).toContain('LOCK TABLE public.issue');
  await expectBackupLeftNothing(s, failed, 'gitea');

  const done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
}, 180_000);
