// changeRepositoryPassword: the repository's own key changes with the password Wild Central keeps,
// the backups in it stay readable with the new password only, and no password is ever shown.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { READONLY_TOKEN, startTestApp, type TestApp } from '../helpers/app.js';
import { immutable, immutableDirsWork } from '../helpers/faults.js';
import { registerSecret } from '../helpers/leaks.js';

const run = promisify(execFile);
let t: TestApp;
const NEW = 'new-repository-password-do-not-leak-6';
const CHANGE = `mutation($input: ChangeRepositoryPasswordInput!) { changeRepositoryPassword(input: $input) { __typename
  ... on OperationPayload { operation { operationId kind } } ... on ValidationError { issues { path message } } ... on Error { code message } } }`;

const repoPath = () => path.join(t.data.instanceDir(), 'backups', 'repository');
const stored = async () => (parse(await readFile(path.join(t.data.instanceDir(), 'secrets.yaml'), 'utf8')) as { cloud: { backup: { defaultRepositoryPassword: string } } }).cloud.backup.defaultRepositoryPassword;
/** restic run by hand with a password (in its environment), as someone recovering by hand would. */
const restic = (password: string, ...args: string[]) => run('restic', ['-r', repoPath(), ...args], { env: { ...process.env, RESTIC_PASSWORD: password } });

beforeAll(async () => {
  t = await startTestApp();
  registerSecret(NEW);
  const init = await t.gql<{ initRepository: { operation: { operationId: string } } }>(`mutation { initRepository(input: { instance: "home" }) { ... on OperationPayload { operation { operationId } } } }`);
  expect((await t.app.services.engine.waitFor(init.data!.initRepository.operation.operationId)).status).toBe('SUCCEEDED');
}, 120_000);
afterAll(async () => { await t?.close(); });

describe('changeRepositoryPassword', () => {
  it('refuses the password the repository has now, and a read-only token, changing nothing', async () => {
    const old = await stored();
    const same = await t.gql<{ changeRepositoryPassword: { __typename: string; issues: Array<{ path: string; message: string }> } }>(CHANGE, { input: { instance: 'home', newPassword: old } });
    expect(same.data!.changeRepositoryPassword).toMatchObject({ __typename: 'ValidationError', issues: [{ path: 'input.newPassword', message: 'is the password the repository has now' }] });
    const readonly = await t.gql<{ changeRepositoryPassword: { __typename: string } }>(CHANGE, { input: { instance: 'home', newPassword: NEW } }, READONLY_TOKEN);
    expect(readonly.data!.changeRepositoryPassword.__typename).toBe('ForbiddenError');
    expect(await stored()).toBe(old);
    const { stdout } = await restic(old, 'key', 'list', '--json');
    expect(JSON.parse(stdout)).toHaveLength(1);
  });

  it.skipIf(!immutableDirsWork())('a new password that cannot be saved takes its key away again: the old password stays the one', async () => {
    const old = await stored();
    const dir = t.data.instanceDir(); // where secrets.yaml is replaced: a disk that takes no write
    immutable(dir, true);
    let rec;
    try {
      const res = await t.gql<{ changeRepositoryPassword: { operation: { operationId: string } } }>(CHANGE, { input: { instance: 'home', newPassword: NEW } });
      rec = await t.app.services.engine.waitFor(res.data!.changeRepositoryPassword.operation.operationId);
    } finally {
      immutable(dir, false);
    }
    expect(rec.status).toBe('FAILED');
    expect(rec.error).toMatchObject({ code: 'WRITE_FAILED', message: expect.stringMatching(/^the new password could not be saved in secrets\.yaml, so the old one stays: /) });
    expect(await stored()).toBe(old);
    expect(JSON.parse((await restic(old, 'key', 'list', '--json')).stdout)).toHaveLength(1);
    await expect(restic(NEW, 'cat', 'config')).rejects.toThrow(/wrong password/);
  }, 120_000);

  it('changes the key and the stored password: the backups open with the new one only', async () => {
    const old = await stored();
    await run('sh', ['-c', 'echo "a backup from before" | restic -r "$REPO" backup --stdin --stdin-filename before.txt -q'], { env: { ...process.env, REPO: repoPath(), RESTIC_PASSWORD: old } });
    const res = await t.gql<{ changeRepositoryPassword: { __typename: string; operation: { operationId: string; kind: string } } }>(CHANGE, { input: { instance: 'home', newPassword: NEW } });
    expect(res.data!.changeRepositoryPassword).toMatchObject({ __typename: 'OperationPayload', operation: { kind: 'CHANGE_REPOSITORY_PASSWORD' } });
    const done = await t.app.services.engine.waitFor(res.data!.changeRepositoryPassword.operation.operationId);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(done.message).toMatch(/^the repository's password was changed: key [0-9a-f]+ removed, key [0-9a-f]+ added$/);

    expect(await stored()).toBe(NEW);
    await expect(restic(old, 'cat', 'config')).rejects.toThrow(/wrong password/);
    const { stdout } = await restic(NEW, 'dump', 'latest', 'before.txt');
    expect(stdout).toBe('a backup from before\n');
    const keys = JSON.parse((await restic(NEW, 'key', 'list', '--json')).stdout) as Array<{ current: boolean }>;
    expect(keys.map((k) => k.current)).toEqual([true]);
    // The server opens it with the new password at once.
    const status = await t.gql<{ instance: { repository: { status: { errorCode: string | null; snapshotCount: number } } } }>(`{ instance(name: "home") { repository { status { errorCode snapshotCount } } } }`);
    expect(status.data!.instance.repository.status).toEqual({ errorCode: null, snapshotCount: 1 });
    const log = (await t.app.services.engine.logTail(done.id, 20)).join('\n');
    expect(log).toContain('saved the new password in secrets.yaml (cloud.backup.defaultRepositoryPassword)');
    expect(log).not.toContain(NEW);
    expect(log).not.toContain(old);
  }, 120_000);
});
