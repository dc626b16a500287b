// The repository's password no longer matches: changed on the repository with restic by hand, or
// mistyped in secrets.yaml. Queries say so with restic's code (never a masked "Unexpected error"),
// a password put right is seen by the very next query, and no password is ever shown.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ResticUnreachableError } from '../../src/engine/restic/index.js';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import { ADMIN_TOKEN } from '../helpers/app.js';
import { registerSecret } from '../helpers/leaks.js';
import { killServer, spawnServer } from '../helpers/server-process.js';
import { backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
const NEW = 'new-password-set-with-restic-5';
const WRONG = 'wrong-password-typed-by-hand-7';

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
  registerSecret(NEW, WRONG);
}, 180_000);
afterAll(async () => { await s?.close(); });

interface Answer {
  data?: { instance: {
    repository: { status: { errorCode: string | null; error: string | null }; stats: { snapshotCount: number } | null };
    backups: { totalCount: number };
    app: { latestBackup: { backupId: string } | null };
  } };
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}
const QUERY = `{ instance(name: "test") {
  repository { status { errorCode error } stats { snapshotCount } }
  backups { totalCount }
  app(name: "website") { latestBackup { backupId } }
} }`;

/** The answer, checked for what must never be in one. */
function checked(res: Answer): Answer {
  const text = JSON.stringify(res);
  expect(text).not.toMatch(/Unexpected error|INTERNAL_SERVER_ERROR/);
  for (const secret of [NEW, WRONG, storedPassword()]) expect(text).not.toContain(secret);
  return res;
}
const query = async (): Promise<Answer> => checked(await s.gql(QUERY) as Answer);
const secretsFile = () => path.join(s.sim.instanceDir, 'secrets.yaml');
const storedPassword = (): string => (parse(readFileSync(secretsFile(), 'utf8')) as { cloud: { backup: { defaultRepositoryPassword: string } } }).cloud.backup.defaultRepositoryPassword;
const setStoredPassword = (password: string) => updateYamlFile(secretsFile(), (doc) => setPath(doc, ['cloud', 'backup', 'defaultRepositoryPassword'], password), 0o600);

describe('a repository password that no longer matches', () => {
  it('any restic failure a query meets answers with its code and message, not a masked error', async () => {
    // Whatever path it comes by (a listing that times out behind a status found a moment ago…).
    const backups = s.app.services.backups;
    const list = backups.list;
    backups.list = () => Promise.reject(new ResticUnreachableError('the repository at rest:http://127.0.0.1:9/ did not answer', { command: 'snapshots' }));
    try {
      const res = checked(await s.gql(`{ instance(name: "test") { backups { totalCount } } }`) as Answer);
      expect(res.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([['RESTIC_UNREACHABLE', 'the repository at rest:http://127.0.0.1:9/ did not answer']]);
    } finally {
      backups.list = list;
    }
  });

  it('is told by each query with its code, and one put right is seen by the next query', async () => {
    const { backupId } = await backupLatest(s, 'website');
    // The status only: statistics asked now would be kept for a minute, and answer from there.
    const before = await s.gql<{ instance: { repository: { status: { errorCode: string | null } } } }>(`{ instance(name: "test") { repository { status { errorCode } } } }`);
    expect(before.data!.instance.repository.status.errorCode).toBeNull();

    // Changed on the repository by hand: the status found a moment ago still says it opens, and
    // the statistics, which run restic, meet the new key.
    const repo = path.join(s.sim.instanceDir, 'backups', 'repository');
    const dir = mkdtempSync(path.join(tmpdir(), 'wild-new-password-'));
    try {
      writeFileSync(path.join(dir, 'password'), NEW, { mode: 0o600 });
      execFileSync('restic', ['-r', repo, 'key', 'passwd', '--new-password-file', path.join(dir, 'password')], { env: { ...process.env, RESTIC_PASSWORD: storedPassword() }, stdio: 'ignore' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const met = await query();
    expect(met.data!.instance.repository.stats).toBeNull();
    expect(met.errors?.map((e) => e.extensions?.code)).toEqual(['RESTIC_WRONG_PASSWORD']);
    expect(met.errors![0]!.message).toMatch(/^wrong repository password/);
    // The next status looks again.
    expect((await query()).data!.instance.repository.status).toMatchObject({ errorCode: 'RESTIC_WRONG_PASSWORD' });

    // The new password in secrets.yaml: the next query opens the repository with it.
    await setStoredPassword(NEW);
    const fixed = await query();
    expect(fixed.errors).toBeUndefined();
    expect(fixed.data!.instance.repository).toMatchObject({ status: { errorCode: null }, stats: { snapshotCount: expect.any(Number) } });
    expect(fixed.data!.instance.app.latestBackup?.backupId).toBe(backupId);

    // A mistyped one: the next query says so, not the status of the password before it.
    await setStoredPassword(WRONG);
    const typo = await query();
    expect(typo.errors).toBeUndefined();
    expect(typo.data!.instance.repository).toMatchObject({ status: { errorCode: 'RESTIC_WRONG_PASSWORD' }, stats: null });

    // A server started now has no listing from before: it lists nothing, and its status says why.
    await s.app.stop();
    const { child, url } = await spawnServer(s.sim.dataDir);
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ query: QUERY }) });
      const fresh = checked(await res.json() as Answer);
      expect(fresh.errors).toBeUndefined();
      expect(fresh.data!.instance).toMatchObject({
        repository: { status: { errorCode: 'RESTIC_WRONG_PASSWORD' }, stats: null },
        backups: { totalCount: 0 },
        app: { latestBackup: null },
      });
    } finally {
      await killServer(child);
      await setStoredPassword(NEW);
    }
  }, 180_000);
});
