// A restore drill (verifyBackup) whose pg_restore fails mid-stream: the drill reports the database as
// failed and the artifact's `restic dump` is gone once the drill has ended. The dump used to be left
// paused for good (pg_restore's exec closed the counted stream, which only unpiped the dump), blocked
// writing its stdout and holding a repository lock that made forget and prune fail until a restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseResticOnce, resticChildren, startOperation } from '../helpers/faults.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
const DUMP = ['dump', '/gitea/postgres-gitea.pgdump'];
const dumps = async () => (await resticChildren()).filter((p) => DUMP.every((w) => p.argv.includes(w)));

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
  // Random text (pg_dump compresses it about by half): a dump of several MiB, much more than the
  // pipes and stream buffers between restic and pg_restore hold.
  await s.sim.databases.postgres!.query(
    `create table bulk as select g as id, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) as payload from generate_series(1, 150000) g`, 'gitea');
  await initRepository(s);
}, 240_000);
afterAll(async () => { await s?.close(); });

describe('verifyBackup with pg_restore failing mid-stream', () => {
  it('(control) an undisturbed drill of the same backup succeeds and leaves no restic dump running', async () => {
    const b = await backupLatest(s, 'gitea');
    const rec = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    await expect.poll(async () => (await dumps()).map((p) => p.argv.join(' ')), { timeout: 10_000, interval: 100 }).toEqual([]);
  }, 240_000);

  it('reports the database as failed and leaves no restic dump running', async () => {
    const b = await backupLatest(s, 'gitea');
    const opId = await startOperation(s, `mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: b.id });
    // restic dump held after its first MiB, so that pg_restore fails with most of the dump unread.
    const held = await pauseResticOnce(DUMP, 'wchar', 1 << 20);
    try {
      const pg = s.sim.databases.postgres!;
      for (const t0 = Date.now(); (await pg.query(`select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'pg_restore'`)).trim() === '0';) {
        if (Date.now() - t0 > 30_000) throw new Error('pg_restore never connected');
        await new Promise((r) => setTimeout(r, 20));
      }
      held.resume();
      const rec = await s.app.services.engine.waitFor(opId);
      expect(rec.status).toBe('FAILED');
      expect(rec.error?.code).toBe('VERIFICATION_FAILED');
      const v = await s.gql<{ node: { verification: { ok: boolean; details: string } } }>(
        `query($id: ID!) { node(id: $id) { ... on Backup { verification { ok details } } } }`, { id: b.id });
      expect(v.data!.node.verification.ok).toBe(false);
      expect(v.data!.node.verification.details).toMatch(/^postgres:gitea: .*pg_restore/m);
      // The drill is over: nothing may still be streaming its dump (and holding the repository's lock).
      await expect.poll(async () => (await dumps()).map((p) => p.argv.join(' ')), { timeout: 10_000, interval: 100 }).toEqual([]);
    } finally {
      held.resume();
      // Without the fix the dump would outlive the test (and hold up the server's stop): end it.
      for (const p of await dumps()) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }, 240_000);
});
