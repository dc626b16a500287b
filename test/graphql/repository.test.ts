// Repository configuration, status, stats and initialisation through GraphQL, against real restic
// on local repositories, with bad input answered by typed errors that change nothing.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureLogging } from '../../src/util/log.js';
import { startTestApp, READONLY_TOKEN, type TestApp } from '../helpers/app.js';

const logLines: string[] = [];
configureLogging({ sink: (l) => logLines.push(l) });

let t: TestApp;
const responses: string[] = [];
const SECRETS = ['s3-secret-key-do-not-leak-1', 'repo-password-do-not-leak-2', 'AKIA-do-not-leak-3', 'wrong-password-do-not-leak-4', 'other-repo-password-do-not-leak-5'];

async function gql<T>(query: string, variables?: Record<string, unknown>, token?: string) {
  const res = await t.gql<T>(query, variables, token);
  responses.push(JSON.stringify(res));
  return res;
}

async function waitOp(id: string) {
  const rec = await t.app.services.engine.waitFor(id);
  return rec;
}

beforeAll(async () => { t = await startTestApp({ repositoryTimeoutMs: 8000 }); });
afterAll(async () => {
  await t.close();
  // Not one secret used in this file appears in any response or log line.
  for (const s of SECRETS) {
    expect(responses.join('\n')).not.toContain(s);
    expect(logLines.join('\n')).not.toContain(s);
  }
});

const CONFIG = `query { instance(name: "home") { backupConfig { repository effectiveRepository isDefault backend hasPassword configuredCredentials endpoint region port retention { keepDaily keepWeekly keepLast } } } }`;
const STATUS = `query { instance(name: "home") { repository { uri backend status { initialized reachable error errorCode snapshotCount lastBackupAt } stats { totalSize logicalSize deduplicationRatio snapshotCount } } } }`;
const UPDATE = `mutation($input: UpdateBackupConfigInput!) { updateBackupConfig(input: $input) { __typename ... on BackupConfigPayload { backupConfig { repository backend hasPassword configuredCredentials retention { keepDaily keepLast } } } ... on ValidationError { code message issues { path message } } ... on Error { code message } } }`;
const TEST = `mutation($input: TestRepositoryInput!) { testRepository(input: $input) { __typename ... on RepositoryStatusPayload { status { initialized reachable error snapshotCount } } ... on ValidationError { issues { path message } } ... on Error { code message } } }`;
const INIT = `mutation { initRepository(input: { instance: "home" }) { __typename ... on OperationPayload { operation { operationId status kind } } ... on Error { code message } } }`;

describe('the embedded default repository', () => {
  it('is used when none is configured: local, under the instance, with a generated password in secrets.yaml', async () => {
    const cfg = await gql<{ instance: { backupConfig: Record<string, unknown> } }>(CONFIG);
    expect(cfg.data!.instance.backupConfig).toMatchObject({
      repository: null, isDefault: true, backend: 'local', hasPassword: true, configuredCredentials: [],
      effectiveRepository: path.join(t.data.instanceDir(), 'backups', 'repository'),
      retention: { keepDaily: 7, keepWeekly: 4, keepLast: null },
    });
    const before = await gql<{ instance: { repository: { status: { initialized: boolean; reachable: boolean }; stats: null } } }>(STATUS);
    expect(before.data!.instance.repository.status).toMatchObject({ initialized: false });
    expect(before.data!.instance.repository.stats).toBeNull();

    const init = await gql<{ initRepository: { __typename: string; operation: { operationId: string; kind: string } } }>(INIT);
    expect(init.data!.initRepository.__typename).toBe('OperationPayload');
    const done = await waitOp(init.data!.initRepository.operation.operationId);
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');

    const secretsFile = path.join(t.data.instanceDir(), 'secrets.yaml');
    expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
    const secretsText = await readFile(secretsFile, 'utf8');
    expect(secretsText).toContain('example-gitea-db-password'); // unrelated keys kept
    const generated = /defaultRepositoryPassword: (\S+)\n/.exec(secretsText)?.[1];
    expect(generated?.length).toBeGreaterThanOrEqual(24);
    SECRETS.push(generated!);

    const after = await gql<{ instance: { repository: { uri: string; status: Record<string, unknown>; stats: Record<string, number> } } }>(STATUS);
    expect(after.data!.instance.repository.status).toMatchObject({ initialized: true, reachable: true, error: null, snapshotCount: 0 });
    expect(after.data!.instance.repository.stats).toMatchObject({ snapshotCount: 0 });

    const again = await gql<{ initRepository: { operation: { operationId: string } } }>(INIT);
    const second = await waitOp(again.data!.initRepository.operation.operationId);
    expect(second.status).toBe('FAILED');
    expect(second.error?.code).toBe('RESTIC_ALREADY_INITIALIZED');
  });
});

describe('updateBackupConfig', () => {
  const configFile = () => path.join(t.data.instanceDir(), 'config.yaml');
  const secretsFile = () => path.join(t.data.instanceDir(), 'secrets.yaml');

  it('rejects bad input with every problem and its path, and leaves both files untouched', async () => {
    const [c0, s0] = [await readFile(configFile(), 'utf8'), await readFile(secretsFile(), 'utf8')];
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [{ repository: 'ftp://example.com/repo' }, ['input.config.repository']],
      [{ repository: 's3:https://s3.example.com/bucket', password: 'x'.repeat(10) }, ['input.config.credentials.s3']],
      [{ repository: 's3:https://s3.example.com/bucket', credentials: { s3: { accessKeyId: 'AKIA-do-not-leak-3', secretAccessKey: '' } } }, ['input.config.credentials.s3.secretAccessKey']],
      [{ repository: '/tmp/x', port: 70000 }, ['input.config.port']],
      [{ repository: '/tmp/x', retention: { keepDaily: -1 } }, ['input.config.retention.keepDaily']],
      [{ repository: 's3:https://s3.example.com/b', region: 'eu west', credentials: { s3: { accessKeyId: 'a', secretAccessKey: 'b' } }, password: '' }, ['input.config.password']],
      [{ repository: '/tmp/\u0000x' }, ['input.config.repository']],
      [{ repository: 'sftp:backup@nas:/srv/restic' }, ['input.config.credentials.sftp']],
    ];
    for (const [config, paths] of cases) {
      const res = await gql<{ updateBackupConfig: { __typename: string; issues: Array<{ path: string }> } }>(UPDATE, { input: { instance: 'home', config } });
      expect(res.data?.updateBackupConfig.__typename, JSON.stringify(config)).toBe('ValidationError');
      const got = res.data!.updateBackupConfig.issues.map((i) => i.path);
      for (const p of paths) expect(got.some((g) => g.startsWith(p)), `${p} in ${got.join(', ')}`).toBe(true);
    }
    const hostileInstance = await gql<{ updateBackupConfig: { __typename: string } }>(UPDATE, { input: { instance: '../../etc', config: { repository: '/tmp/x' } } });
    expect(hostileInstance.data!.updateBackupConfig.__typename).toBe('ValidationError');
    const missing = await gql<{ updateBackupConfig: { __typename: string } }>(UPDATE, { input: { instance: 'nope', config: { repository: '/tmp/x' } } });
    expect(missing.data!.updateBackupConfig.__typename).toBe('NotFoundError');
    expect(await readFile(configFile(), 'utf8')).toBe(c0);
    expect(await readFile(secretsFile(), 'utf8')).toBe(s0);
  });

  it('refuses a password that does not open the initialised repository, and writes nothing', async () => {
    const repoPath = path.join(t.data.instanceDir(), 'backups', 'repository'); // initialised by the first test
    const files = async () => [await readFile(configFile(), 'utf8'), await readFile(secretsFile(), 'utf8')];
    const before = await files();
    type Answer = { updateBackupConfig: { __typename: string; issues: Array<{ path: string; message: string }> } };
    // A mistyped password: saved, it would put the one that opens the repository out of reach.
    const typo = await gql<Answer>(UPDATE, { input: { instance: 'home', config: { repository: repoPath, password: 'wrong-password-do-not-leak-4' } } });
    expect(typo.data!.updateBackupConfig).toMatchObject({ __typename: 'ValidationError', issues: [{
      path: 'input.config.password', message: expect.stringMatching(/^does not open the repository at .*, which is initialised with another password; nothing was changed/),
    }] });
    expect(await files()).toEqual(before);
    // Another repository, initialised with its own password, with the stored one kept: refused too.
    const { execFileSync } = await import('node:child_process');
    const other = path.join(t.data.dir, 'other-repository');
    execFileSync('restic', ['init', '-r', other], { env: { ...process.env, RESTIC_PASSWORD: 'other-repo-password-do-not-leak-5' }, stdio: 'ignore' });
    const secretsText = await readFile(secretsFile(), 'utf8');
    const generated = /defaultRepositoryPassword: (\S+)\n/.exec(secretsText)![1]!;
    expect((await gql<Answer>(UPDATE, { input: { instance: 'home', config: { repository: repoPath, password: generated } } })).data!.updateBackupConfig.__typename).toBe('BackupConfigPayload');
    const moved = await gql<Answer>(UPDATE, { input: { instance: 'home', config: { repository: other } } });
    expect(moved.data!.updateBackupConfig).toMatchObject({ __typename: 'ValidationError', issues: [{
      path: 'input.config.password', message: expect.stringMatching(/^the stored password does not open the repository at .*other-repository: give that repository's password$/),
    }] });
    // With its own password it is taken.
    const right = await gql<Answer>(UPDATE, { input: { instance: 'home', config: { repository: other, password: 'other-repo-password-do-not-leak-5' } } });
    expect(right.data!.updateBackupConfig.__typename).toBe('BackupConfigPayload');
    const status = await gql<{ instance: { repository: { status: { initialized: boolean; errorCode: string | null } } } }>(STATUS);
    expect(status.data!.instance.repository.status).toMatchObject({ initialized: true, errorCode: null });
  });

  it('writes a valid configuration, keeps comments and other keys, and never answers a secret', async () => {
    const res = await gql<{ updateBackupConfig: { __typename: string; backupConfig: Record<string, unknown> } }>(UPDATE, {
      input: {
        instance: 'home',
        config: {
          repository: 's3:https://s3.example.com/bucket/wild', password: 'repo-password-do-not-leak-2', region: 'eu-west-1',
          retention: { keepLast: 3, keepDaily: 5 },
          credentials: { s3: { accessKeyId: 'AKIA-do-not-leak-3', secretAccessKey: 's3-secret-key-do-not-leak-1' } },
        },
      },
    });
    expect(res.data!.updateBackupConfig).toMatchObject({
      __typename: 'BackupConfigPayload',
      backupConfig: { repository: 's3:https://s3.example.com/bucket/wild', backend: 's3', hasPassword: true, configuredCredentials: ['s3'], retention: { keepDaily: 5, keepLast: 3 } },
    });
    const config = await readFile(configFile(), 'utf8');
    expect(config).toContain('# A sample Wild Central instance');
    expect(config).toContain('repository: s3:https://s3.example.com/bucket/wild');
    expect(config).toContain('dbName: gitea');
    const secrets = await readFile(secretsFile(), 'utf8');
    expect((await stat(secretsFile())).mode & 0o777).toBe(0o600);
    expect(secrets).toContain('s3-secret-key-do-not-leak-1');
    expect(secrets).toContain('example-gitea-db-password');

    // Omitted password and credentials keep the stored ones.
    const res2 = await gql<{ updateBackupConfig: { backupConfig: { hasPassword: boolean; configuredCredentials: string[] } } }>(UPDATE, {
      input: { instance: 'home', config: { repository: 's3:https://s3.example.com/bucket/other' } },
    });
    expect(res2.data!.updateBackupConfig.backupConfig).toMatchObject({ hasPassword: true, configuredCredentials: ['s3'] });
    const secrets2 = await readFile(secretsFile(), 'utf8');
    expect(secrets2).toContain('repo-password-do-not-leak-2');
    expect(secrets2).toContain('s3-secret-key-do-not-leak-1');
  });
});

describe('testRepository', () => {
  it('reports a reachable uninitialised repository, and answers a wrong password and an unreachable host with RepositoryError in bounded time', async () => {
    const fresh = await gql<{ testRepository: { __typename: string; status: { initialized: boolean; reachable: boolean } } }>(TEST, {
      input: { instance: 'home', config: { repository: path.join(t.data.dir, 'elsewhere'), password: 'some-password' } },
    });
    expect(fresh.data!.testRepository).toMatchObject({ __typename: 'RepositoryStatusPayload', status: { initialized: false } });

    const repoPath = path.join(t.data.instanceDir(), 'backups', 'repository');
    const wrong = await gql<{ testRepository: { __typename: string; code: string; message: string } }>(TEST, {
      input: { instance: 'home', config: { repository: repoPath, password: 'wrong-password-do-not-leak-4' } },
    });
    expect(wrong.data!.testRepository).toMatchObject({ __typename: 'RepositoryError', code: 'RESTIC_WRONG_PASSWORD' });

    const started = Date.now();
    const unreachable = await gql<{ testRepository: { __typename: string; code: string } }>(TEST, {
      input: { instance: 'home', config: { repository: 'rest:http://127.0.0.1:9/repo', password: 'some-password' } },
    });
    expect(unreachable.data!.testRepository.__typename).toBe('RepositoryError');
    expect(Date.now() - started).toBeLessThan(30_000);

    // Nothing was saved by testing.
    const cfg = await gql<{ instance: { backupConfig: { repository: string } } }>(CONFIG);
    expect(cfg.data!.instance.backupConfig.repository).toBe('s3:https://s3.example.com/bucket/other');
  });
});

describe('the plugin catalog and roles', () => {
  it('lists every storage backend with its fields', async () => {
    const res = await gql<{ plugins: { storageBackends: Array<{ name: string; uriPrefix: string; credentialFields: string[] }> } }>(`{ plugins { storageBackends { name uriPrefix credentialFields configFields description } } }`);
    expect(res.data!.plugins.storageBackends.map((b) => b.name).sort()).toEqual(['azure', 'b2', 'gcs', 'local', 'rclone', 'rest', 's3', 'sftp']);
    expect(res.data!.plugins.storageBackends.find((b) => b.name === 's3')).toMatchObject({ uriPrefix: 's3:', credentialFields: expect.arrayContaining(['s3.secretAccessKey']) });
  });

  it('answers ForbiddenError to a read-only token on every repository mutation', async () => {
    const u = await gql<{ updateBackupConfig: { __typename: string } }>(UPDATE, { input: { instance: 'home', config: { repository: '/tmp/x' } } }, READONLY_TOKEN);
    const te = await gql<{ testRepository: { __typename: string } }>(TEST, { input: { instance: 'home' } }, READONLY_TOKEN);
    const i = await gql<{ initRepository: { __typename: string } }>(INIT, undefined, READONLY_TOKEN);
    expect([u.data!.updateBackupConfig.__typename, te.data!.testRepository.__typename, i.data!.initRepository.__typename]).toEqual(['ForbiddenError', 'ForbiddenError', 'ForbiddenError']);
  });
});
