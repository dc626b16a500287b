// The PostgreSQL plugin's row counts, taken in the dump's own snapshot while the app writes: the
// counts recorded in the manifest are exactly the rows the dump gives back. In a file of its own:
// it writes into immich's database, which other tests compare with their dumps.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readAll } from '../../src/engine/backup/catalog.js';
import { pgRestore } from '../helpers/compare.js';
import { initRepository, OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

beforeAll(async () => {
  s = await startSimApp();
  await initRepository(s);
}, 180_000);
afterAll(async () => {
  await s?.close();
});

/** A hang fails with the step it happened in and the operation's log, not a bare test timeout. */
function watchdog(ms: number, describe: () => Promise<string>): { step(name: string): void; race<T>(p: Promise<T>): Promise<T>; clear(): void } {
  let current = 'start';
  let timer: NodeJS.Timeout | undefined;
  const fired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { void describe().then((d) => reject(new Error(`still not done after ${ms / 1000} s, at step "${current}"\n${d}`))); }, ms);
  });
  fired.catch(() => undefined);
  return {
    step(name) { current = name; },
    race: (p) => Promise.race([p, fired]),
    clear() { clearTimeout(timer); },
  };
}

it('postgres: the recorded row counts are the rows of the dump itself, exact while the app writes', async () => {
  const pg = s.sim.databases.postgres!;
  const rt = s.sim.kube.runtime;
  const engine = s.app.services.engine;
  let opId: string | undefined;
  const dog = watchdog(75_000, async () => (opId ? (await engine.logTail(opId, 40)).join('\n') : 'no operation yet'));
  await pg.query('create table wild_probe (n int); insert into wild_probe select generate_series(1, 5);', 'immich');
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  let reached!: () => void;
  const dumpAsked = new Promise<void>((r) => { reached = r; });
  // pg_dump is held back after the backup has begun; the app writes meanwhile.
  rt.execGate = (command) => {
    if (command[0] !== 'pg_dump') return undefined;
    rt.execGate = undefined;
    reached();
    return held;
  };
  try {
    dog.step('submitting the backup');
    const res = await s.gql<{ backupApp: { operation?: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "immich" }) { ${OP_FIELDS} } }`);
    opId = res.data?.backupApp.operation?.operationId;
    expect(opId, JSON.stringify(res)).toBeDefined();
    const running = engine.waitFor(opId!);
    dog.step('waiting for pg_dump');
    await dog.race(Promise.race([dumpAsked, running.then(() => { throw new Error('the backup ended without running pg_dump'); })]));
    dog.step('writing while pg_dump waits');
    await dog.race(pg.query('insert into wild_probe select generate_series(6, 8)', 'immich'));
    release();
    dog.step('waiting for the backup');
    const done = await dog.race(running);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    const latest = await s.gql<{ instance: { app: { latestBackup: { backupId: string; artifacts: Array<{ kind: string; snapshot: { snapshotId: string; paths: string[] } }> } } } }>(
      `{ instance(name: "test") { app(name: "immich") { latestBackup { backupId artifacts { kind snapshot { snapshotId paths } } } } } }`);
    const b = latest.data!.instance.app.latestBackup;
    expect(b.backupId).toBe(done.backupId);
    const repo = await s.app.services.repositories.open(await s.app.services.store.requireInstance('test'));
    const dumpOf = (kind: string) => {
      const a = b.artifacts.find((x) => x.kind === kind)!;
      return repo.dump(a.snapshot.snapshotId, a.snapshot.paths[0]!);
    };
    dog.step('reading the manifest');
    const manifest = JSON.parse((await dog.race(readAll(dumpOf('manifest'), 1 << 20))).toString('utf8')) as { artifacts: Array<{ kind: string; meta: { rowCounts?: Record<string, number>; rowCountsExact?: boolean } }> };
    const meta = manifest.artifacts.find((a) => a.kind === 'postgres')!.meta;
    expect(meta.rowCountsExact).toBe(true);
    expect(meta.rowCounts?.['public.wild_probe']).toBe(5);
    expect((await pg.query('select count(*) from wild_probe', 'immich')).trim()).toBe('8');
    // Every recorded count is what the dump gives back.
    dog.step('restoring the dump');
    await dog.race(pgRestore(pg, dumpOf('postgres'), 'verify_probe'));
    dog.step('counting the restored rows');
    const restored: Record<string, number> = {};
    for (const t of Object.keys(meta.rowCounts!)) {
      const [schema, name] = t.split('.');
      restored[t] = Number(await pg.query(`select count(*) from "${schema}"."${name}"`, 'verify_probe'));
    }
    expect(restored).toEqual(meta.rowCounts);
  } finally {
    dog.clear();
    rt.execGate = undefined;
    release();
  }
}, 120_000);
