// The TLS suites this client offers the API server, in the order it prefers them. Every exec
// stream is decrypted (a backup) or encrypted (a restore) here at the negotiated AEAD's speed, and
// which AEAD is faster depends on the CPU: with AES instructions AES-GCM is as fast as
// ChaCha20-Poly1305 or faster; without them (a Raspberry Pi 4, say, which can be Wild Central)
// AES-GCM in software is several times slower. A Go API server (kube-apiserver, k3s, Talos)
// follows the client there: it answers AES-128-GCM to a client that lists an AES-GCM suite first,
// ChaCha20-Poly1305 to one that lists ChaCha20 first, as Go's own clients (kubectl) do on a CPU
// without AES instructions. Node's default offer always starts with AES-256-GCM. So the order
// follows what this machine runs faster, measured once.
import { createCipheriv } from 'node:crypto';
import { DEFAULT_CIPHERS } from 'node:tls';

export type AeadOrder = 'aes' | 'chacha';

const TLS13: Record<AeadOrder, string[]> = {
  aes: ['TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_256_GCM_SHA384'],
  chacha: ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'],
};
const TLS12_CHACHA = ['ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'];

/** An OpenSSL cipher string: the TLS 1.3 suites in `order`, then Node's TLS 1.2 list (ChaCha20 first for 'chacha'). */
export function cipherList(order: AeadOrder): string {
  const tls12 = DEFAULT_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_'));
  return [...TLS13[order], ...(order === 'chacha' ? TLS12_CHACHA : []), ...tls12].join(':');
}

/**
 * Bytes per millisecond of each AEAD here: the best of `rounds` passes over 1 MiB in 16 KiB records.
 * A pass is timed by this process's CPU time where the kernel counts it finely, so that a busy
 * machine taking the core away mid-pass does not make that cipher look slow.
 */
export function measureAeads(rounds = 5): { aesGcm: number; chacha: number } {
  const record = Buffer.alloc(16 << 10, 0x5a);
  const iv = Buffer.alloc(12);
  const pass = (algorithm: 'aes-128-gcm' | 'chacha20-poly1305', key: Buffer): number => {
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const c = createCipheriv(algorithm, key, iv);
    for (let i = 0; i < 64; i++) c.update(record);
    c.final();
    const cpu = process.cpuUsage(cpu0);
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpuMs = (cpu.user + cpu.system) / 1000;
    return (64 * record.length) / Math.max(cpuMs > 0 ? Math.min(wallMs, cpuMs) : wallMs, 1e-3);
  };
  let aesGcm = 0, chacha = 0;
  for (let r = 0; r < rounds; r++) {
    aesGcm = Math.max(aesGcm, pass('aes-128-gcm', Buffer.alloc(16, 1)));
    chacha = Math.max(chacha, pass('chacha20-poly1305', Buffer.alloc(32, 1)));
  }
  return { aesGcm, chacha };
}

/**
 * ChaCha20 first only where it is clearly faster: with AES instructions the two are within ~20 %
 * of each other (either is fine, and AES-GCM is what the server prefers); without them ChaCha20 is
 * 3-4 times faster.
 */
export function preferredOrder(speed: { aesGcm: number; chacha: number }): AeadOrder {
  return speed.chacha > 1.5 * speed.aesGcm ? 'chacha' : 'aes';
}

let chosen: AeadOrder | undefined;

/**
 * The order for this process: $WILD_BACKUP_TLS_AEAD ('aes' or 'chacha') when set to one, else
 * measured once (10-30 ms here, when the first client for a cluster is made).
 */
export function clientAeadOrder(): AeadOrder {
  const env = process.env.WILD_BACKUP_TLS_AEAD;
  if (env === 'aes' || env === 'chacha') return env;
  if (chosen) return chosen;
  try {
    chosen = preferredOrder(measureAeads());
  } catch {
    chosen = 'aes'; // an OpenSSL without one of the two (a FIPS build has no ChaCha20): the server's order
  }
  return chosen;
}

/** The cipher string of this client's TLS connections to API servers. */
export function clientCiphers(): string {
  return cipherList(clientAeadOrder());
}
