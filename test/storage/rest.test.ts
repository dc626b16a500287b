// The storage contract against `rclone serve restic` (a restic REST server) with HTTP basic
// auth: credentials in the URI and in credentials.rest, redacted everywhere.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResticAccessDeniedError, ResticRepository } from '../../src/engine/restic/index.js';
import { restStorage } from '../../src/plugins/storage/rest.js';
import { freePort } from '../../src/util/net.js';
import { startRcloneRestServer, type RcloneRestFixture } from '../fixtures/servers/rclone.js';
import { describeBackendContract } from './contract.js';
import { SecretScan } from './helpers.js';

// A password with characters that need URL encoding.
const restPassword = () => `p@ss:${randomBytes(8).toString('hex')}/x`;

describeBackendContract('rest (rclone serve restic, user:pass in the URI)', async () => {
  const auth = { user: 'wild', pass: restPassword() };
  const server = await startRcloneRestServer(auth);
  const down = await freePort();
  const withAuth = (url: string) => url.replace('http://', `http://${auth.user}:${encodeURIComponent(auth.pass)}@`);
  return {
    settings: (name) => ({ repository: `rest:${withAuth(server.url)}/${name}`, credentials: {} }),
    unreachable: () => ({ repository: `rest:${withAuth(`http://127.0.0.1:${down}`)}/down`, credentials: {} }),
    secrets: [auth.pass],
    teardown: () => server.stop(),
  };
});

describe('rest: credentials', () => {
  let server: RcloneRestFixture;
  let dataDir: string;
  const scan = new SecretScan();
  const password = `repo-${randomBytes(8).toString('hex')}`;
  const auth = { user: 'wild', pass: restPassword() };
  const wrong = restPassword();

  beforeAll(async () => {
    scan.captureLogs();
    [server, dataDir] = await Promise.all([startRcloneRestServer(auth), mkdtemp(join(tmpdir(), 'wb-rest-'))]);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const repo = (creds: { username: string; password: string }) =>
    new ResticRepository({ settings: { repository: `rest:${server.url}/creds`, password, credentials: { rest: creds } }, dataDir });

  it('uses credentials.rest and never shows them in the display URI', async () => {
    const r = repo({ username: auth.user, password: auth.pass });
    expect(r.displayUri).toBe(`rest:${server.url}/creds`);
    expect(restStorage.displayUri(`rest:http://wild:${encodeURIComponent(auth.pass)}@h:1/x`)).toBe('rest:http://h:1/x');
    await r.init();
    expect(await r.status()).toEqual({ reachable: true, initialized: true });
  });

  it('rejects a wrong HTTP password, typed, without the password', async () => {
    const err = await repo({ username: auth.user, password: wrong }).snapshots().catch((e: unknown) => e);
    scan.record(err);
    expect(err).toBeInstanceOf(ResticAccessDeniedError);
    expect(scan.findings([wrong, auth.pass, password])).toEqual([]);
  });
});
