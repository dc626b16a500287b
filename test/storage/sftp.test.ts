// The storage contract against OpenSSH's sshd on a free loopback port: key login and password
// login (through sshpass), custom port, host key remembered; plus wrong-credential errors.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResticAccessDeniedError, ResticRepository } from '../../src/engine/restic/index.js';
import { freePort } from '../../src/util/net.js';
import { startSshd, type SshdFixture } from '../fixtures/servers/sshd.js';
import { describeBackendContract } from './contract.js';
import { SecretScan } from './helpers.js';

describeBackendContract('sftp (private key, custom port)', async () => {
  const sshd = await startSshd();
  const down = await freePort();
  return {
    settings: (name) => ({
      repository: `sftp:${sshd.user}@127.0.0.1:${sshd.dir}/${name}`,
      port: sshd.port,
      credentials: { sftp: { privateKey: sshd.privateKey } },
    }),
    unreachable: () => ({
      repository: `sftp:${sshd.user}@127.0.0.1:${sshd.dir}/down`,
      port: down,
      credentials: { sftp: { privateKey: sshd.privateKey } },
    }),
    secrets: [sshd.privateKey],
    expectChild: /^ssh$|\/ssh$/,
    teardown: () => sshd.stop(),
  };
});

describeBackendContract('sftp (password via sshpass, URL form)', async () => {
  const sshd = await startSshd();
  if (!sshd.passwordAuth) throw new Error('sshd fixture could not offer password login (no unshare)');
  return {
    settings: (name) => ({
      repository: `sftp://${sshd.user}@127.0.0.1:${sshd.port}/${sshd.dir}/${name}`,
      credentials: { sftp: { password: sshd.password } },
    }),
    secrets: [sshd.password],
    expectChild: /sshpass$/,
    teardown: () => sshd.stop(),
  };
});

describe('sftp: credentials and host keys', () => {
  let sshd: SshdFixture;
  let dataDir: string;
  const scan = new SecretScan();
  const password = `repo-${randomBytes(8).toString('hex')}`;
  const wrongLogin = `wrong-login-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    scan.captureLogs();
    sshd = await startSshd();
    dataDir = await mkdtemp(join(tmpdir(), 'wb-sftp-'));
  });
  afterAll(async () => {
    await sshd?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const repo = (sftp: { password?: string; privateKey?: string }) =>
    new ResticRepository({
      settings: { repository: `sftp:root@127.0.0.1:${sshd.dir}/creds`, port: sshd.port, password, credentials: { sftp } },
      dataDir,
      statusTimeoutMs: 10_000,
    });

  it('remembers the host key in the data dir and removes the temp key file afterwards', async () => {
    await repo({ privateKey: sshd.privateKey }).init();
    const knownHosts = await readFile(join(dataDir, 'ssh', 'known_hosts'), 'utf8');
    expect(knownHosts).toContain(`[127.0.0.1]:${sshd.port}`);
    expect((await stat(join(dataDir, 'ssh'))).mode & 0o777).toBe(0o700);
    const leftovers = await import('node:fs/promises').then((fs) => fs.readdir(join(dataDir, 'tmp')));
    expect(leftovers).toEqual([]);
  });

  it('rejects a key the server does not know, typed and quickly', async () => {
    const { execFileSync } = await import('node:child_process');
    const other = join(dataDir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherKey = await readFile(other, 'utf8');
    const started = Date.now();
    const err = await repo({ privateKey: otherKey }).snapshots({ refresh: true }).catch((e: unknown) => e);
    scan.record(err);
    expect(err).toBeInstanceOf(ResticAccessDeniedError);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(scan.findings([otherKey])).toEqual([]);
  });

  it('rejects a wrong login password, typed and quickly, without echoing it', async (ctx) => {
    if (!sshd.passwordAuth) return ctx.skip();
    const started = Date.now();
    const status = await repo({ password: wrongLogin }).status();
    scan.record(status);
    expect(status).toMatchObject({ errorCode: 'RESTIC_ACCESS_DENIED' });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(scan.findings([wrongLogin, password, sshd.password, sshd.privateKey])).toEqual([]);
  });
});
