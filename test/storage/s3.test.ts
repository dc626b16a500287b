// The storage contract against s3rver over HTTPS (self-signed certificate, settings.cacert):
// s3: with the endpoint in the URI, s3: through backend.endpoint, and b2: mapped to the S3 API.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResticAccessDeniedError, ResticRepository, ResticUnreachableError, StorageValidationError } from '../../src/engine/restic/index.js';
import { startS3rver, type S3rverFixture } from '../fixtures/servers/s3rver.js';
import { describeBackendContract } from './contract.js';
import { SecretScan, startTarpit } from './helpers.js';

describeBackendContract('s3 (s3rver over TLS, endpoint in the URI)', async () => {
  const s3 = await startS3rver();
  const tarpit = await startTarpit();
  const credentials = { s3: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } };
  return {
    settings: (name) => ({ repository: `s3:${s3.endpoint}/contract/${name}`, cacert: s3.cacert, credentials }),
    // Listening but silent: restic would wait and retry for minutes; the client's bound answers.
    unreachable: () => ({ repository: `s3:https://127.0.0.1:${tarpit.port}/contract/down`, cacert: s3.cacert, credentials }),
    secrets: [],
    teardown: async () => {
      await tarpit.stop();
      await s3.stop();
    },
  };
});

describeBackendContract('b2 (seed mapping to the S3-compatible API, backend.endpoint)', async () => {
  const s3 = await startS3rver();
  return {
    settings: (name) => ({
      repository: `b2:wildbucket/${name}`,
      endpoint: s3.endpoint,
      cacert: s3.cacert,
      credentials: { s3: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
    }),
    secrets: [],
    teardown: () => s3.stop(),
  };
});

describe('s3: credentials and TLS', () => {
  let s3: S3rverFixture;
  let dataDir: string;
  const scan = new SecretScan();
  const password = `repo-${randomBytes(8).toString('hex')}`;
  const badKeyId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;

  beforeAll(async () => {
    scan.captureLogs();
    [s3, dataDir] = await Promise.all([startS3rver(), mkdtemp(join(tmpdir(), 'wb-s3-'))]);
  });
  afterAll(async () => {
    await s3?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('rejects an access key the server does not know, typed, without the key', async () => {
    const r = new ResticRepository({
      settings: { repository: `s3:bucket1/repo`, endpoint: s3.endpoint, cacert: s3.cacert, password, credentials: { s3: { accessKeyId: badKeyId, secretAccessKey: 'x'.repeat(40) } } },
      dataDir,
    });
    const err = await r.snapshots().catch((e: unknown) => e);
    scan.record(err);
    expect(err).toBeInstanceOf(ResticAccessDeniedError);
    expect(scan.findings([badKeyId, 'x'.repeat(40), password])).toEqual([]);
  });

  it('refuses missing credentials before starting restic, every problem with its path', () => {
    let err: unknown;
    try {
      new ResticRepository({ settings: { repository: 's3:bucket1/repo', endpoint: s3.endpoint, password: '', credentials: { s3: { accessKeyId: 'AKIA', secretAccessKey: '' } } }, dataDir });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageValidationError);
    expect((err as StorageValidationError).issues.map((i) => i.path).sort()).toEqual(['credentials.s3.secretAccessKey', 'password']);
  });

  it('does not trust the server certificate without cacert: unreachable, with the TLS reason', async () => {
    const r = new ResticRepository({
      settings: { repository: `s3:${s3.endpoint}/bucket1/repo`, password, credentials: { s3: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } } },
      dataDir,
    });
    const err = await r.snapshots().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResticUnreachableError);
    expect((err as Error).message).toMatch(/certificate|x509/);
  });
});
