// A backup whose manifest snapshot is there but cannot be read (the repository's data damaged or
// away, restic failing) is listed INCOMPLETE, and retention removes incomplete backups after 24 h, as does the
// clean-up after a crash. Neither may remove anything on that ground: a server with an empty
// manifest store (a new Wild Central connected to the old repository) reads every manifest through
// restic, so one bad moment of the repository would otherwise cost complete backups.
import { cp, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { renderMetrics } from '../../src/engine/metrics.js';
import { observeLogLines } from '../../src/util/log.js';
import { buildApp } from '../../src/server.js';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from '../helpers/app.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

const RETENTION = `mutation($input: ApplyRetentionInput!) { applyRetention(input: $input) { __typename ... on RetentionPreviewPayload { keep { backupId } remove { backupId } operation { operationId } } ... on Error { code message } } }`;
type Retention = { applyRetention: { __typename: string; code?: string; message?: string; keep?: Array<{ backupId: string }>; remove?: Array<{ backupId: string }>; operation?: { operationId: string } | null } };
type Listed = { id: string; backupId: string; status: string; problem: string | null };
type Status = { initialized: boolean; reachable: boolean; error: string | null; unreadableSnapshots: Array<{ id: string; reason: string }> };

async function listed(): Promise<Listed[]> {
  const res = await s.gql<{ instance: { backups: { edges: Array<{ node: Listed }> } } }>(`{ instance(name: "test") { backups { edges { node { id backupId status problem } } } } }`);
  expect(res.errors).toBeUndefined();
  return res.data!.instance.backups.edges.map((e) => e.node).sort((a, b) => a.backupId.localeCompare(b.backupId));
}

async function status(): Promise<Status> {
  const res = await s.gql<{ instance: { repository: { status: Status } } }>(`{ instance(name: "test") { repository { status { initialized reachable error unreadableSnapshots { id reason } } } } }`);
  expect(res.errors).toBeUndefined();
  return res.data!.instance.repository.status;
}

/** Forgets what the server cached of the repository: the next query lists with restic. */
async function forgetCached(): Promise<void> {
  const inst = await s.app.services.store.requireInstance('test');
  (await s.app.services.repositories.open(inst)).invalidate();
  s.app.services.repositories.invalidate('test');
}

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
}, 180_000);
afterAll(async () => {
  vi.useRealTimers();
  await s?.close();
});

describe('a backup whose manifest cannot be read', () => {
  it('is listed with the problem; retention and the clean-up after a crash remove nothing, and restores and drills refuse it, until it reads again', async () => {
    const ids = [(await backupLatest(s, 'website')).backupId, (await backupLatest(s, 'website')).backupId].sort();
    // A policy that keeps both: what retention may remove is only what it reads as incomplete.
    await updateYamlFile(path.join(s.sim.instanceDir, 'config.yaml'), (doc) => setPath(doc, ['cloud', 'backup', 'retention'], { keepLast: 5 }), 0o644);

    // A new start with no manifest kept (as a new Wild Central has none): every manifest is read
    // through restic, and the blobs of the repository's data read back damaged (the snapshots and
    // the index still list; restic fails a dump at once, where a missing file it tries for 40 s).
    await s.app.stop();
    await rm(path.join(s.app.services.store.paths.stateDir, 'manifests'), { recursive: true, force: true });
    s.app = await buildApp({ dataDir: s.sim.dataDir, port: 0, env: { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN } });
    const data = path.join(s.sim.instanceDir, 'backups', 'repository', 'data');
    await cp(data, `${data}-whole`, { recursive: true });
    for (const f of await readdir(data, { recursive: true })) {
      const file = path.join(data, f);
      if (!(await stat(file)).isFile()) continue;
      // A pack: its blobs, then its encrypted header, then the header's length (uint32 LE).
      const pack = await readFile(file);
      const blobs = pack.length - 4 - pack.readUInt32LE(pack.length - 4);
      await writeFile(file, Buffer.concat([Buffer.alloc(blobs, 0x55), pack.subarray(blobs)]));
    }
    // Three days on: both backups are past retention's 24 h grace for incomplete ones.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.now() + 3 * 24 * 3600_000);
    const failedReads: string[] = [];
    const stopObserving = observeLogLines((line) => { if (line.includes('"unreadable backup manifest"')) failedReads.push(line); });
    try {
      const unread = await listed();
      expect(unread.map((b) => b.backupId)).toEqual(ids);
      for (const b of unread) {
        expect(b.status).toBe('INCOMPLETE');
        expect(b.problem).toMatch(/^its manifest \(snapshot [0-9a-f]{8}\) could not be read: .+; the backup may be complete/);
      }
      // Each manifest was read once: the queries that follow answer from the failure, for a while,
      // instead of running restic again each.
      expect(failedReads).toHaveLength(2);
      for (let i = 0; i < 3; i++) expect(await listed()).toEqual(unread);
      expect(failedReads).toHaveLength(2);

      // Metrics say so, for an alert.
      expect(await renderMetrics(s.app.services)).toContain('wild_backup_backups_unreadable{instance="test"} 2\n');

      // Retention, as a preview and for real: refused, naming why; no operation, nothing removed.
      for (const dryRun of [true, false]) {
        const r = await s.gql<Retention>(RETENTION, { input: { instance: 'test', dryRun } });
        expect(r.data!.applyRetention.__typename, JSON.stringify(r)).toBe('RepositoryError');
        expect(r.data!.applyRetention.code).toBe('BACKUPS_UNREADABLE');
        expect(r.data!.applyRetention.message).toContain(`nothing is removed while the backups of instance "test" cannot all be read (backup ${ids[1]}: its manifest`);
      }
      expect(s.app.services.engine.list({ instance: 'test' }).filter((o) => o.kind === 'APPLY_RETENTION')).toEqual([]);

      // Nor is it restored or drilled as if it had no manifest: it cannot be used now, and says why.
      for (const m of [
        `mutation($id: ID!) { restoreBackup(input: { backupId: $id }) { ${OP_FIELDS} } }`,
        `mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`,
      ]) {
        const res = await s.gql<Record<string, { __typename: string; code?: string; message?: string }>>(m, { id: unread[0]!.id });
        const payload = Object.values(res.data ?? {})[0];
        expect(payload, JSON.stringify(res)).toMatchObject({ __typename: 'RepositoryError', code: 'BACKUPS_UNREADABLE' });
        expect(payload!.message).toMatch(new RegExp(`^backup ${ids[0]} cannot be used now: its manifest \\(snapshot [0-9a-f]{8}\\) could not be read`));
      }

      expect(failedReads).toHaveLength(2);

      // The clean-up after a crash (a backup's operation found unfinished at start-up) keeps it too.
      const inst = await s.app.services.store.requireInstance('test');
      const err = await s.app.services.backups.removeIncomplete(inst, ids[0]!, () => undefined).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('BACKUPS_UNREADABLE');
      // That clean-up lists the snapshots anew, first: a new listing reads the manifests again.
      expect(failedReads).toHaveLength(4);
    } finally {
      stopObserving();
      vi.useRealTimers();
      await rm(data, { recursive: true, force: true });
      await rename(`${data}-whole`, data);
      // restic 0.14 keeps the packs it reads (those with trees) in its cache, damaged as it read
      // them here (restic stats, for /metrics, walks every tree). Wild Backup drops them when a
      // read fails on a damaged blob (invalid-data.test.ts), but once a prune that read them
      // panicked instead (restic 0.14, seen once in CI): gone, as with the data repaired.
      for (const f of await readdir(s.sim.dataDir, { recursive: true })) {
        if (/(^|\/)cache\/restic\/[0-9a-f]{64}\/data$/.test(f)) await rm(path.join(s.sim.dataDir, f), { recursive: true, force: true });
      }
    }

    // The data is back, and the next listing reads the manifests again: both COMPLETE, and
    // retention runs and keeps both.
    await forgetCached();
    const whole = await listed();
    expect(whole.map(({ backupId, status, problem }) => ({ backupId, status, problem }))).toEqual(ids.map((backupId) => ({ backupId, status: 'COMPLETE', problem: null })));
    const r = await s.gql<Retention>(RETENTION, { input: { instance: 'test' } });
    expect(r.data!.applyRetention.__typename, JSON.stringify(r)).toBe('RetentionPreviewPayload');
    expect(r.data!.applyRetention.remove).toEqual([]);
    const rec = await s.app.services.engine.waitFor(r.data!.applyRetention.operation!.operationId);
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    expect((await listed()).map((b) => [b.backupId, b.status])).toEqual(ids.map((id) => [id, 'COMPLETE']));
  }, 240_000);

  it('a snapshot damaged where it is stored: the other backups stay listed, the status names it, and retention refuses until it reads again', async () => {
    const before = await listed();
    const third = (await backupLatest(s, 'website')).backupId;
    const inst = await s.app.services.store.requireInstance('test');
    const repo = await s.app.services.repositories.open(inst);
    const [manifest] = await repo.snapshots({ tags: [`backup:${third}`, 'artifact:manifest'] });
    const stored = path.join(s.sim.instanceDir, 'backups', 'repository', 'snapshots', manifest!.id);
    const whole = await readFile(stored);
    // Damaged in the repository, and gone from restic's cache (else restic reads its copy).
    await truncate(stored, whole.length - 16);
    for (const f of await readdir(s.sim.dataDir, { recursive: true })) {
      if (f.endsWith(path.join('snapshots', manifest!.id.slice(0, 2), manifest!.id)) && f.includes('cache')) await rm(path.join(s.sim.dataDir, f));
    }
    await forgetCached();
    try {
      // The backups that read stay listed as they were; the one whose manifest is left out is INCOMPLETE.
      const partial = await listed();
      expect(partial.filter((b) => b.backupId !== third)).toEqual(before);
      expect(partial.find((b) => b.backupId === third)?.status).toBe('INCOMPLETE');
      const st = await status();
      expect(st).toMatchObject({ initialized: true, reachable: true, error: null });
      expect(st.unreadableSnapshots).toEqual([{ id: manifest!.shortId, reason: `load <snapshot/${manifest!.id.slice(0, 10)}>: invalid data returned` }]);
      expect(await renderMetrics(s.app.services)).toContain('wild_backup_repository_unreadable_snapshots{instance="test"} 1\n');
      const r = await s.gql<Retention>(RETENTION, { input: { instance: 'test', dryRun: true } });
      expect(r.data!.applyRetention.__typename, JSON.stringify(r)).toBe('RepositoryError');
      expect(r.data!.applyRetention.code).toBe('BACKUPS_UNREADABLE');
      expect(r.data!.applyRetention.message).toContain(`(snapshot ${manifest!.shortId}: load <snapshot/`);
    } finally {
      await writeFile(stored, whole);
    }
    await forgetCached();
    expect((await listed()).find((b) => b.backupId === third)?.status).toBe('COMPLETE');
    expect((await status()).unreadableSnapshots).toEqual([]);
    const metrics = await renderMetrics(s.app.services);
    expect(metrics).toContain('wild_backup_repository_unreadable_snapshots{instance="test"} 0\n');
    expect(metrics).toContain('wild_backup_backups_unreadable{instance="test"} 0\n');
  }, 240_000);
});
