// Bad settings for every backend: each problem reported with its path, before any restic runs,
// and no secret in any message.
import { describe, expect, it } from 'vitest';
import { ResticRepository, StorageValidationError } from '../../src/engine/restic/index.js';
import { pluginForUri, storagePlugins, validateRepositorySettings } from '../../src/plugins/storage/registry.js';
import type { RepositorySettings } from '../../src/plugins/storage/settings.js';

const SECRET = 'Sup3r-Secret-Value-42';
const base = { password: 'repo-password-1', credentials: {} } satisfies Partial<RepositorySettings>;
const paths = (s: RepositorySettings) => validateRepositorySettings(s).map((i) => i.path).sort();

function expectNoSecret(s: RepositorySettings) {
  expect(JSON.stringify(validateRepositorySettings(s))).not.toContain(SECRET);
}

describe('storage plugin catalog', () => {
  it('lists the eight backends with their prefixes and fields', () => {
    expect(storagePlugins.map((p) => [p.name, p.uriPrefix])).toEqual([
      ['local', '/'], ['s3', 's3:'], ['b2', 'b2:'], ['sftp', 'sftp:'], ['rest', 'rest:'], ['rclone', 'rclone:'], ['azure', 'azure:'], ['gcs', 'gs:'],
    ]);
    for (const p of storagePlugins) {
      expect(p.description.length).toBeGreaterThan(10);
      expect(Array.isArray(p.credentialFields) && Array.isArray(p.configFields)).toBe(true);
    }
    expect(pluginForUri('/var/lib/wild-central/backups').name).toBe('local');
    expect(pluginForUri('gs:bucket:/x').name).toBe('gcs');
  });
});

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('settings are read, never written', () => {
  it('validates and prepares frozen settings of every backend without touching them', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const dataDir = await mkdtemp('/tmp/wb-frozen-');
    const sa = JSON.stringify({ type: 'service_account', client_email: 'a@b.c', private_key: 'k' });
    const all: RepositorySettings[] = [
      { ...base, repository: '/srv/repo' },
      { ...base, repository: 's3:bucket/x', credentials: { s3: { accessKeyId: 'a', secretAccessKey: 'b' } } },
      { ...base, repository: 'b2:bucket-1/x', region: 'us-west-004', credentials: { s3: { accessKeyId: 'a', secretAccessKey: 'b' } } },
      { ...base, repository: 'sftp:u@h:/srv', credentials: { sftp: { privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----' } } },
      { ...base, repository: 'rest:http://u:p@h:8000/', credentials: { rest: { username: 'u', password: 'pw12' } } },
      { ...base, repository: 'rclone:remote:path' },
      { ...base, repository: 'azure:container:/x', credentials: { azure: { accountName: 'acct', accountKey: 'a2V5' } } },
      { ...base, repository: 'gs:bucket:/x', credentials: { gcs: { serviceAccountKey: sa } } },
    ];
    for (const settings of all) {
      const before = JSON.stringify(settings);
      deepFreeze(settings);
      expect(validateRepositorySettings(settings)).toEqual([]);
      const prepared = await pluginForUri(settings.repository).prepare(settings, { dataDir, resticVersion: { major: 0, minor: 14, patch: 0 } });
      await prepared.cleanup();
      expect(JSON.stringify(settings)).toBe(before);
    }
    await rm(dataDir, { recursive: true, force: true });
  });
});

describe('validation', () => {
  it('rejects an unknown scheme with a typed error that names only the scheme', () => {
    const uri = `ftp://user:${SECRET}@host/x`;
    expect(() => pluginForUri(uri)).toThrow(StorageValidationError);
    const issues = validateRepositorySettings({ ...base, repository: uri });
    expect(issues).toEqual([{ path: 'repository', message: expect.stringContaining('unknown repository scheme "ftp:"') }]);
    expectNoSecret({ ...base, repository: uri });
    expect(paths({ ...base, repository: 'relative/path' })).toEqual(['repository']);
    expect(() => new ResticRepository({ settings: { ...base, repository: uri }, dataDir: '/nonexistent' })).toThrow(StorageValidationError);
  });

  it('reports every common problem at once', () => {
    const bad = { repository: '/srv/repo', password: '', port: 70000, region: 'no spaces allowed', cacert: 'relative.pem', credentials: {} };
    expect(paths(bad)).toEqual(['cacert', 'password', 'port', 'region']);
  });

  it('s3: missing and empty credentials, bucket-less URI', () => {
    expect(paths({ ...base, repository: 's3:https://minio.lan:9000/bucket/x' })).toEqual(['credentials.s3']);
    const s = { ...base, repository: 's3:https://minio.lan:9000/', credentials: { s3: { accessKeyId: '', secretAccessKey: SECRET } } };
    expect(paths(s)).toEqual(['credentials.s3.accessKeyId', 'repository']);
    expectNoSecret(s);
    expect(paths({ ...base, repository: 's3:https://h/b', endpoint: 'https://other', credentials: { s3: { accessKeyId: 'a', secretAccessKey: 'b' } } })).toEqual(['endpoint']);
  });

  it('b2: needs S3 credentials with an endpoint or region, or native credentials', () => {
    expect(paths({ ...base, repository: 'b2:my-bucket/path' })).toEqual(['credentials.s3', 'endpoint']);
    expect(paths({ ...base, repository: 'b2:my-bucket/path', credentials: { b2: { accountId: 'id', accountKey: '' } } })).toEqual(['credentials.b2.accountKey']);
    expect(paths({ ...base, repository: 'b2:x', region: 'us-west-004', credentials: { s3: { accessKeyId: 'a', secretAccessKey: 'b' } } })).toEqual(['repository']);
  });

  it('sftp: needs a password or a private key; rejects bad hosts and non-keys', () => {
    expect(paths({ ...base, repository: 'sftp:backup@nas.lan:/srv/restic' })).toEqual(['credentials.sftp']);
    expect(paths({ ...base, repository: 'sftp:backup@nas.lan:/srv/restic', credentials: { sftp: {} } })).toEqual(['credentials.sftp']);
    const s = { ...base, repository: 'sftp:-oProxyCommand=x:/srv', credentials: { sftp: { privateKey: SECRET } } };
    expect(paths(s)).toEqual(['credentials.sftp.privateKey', 'repository']);
    expectNoSecret(s);
    expect(paths({ ...base, repository: 'sftp://u@h:2222//srv', port: 22, credentials: { sftp: { password: 'x' } } })).toEqual(['port']);
  });

  it('rest, rclone: URI forms and partial credentials', () => {
    expect(paths({ ...base, repository: 'rest:ftp://host/x' })).toEqual(['repository']);
    expect(paths({ ...base, repository: 'rest:http://host:8000/', credentials: { rest: { username: 'u', password: '' } } })).toEqual(['credentials.rest.password']);
    expect(paths({ ...base, repository: 'rclone:nocolon' })).toEqual(['repository']);
    expect(paths({ ...base, repository: 'rclone:remote:path/x' })).toEqual([]);
  });

  it('azure: account name and base64 key', () => {
    expect(paths({ ...base, repository: 'azure:container:/x' })).toEqual(['credentials.azure']);
    const s = { ...base, repository: 'azure:Bad_Container:/x', credentials: { azure: { accountName: 'Has-Caps', accountKey: `${SECRET}!` } } };
    expect(paths(s)).toEqual(['credentials.azure.accountKey', 'credentials.azure.accountName', 'repository']);
    expectNoSecret(s);
  });

  it('gcs: the service-account key must be a service account JSON key', () => {
    expect(paths({ ...base, repository: 'gs:bucket:/x' })).toEqual(['credentials.gcs']);
    const notJson = { ...base, repository: 'gs:bucket:/x', credentials: { gcs: { serviceAccountKey: SECRET } } };
    expect(paths(notJson)).toEqual(['credentials.gcs.serviceAccountKey']);
    expectNoSecret(notJson);
    const wrongType = { ...base, repository: 'gs:bucket:/x', credentials: { gcs: { serviceAccountKey: JSON.stringify({ type: 'user', private_key: SECRET }) } } };
    expect(paths(wrongType)).toEqual(['credentials.gcs.serviceAccountKey.client_email', 'credentials.gcs.serviceAccountKey.type']);
    expectNoSecret(wrongType);
  });
});
