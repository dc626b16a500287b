// SFTP over OpenSSH: restic runs our own ssh command (-o sftp.command) with the private key in a
// 0600 temp file, or the password through `sshpass -f <0600 file>`; host keys are remembered
// (trust on first use) in <dataDir>/ssh/known_hosts. Nothing secret reaches an argv.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ValidationIssue } from './types.js';
import { StorageValidationError } from './types.js';
import { check, defineStoragePlugin, resticOption } from './common.js';
import { findExecutable } from './which.js';

const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9._-]*)|\[[0-9A-Fa-f:.]+\])$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

interface SftpTarget {
  user?: string;
  host: string;
  port?: number;
  path: string;
}

/** Parses restic's two forms: `sftp:[user@]host:path` and `sftp://[user@]host[:port]/path`. */
export function parseSftpUri(uri: string): SftpTarget | undefined {
  if (uri.startsWith('sftp://')) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return undefined;
    }
    return {
      user: url.username ? decodeURIComponent(url.username) : undefined,
      host: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: decodeURIComponent(url.pathname),
    };
  }
  const m = /^sftp:(?:([^@/]+)@)?(\[[^\]]+\]|[^:/]+):(.+)$/.exec(uri);
  if (!m) return undefined;
  return { user: m[1], host: m[2] ?? '', path: m[3] ?? '' };
}

const sftpCredentialsSchema = z
  .object({
    password: z.string().min(1, 'must not be empty').optional(),
    privateKey: z
      .string()
      .refine((k) => /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(k), 'must be a PEM or OpenSSH private key')
      .refine((k) => !/-----BEGIN [A-Z0-9 ]*ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(k), 'must not be passphrase-protected')
      .optional(),
  }, { error: 'is required (password or privateKey)' })
  .refine((c) => Boolean(c.password || c.privateKey), 'needs a password or a privateKey');

/** restic splits sftp.command like a shell, honouring double quotes; we never emit quotes inside. */
function commandWord(word: string): string {
  if (/["'\\]/.test(word)) {
    throw new StorageValidationError([{ path: 'repository', message: 'the data directory path must not contain quotes or backslashes' }]);
  }
  return /\s/.test(word) ? `"${word}"` : word;
}

export const sftpStorage = defineStoragePlugin({
  name: 'sftp',
  description: 'An SSH server (OpenSSH sftp): key or password login, custom port, host key remembered on first use.',
  uriPrefix: 'sftp:',
  credentialFields: ['sftp.password', 'sftp.privateKey'],
  configFields: ['port'],
  validate(settings) {
    const issues: ValidationIssue[] = [];
    const target = parseSftpUri(settings.repository);
    if (!target) {
      issues.push({ path: 'repository', message: 'must be sftp:[user@]host:/path or sftp://[user@]host[:port]//path' });
    } else {
      if (!HOST.test(target.host)) issues.push({ path: 'repository', message: 'has an invalid host name' });
      if (target.user !== undefined && !USER.test(target.user)) issues.push({ path: 'repository', message: 'has an invalid user name' });
      if (target.port !== undefined && settings.port !== undefined && target.port !== settings.port) {
        issues.push({ path: 'port', message: 'differs from the port in the repository URI' });
      }
    }
    issues.push(...check(sftpCredentialsSchema, settings.credentials?.sftp, 'credentials.sftp'));
    return issues;
  },
  // user@host is no secret; only a password in a URL (sftp://user:pw@host) is stripped.
  displayUri: (uri) => uri.replace(/^(sftp:\/\/[^/:@]+):[^/@]*@/, '$1@'),
  async build(settings, out, ctx) {
    const target = parseSftpUri(settings.repository)!;
    const creds = settings.credentials.sftp!;
    const sshDir = join(ctx.dataDir, 'ssh');
    await mkdir(sshDir, { recursive: true, mode: 0o700 });
    const ssh = [
      'ssh', '-F', 'none',
      '-o', `UserKnownHostsFile=${join(sshDir, 'known_hosts')}`,
      '-o', 'StrictHostKeyChecking=accept-new',
      '-o', 'ConnectTimeout=15',
      '-o', 'ServerAliveInterval=15',
      '-o', 'ServerAliveCountMax=4',
    ];
    // ssh logs to a file of ours (-E): restic may exit before relaying ssh's stderr, and the
    // reason (refused, denied, host key) decides the error a user sees.
    const logFile = await out.files.write('ssh.log', '');
    ssh.push('-E', logFile);
    out.diagnostics = () => readFile(logFile, 'utf8').catch(() => '');
    const port = target.port ?? settings.port;
    if (port !== undefined) ssh.push('-p', String(port));
    if (target.user) ssh.push('-l', target.user);
    let wrapper: string[] = [];
    if (creds.privateKey) {
      const key = creds.privateKey.endsWith('\n') ? creds.privateKey : `${creds.privateKey}\n`;
      const keyFile = await out.files.write('id_key', key);
      ssh.push('-i', keyFile, '-o', 'IdentitiesOnly=yes');
      out.secrets.add(creds.privateKey, ...creds.privateKey.split('\n').filter((l) => !l.startsWith('-----')));
    }
    if (creds.password) {
      const sshpass = await findExecutable('sshpass');
      if (!sshpass) {
        throw new StorageValidationError([
          { path: 'credentials.sftp.password', message: 'password login needs sshpass, which is not installed; use a privateKey' },
        ]);
      }
      const passFile = await out.files.write('password', creds.password);
      out.secrets.add(creds.password);
      const methods = creds.privateKey ? 'publickey,password,keyboard-interactive' : 'password,keyboard-interactive';
      ssh.push('-o', `PreferredAuthentications=${methods}`, '-o', 'NumberOfPasswordPrompts=1');
      if (!creds.privateKey) ssh.push('-o', 'PubkeyAuthentication=no');
      // sshpass stops reading its own options at the program name, so ssh's -p stays ssh's.
      wrapper = [sshpass, '-f', passFile];
    } else {
      ssh.push('-o', 'BatchMode=yes', '-o', 'PasswordAuthentication=no', '-o', 'KbdInteractiveAuthentication=no');
    }
    ssh.push(target.host.replace(/^\[|\]$/g, ''), '-s', 'sftp');
    out.env.RESTIC_REPOSITORY = settings.repository;
    out.args.push(...resticOption('sftp.command', [...wrapper, ...ssh].map(commandWord).join(' ')));
  },
});
