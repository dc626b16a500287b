// The TLS suites our exec client offers (src/kube/ciphers.ts): AES-GCM first where the CPU has AES
// instructions, ChaCha20-Poly1305 first where it has not, and the simulated API server answering as
// a Go server does. A CPU without AES instructions is made here by telling OpenSSL to ignore them
// (OPENSSL_ia32cap, in a child process: Node's OpenSSL reads it at start-up).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cipherList, measureAeads, preferredOrder } from '../../src/kube/ciphers.js';
import { startSimKube, type SimKube } from '../../src/sim/index.js';

const run = promisify(execFile);
/** AES-NI (bit 57) and PCLMULQDQ (bit 33) of OpenSSL's first capability word, masked off. */
const WITHOUT_AES = '~0x200000200000000';
const x86WithAes = process.arch === 'x64' && /^flags\s*:.*\baes\b/m.test((() => { try { return readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; } })());

interface ChildResult { order: string; cipher: string | null; intact: boolean }
async function execInChild(env: Record<string, string>): Promise<ChildResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('WILD_BACKUP_TLS_AEAD' in env)) delete childEnv.WILD_BACKUP_TLS_AEAD;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/helpers/tls-exec-child.ts'], { env: childEnv, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult;
}

describe('the TLS suites of the exec client', () => {
  it('lists AES-128-GCM or ChaCha20-Poly1305 first, with the other suites after, in a string OpenSSL takes', () => {
    const aes = cipherList('aes').split(':');
    const chacha = cipherList('chacha').split(':');
    expect(aes.slice(0, 3)).toEqual(['TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_256_GCM_SHA384']);
    expect(chacha.slice(0, 3)).toEqual(['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384']);
    // TLS 1.2 (an older API server): ChaCha20 first too, and Node's own list and exclusions kept.
    expect(chacha.indexOf('ECDHE-RSA-CHACHA20-POLY1305')).toBeLessThan(chacha.indexOf('ECDHE-RSA-AES128-GCM-SHA256'));
    expect(aes).toContain('!aNULL');
    expect(() => tls.createSecureContext({ ciphers: cipherList('chacha') })).not.toThrow();
    expect(() => tls.createSecureContext({ ciphers: cipherList('aes') })).not.toThrow();
  });

  it('puts ChaCha20 first only where it is clearly the faster', () => {
    expect(preferredOrder({ aesGcm: 2500, chacha: 2400 })).toBe('aes'); // this machine, with AES-NI (bytes/ms)
    expect(preferredOrder({ aesGcm: 2400, chacha: 2900 })).toBe('aes'); // close: the server's preference stands
    expect(preferredOrder({ aesGcm: 280, chacha: 1090 })).toBe('chacha'); // the same machine without AES-NI
    const measured = measureAeads();
    expect(measured.aesGcm).toBeGreaterThan(0);
    expect(measured.chacha).toBeGreaterThan(0);
  });

  describe('against the simulated API server (a Go server\'s choice)', () => {
    let sim: SimKube;
    beforeAll(async () => { sim = await startSimKube(); });
    afterAll(async () => { await sim?.stop(); });
    const negotiate = (ciphers?: string): Promise<string> => {
      const { hostname: host, port } = new URL(sim.url);
      return new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ciphers }, () => { resolve(s.getCipher().standardName); s.end(); });
        s.once('error', reject);
      });
    };

    it('answers ChaCha20-Poly1305 to a client that lists it first, AES-128-GCM to one that prefers AES-GCM', async () => {
      expect(await negotiate(cipherList('chacha'))).toBe('TLS_CHACHA20_POLY1305_SHA256');
      expect(await negotiate(cipherList('aes'))).toBe('TLS_AES_128_GCM_SHA256');
      expect(await negotiate()).toBe('TLS_AES_128_GCM_SHA256'); // Node's default offer: AES-256-GCM first
      expect(await negotiate(`TLS_CHACHA20_POLY1305_SHA256:${tls.DEFAULT_CIPHERS}`)).toBe('TLS_CHACHA20_POLY1305_SHA256');
    });
  });

  describe.runIf(x86WithAes)('measured on this CPU, with and without its AES instructions', () => {
    it('streams over AES-128-GCM where the CPU has AES instructions', { timeout: 60_000 }, async () => {
      expect(await execInChild({})).toEqual({ order: 'aes', cipher: 'TLS_AES_128_GCM_SHA256', intact: true });
    });

    it('streams over ChaCha20-Poly1305 where it has none (OpenSSL told to ignore them), the bytes intact', { timeout: 60_000 }, async () => {
      expect(await execInChild({ OPENSSL_ia32cap: WITHOUT_AES })).toEqual({ order: 'chacha', cipher: 'TLS_CHACHA20_POLY1305_SHA256', intact: true });
    });

    it('follows $WILD_BACKUP_TLS_AEAD over the measurement', { timeout: 60_000 }, async () => {
      expect(await execInChild({ WILD_BACKUP_TLS_AEAD: 'chacha' })).toEqual({ order: 'chacha', cipher: 'TLS_CHACHA20_POLY1305_SHA256', intact: true });
      expect(await execInChild({ OPENSSL_ia32cap: WITHOUT_AES, WILD_BACKUP_TLS_AEAD: 'aes' })).toEqual({ order: 'aes', cipher: 'TLS_AES_128_GCM_SHA256', intact: true });
    });
  });
});
