// The environment and options each plugin hands restic, for the backends with no server here
// (gcs, native b2) and for the forms the contract suites do not reach: key files 0600 and
// removed afterwards, secrets only in the environment, never in the options (argv).
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storagePlugin } from '../../src/plugins/storage/registry.js';
import type { RepositorySettings } from '../../src/plugins/storage/settings.js';
import { StorageValidationError } from '../../src/plugins/storage/types.js';

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'wb-env-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

const ctx = (minor = 14) => ({ dataDir, resticVersion: { major: 0, minor, patch: 0 } });
const password = 'repo-password-xyz';

async function prepared(name: Parameters<typeof storagePlugin>[0], settings: Omit<RepositorySettings, 'password'>, minor = 14) {
  return storagePlugin(name).prepare({ ...settings, password }, ctx(minor));
}

describe('gcs (no server here: environment and files only)', () => {
  const key = JSON.stringify({
    type: 'service_account',
    project_id: 'wild-backup-test',
    private_key_id: 'abcdef0123456789',
    private_key: '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n',
    client_email: 'restic@wild-backup-test.iam.gserviceaccount.com',
  });

  it('writes the service-account key to a 0600 file named by GOOGLE_APPLICATION_CREDENTIALS, removed by cleanup', async () => {
    const p = await prepared('gcs', { repository: 'gs:wild-bucket:/restic', credentials: { gcs: { projectId: 'wild-backup-test', serviceAccountKey: key } } });
    const file = p.env.GOOGLE_APPLICATION_CREDENTIALS!;
    expect(p.env).toMatchObject({ RESTIC_REPOSITORY: 'gs:wild-bucket:/restic', GOOGLE_PROJECT_ID: 'wild-backup-test' });
    expect(file.startsWith(join(dataDir, 'tmp'))).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toBe(key);
    expect(p.args.join(' ')).not.toContain('PRIVATE');
    expect(p.secrets.redact(`leak ${key} and MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7`)).not.toContain('MIIEvQ');
    await p.cleanup();
    await expect(stat(file)).rejects.toThrow();
    expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
  });
});

describe('b2', () => {
  it('native API with credentials.b2 only: b2:bucket:path and B2_ACCOUNT_* in the environment', async () => {
    const p = await prepared('b2', { repository: 'b2:wild-bucket/nested/path', credentials: { b2: { accountId: '0012345abcd', accountKey: 'K001-secret-key-value' } } });
    expect(p.env).toMatchObject({ RESTIC_REPOSITORY: 'b2:wild-bucket:nested/path', B2_ACCOUNT_ID: '0012345abcd', B2_ACCOUNT_KEY: 'K001-secret-key-value' });
    expect(p.args).toEqual([]);
    expect(p.secrets.redact('K001-secret-key-value')).toBe('***');
    await p.cleanup();
  });

  it('seed mapping: S3 credentials and a region give Backblaze\'s S3 endpoint', async () => {
    const p = await prepared('b2', { repository: 'b2:wild-bucket:/restic', region: 'us-west-004', credentials: { s3: { accessKeyId: 'key-id', secretAccessKey: 'app-key-secret' } } });
    expect(p.env).toMatchObject({ RESTIC_REPOSITORY: 's3:https://s3.us-west-004.backblazeb2.com/wild-bucket/restic', AWS_SECRET_ACCESS_KEY: 'app-key-secret' });
    expect(p.args).toEqual(['-o', 's3.region=us-west-004']);
  });
});

describe('s3 forms', () => {
  const credentials = { s3: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG' } };
  it.each([
    [{ repository: 's3:wild-bucket/restic' }, 's3:https://s3.amazonaws.com/wild-bucket/restic'],
    [{ repository: 's3:wild-bucket', region: 'eu-west-1' }, 's3:https://s3.eu-west-1.amazonaws.com/wild-bucket'],
    [{ repository: 's3:s3.wasabisys.com/wild-bucket/x' }, 's3:https://s3.wasabisys.com/wild-bucket/x'],
    [{ repository: 's3:wild-bucket/x', endpoint: 'minio.lan', port: 9000 }, 's3:https://minio.lan:9000/wild-bucket/x'],
    [{ repository: 's3:wild-bucket/x', endpoint: 'http://minio.lan:9000/' }, 's3:http://minio.lan:9000/wild-bucket/x'],
  ])('%j -> %s', async (settings, expected) => {
    const p = await prepared('s3', { ...settings, credentials });
    expect(p.env.RESTIC_REPOSITORY).toBe(expected);
    expect(p.env.AWS_ACCESS_KEY_ID).toBe('AKIAEXAMPLE');
    expect(p.args.join(' ')).not.toContain('wJalr');
  });
});

describe('sftp command', () => {
  const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----';
  it('puts the key in a 0600 file, host keys in the data dir, the port, and no secret on the command line', async () => {
    const p = await prepared('sftp', { repository: 'sftp:backup@nas.lan:/srv/restic', port: 2222, credentials: { sftp: { privateKey: key } } });
    const command = p.args[1]!;
    expect(p.args[0]).toBe('-o');
    expect(command).toMatch(/^sftp\.command=ssh -F none .* -p 2222 -l backup -i \S+id_key -o IdentitiesOnly=yes .*BatchMode=yes.* nas\.lan -s sftp$/);
    expect(command).toContain(`UserKnownHostsFile=${join(dataDir, 'ssh', 'known_hosts')}`);
    expect(command).not.toContain('b3BlbnNzaC1');
    const keyFile = /-i (\S+)/.exec(command)![1]!;
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(keyFile, 'utf8')).toBe(`${key}\n`);
    await p.cleanup();
    await expect(stat(keyFile)).rejects.toThrow();
  });

  it('CSV-quotes the option when it holds a comma (restic parses -o values as CSV)', async () => {
    const p = await prepared('sftp', { repository: 'sftp:nas.lan:/srv', credentials: { sftp: { privateKey: key, password: 'login-pass' } } });
    expect(p.args[1]).toMatch(/^"sftp\.command=\S*sshpass -f \S+password ssh .*PreferredAuthentications=publickey,password,keyboard-interactive.*"$/);
    expect(p.args.join(' ')).not.toContain('login-pass');
    await p.cleanup();
  });
});

describe('azure endpoint', () => {
  const credentials = { azure: { accountName: 'wildstore', accountKey: 'c2VjcmV0a2V5' } };
  it('needs restic >= 0.15 for another cloud suffix', async () => {
    await expect(prepared('azure', { repository: 'azure:wildc:/r', endpoint: 'core.chinacloudapi.cn', credentials })).rejects.toThrow(StorageValidationError);
    const p = await prepared('azure', { repository: 'azure:wildc:/r', endpoint: 'core.chinacloudapi.cn', credentials }, 18);
    expect(p.env).toMatchObject({ AZURE_ACCOUNT_NAME: 'wildstore', AZURE_ACCOUNT_KEY: 'c2VjcmV0a2V5', AZURE_ENDPOINT_SUFFIX: 'core.chinacloudapi.cn' });
    const h = await prepared('azure', { repository: 'azure:wildc:/r', endpoint: 'http://azurite.lan', credentials }, 18);
    expect(h.args).toEqual(['-o', 'azure.usehttp=true']);
  });
});
