// The backup pipeline against real restic, with local command sources: a complete backup is one
// snapshot per artifact plus the manifest; a failing or cancelled one leaves no snapshot at all.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationRecord } from '../../src/engine/operations/index.js';
import { BackupCatalog, readAll } from '../../src/engine/backup/catalog.js';
import { runBackup } from '../../src/engine/backup/pipeline.js';
import type { ArtifactSource } from '../../src/engine/backup/source.js';
import type { ResticRepository } from '../../src/engine/restic/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { commandSource } from '../helpers/sources.js';

let t: TestApp;
let repo: ResticRepository;
let catalog: BackupCatalog;

beforeAll(async () => {
  t = await startTestApp();
  const inst = await t.app.services.store.requireInstance('home');
  const init = await t.app.services.repositories.init('home');
  expect((await t.app.services.engine.waitFor(init.id)).status).toBe('SUCCEEDED');
  repo = await t.app.services.repositories.open(inst);
  catalog = new BackupCatalog(`${t.data.dir}/manifests`);
});
afterAll(async () => { await t.close(); });

async function backup(app: string, sources: ArtifactSource[], opts: { cancelAfterMs?: number } = {}): Promise<OperationRecord> {
  const rec = await t.app.services.engine.submit({
    kind: 'BACKUP_APP', instance: 'home', app,
    run: async (ctx) => {
      const r = await runBackup({ repo, catalog, instance: 'home', app, sources, skipped: [], ctx });
      return { backupId: r.backupId };
    },
  });
  if (opts.cancelAfterMs) setTimeout(() => void t.app.services.engine.cancel(rec.id).catch(() => undefined), opts.cancelAfterMs);
  return t.app.services.engine.waitFor(rec.id);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('runBackup', () => {
  it('writes one snapshot per artifact and the manifest; restic dump gives back the same bytes', async () => {
    const done = await backup('gitea', [
      commandSource('postgres', 'gitea', ['sh', '-c', 'head -c 3000000 /dev/urandom > /tmp/wild-pipeline-a && cat /tmp/wild-pipeline-a'], 3_000_000),
      commandSource('pvc', 'gitea-data', ['sh', '-c', 'seq 1 200000']),
    ]);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    const backups = await catalog.list(repo, 'home');
    const b = backups.find((x) => x.backupId === done.backupId)!;
    expect(b.status).toBe('COMPLETE');
    expect(b.artifacts.map((a) => `${a.kind}:${a.name}`)).toEqual(['postgres:gitea', 'pvc:gitea-data', 'manifest:backup.json']);
    expect(b.sizeBytes).toBe(3_000_000 + (await readAll((await import('node:child_process')).spawn('seq', ['1', '200000']).stdout, 1e8)).length);
    const pgSnap = b.artifacts[0]!.snapshot;
    expect(pgSnap.tags).toEqual(expect.arrayContaining(['wild-backup', 'instance:home', 'app:gitea', `backup:${done.backupId}`, 'artifact:postgres:gitea']));
    expect(pgSnap.paths).toEqual(['/gitea/postgres-gitea.bin']);
    const restored = await readAll(repo.dump(pgSnap.id, '/gitea/postgres-gitea.bin'), 1e8);
    const { readFile } = await import('node:fs/promises');
    expect(sha(restored)).toBe(sha(await readFile('/tmp/wild-pipeline-a')));
    expect(done.progress.bytesDone).toBe(b.sizeBytes);
  });

  it('fails naming the artifact and its stderr when a source exits non-zero, and leaves no snapshot', async () => {
    const done = await backup('immich', [
      commandSource('pvc', 'immich-pvc', ['sh', '-c', 'seq 1 1000']),
      commandSource('postgres', 'immich', ['sh', '-c', 'seq 1 50000; echo "pg_dump: error: connection lost" >&2; exit 1']),
    ]);
    expect(done.status).toBe('FAILED');
    expect(done.error?.message).toContain('postgres:immich');
    expect(done.error?.message).toContain('connection lost');
    const left = await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true });
    expect(left).toEqual([]);
    expect((await catalog.list(repo, 'home')).some((b) => b.backupId === done.backupId)).toBe(false);
  });

  it('cancels mid-stream: CANCELLED, restic stopped, no snapshot left', async () => {
    const done = await backup('ghost', [
      commandSource('pvc', 'ghost-content', ['sh', '-c', 'seq 1 10; sleep 30; seq 1 10']),
    ], { cancelAfterMs: 1500 });
    expect(done.status).toBe('CANCELLED');
    const left = await repo.snapshots({ tags: [`backup:${done.backupId}`], refresh: true });
    expect(left).toEqual([]);
  });
});
