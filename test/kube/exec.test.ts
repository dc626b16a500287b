// Exec streams through the access layer against the simulated cluster: bytes both ways, exit codes
// and stderr, typed errors (no pod, pod deleted mid-stream, cluster down, cancel), flow control both
// ways, and the v4 fallback; nothing (process, socket) is left behind.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ClusterUnreachableError, CommandFailedError, ConnectionLostError, ExecUsageError, KubeAbortedError, PodNotFoundError,
  execStream, execText, findReadyPod, kubeClientFor, openExecSockets, type KubeClient,
} from '../../src/kube/index.js';
import { startSimKube, type SimKube } from '../../src/sim/index.js';
import { makeSimTls } from '../../src/sim/tls.js';
import { freePort } from '../../src/util/net.js';
import { appObjects } from './objects.js';

const MiB = 1 << 20;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('execStream on a v5 cluster', () => {
  let sim: SimKube;
  let client: KubeClient;
  let pod: string;
  let dataDir: string;

  beforeAll(async () => {
    sim = await startSimKube();
    sim.apply(appObjects('gitea'));
    await sim.waitForPods();
    client = kubeClientFor(sim.kubeconfigPath);
    pod = (await findReadyPod(client, 'gitea', 'app=gitea'))!.name;
    dataDir = sim.runtime.pvcDir('gitea', 'gitea-data');
  });
  afterAll(async () => { await sim?.stop(); });
  afterEach(async () => {
    // Nothing may outlive a call: no exec process in the pod, no socket in this process.
    await until(() => sim.runtime.activeExecs() === 0 && openExecSockets() === 0);
  });

  it('chooses the TLS suite a Go API server would for our offer (AES-128-GCM), not Node\'s AES-256', async () => {
    // The client offers Node's defaults (AES-256-GCM first); kube-apiserver, like every Go server on a
    // machine with AES instructions, answers TLS 1.3 with its own first choice.
    const { hostname: host, port } = new URL(sim.url);
    const cipher = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host, port: Number(port), rejectUnauthorized: false }, () => { resolve(s.getCipher().standardName); s.end(); });
      s.once('error', reject);
    });
    expect(cipher).toBe('TLS_AES_128_GCM_SHA256');
  });

  it('streams stdin in and stdout out, byte-identical, with EOF by the v5 close signal', async () => {
    const input = randomBytes(24 * MiB);
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['cat'], stdin: Readable.from([input.subarray(0, 5 * MiB), input.subarray(5 * MiB)]) });
    expect(ex.protocol).toBe('v5.channel.k8s.io');
    const out = await collect(ex.stdout);
    await expect(ex.done).resolves.toMatchObject({ exitCode: 0 });
    expect(out.length).toBe(input.length);
    expect(sha(out)).toBe(sha(input));
  });

  it('reports a non-zero exit code with the tail of stderr, and stdout fails with it', async () => {
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['sh', '-c', 'echo partial; for i in 1 2 3; do echo "line $i" >&2; done; echo "pg_dump: error: connection failed" >&2; exit 3'] });
    const err = await collect(ex.stdout).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    const failed = err as CommandFailedError;
    expect(failed.exitCode).toBe(3);
    expect(failed.stderrTail).toContain('pg_dump: error: connection failed');
    expect(failed.message).toContain('exited with code 3');
    await expect(ex.done).rejects.toBe(err);
  });

  it('keeps only a bounded tail of a huge stderr', async () => {
    const ex = await execStream(client, { namespace: 'gitea', pod, stderrLimit: 4096, command: ['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x >&2; echo THE-END >&2; exit 1'] });
    const err = (await ex.done.catch((e: unknown) => e)) as CommandFailedError;
    expect(err.exitCode).toBe(1);
    expect(err.stderrTail.length).toBeLessThanOrEqual(4096);
    expect(err.stderrTail.trimEnd().endsWith('THE-END')).toBe(true);
  });

  it('reports a program that does not exist as a failed command without exit code', async () => {
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['no-such-program'] });
    const err = (await ex.done.catch((e: unknown) => e)) as CommandFailedError;
    expect(err).toBeInstanceOf(CommandFailedError);
    expect(err.exitCode).toBeNull();
    expect(err.message).toContain('executable file not found');
  });

  it('execText collects a short command', async () => {
    writeFileSync(path.join(dataDir, 'hello.txt'), 'hi there');
    const r = await execText(client, { namespace: 'gitea', pod, command: ['cat', path.join(dataDir, 'hello.txt')] });
    expect(r.stdout).toBe('hi there');
  });

  it('refuses a server whose certificate the kubeconfig\'s CA did not sign (one TLS context serves every exec)', async () => {
    const other = makeSimTls(path.join(path.dirname(sim.kubeconfigPath), 'other-ca'));
    const text = readFileSync(sim.kubeconfigPath, 'utf8');
    const file = path.join(path.dirname(sim.kubeconfigPath), 'wrong-ca.kubeconfig');
    writeFileSync(file, text.replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${Buffer.from(other.caPem).toString('base64')}`));
    expect(readFileSync(file, 'utf8')).not.toBe(text);
    const wrong = kubeClientFor(file);
    for (let i = 0; i < 2; i++) {
      const err = await execText(wrong, { namespace: 'gitea', pod, command: ['true'] }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect(String((err as Error).message) + String((err as { cause?: unknown }).cause ?? '')).toMatch(/certificate|verify/i);
    }
    expect((await execText(client, { namespace: 'gitea', pod, command: ['echo', 'ok'] })).stdout).toBe('ok\n');
  });

  it('fails fast with PodNotFoundError for a pod that does not exist', async () => {
    const t0 = Date.now();
    await expect(execStream(client, { namespace: 'gitea', pod: 'gitea-nope', command: ['true'] })).rejects.toBeInstanceOf(PodNotFoundError);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('fails with ClusterUnreachableError within the timeout when the cluster is down', async () => {
    const port = await freePort();
    const kc = path.join(sim.stateDir, 'down.kubeconfig');
    writeFileSync(kc, readFileSync(sim.kubeconfigPath, 'utf8').replace(/server: \S+/, `server: https://127.0.0.1:${port}`), { mode: 0o600 });
    const down = kubeClientFor(kc);
    const t0 = Date.now();
    await expect(execStream(down, { namespace: 'gitea', pod, command: ['true'], connectTimeoutMs: 3000 })).rejects.toBeInstanceOf(ClusterUnreachableError);
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('an API server that breaks off its refusal mid-answer fails the exec, never leaves it waiting', async () => {
    // An API server (behind a proxy, say) that refuses the upgrade and drops the connection before
    // the end of its error body.
    const tls = makeSimTls(path.join(sim.stateDir, 'cut-ca'));
    const server = https.createServer({ cert: tls.certPem, key: tls.keyPem });
    server.on('upgrade', (_req, socket: Duplex) => {
      socket.write('HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"kind":"Status","mess');
      setTimeout(() => socket.destroy(), 50);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = path.join(sim.stateDir, 'cut.kubeconfig');
      const text = readFileSync(sim.kubeconfigPath, 'utf8')
        .replace(/server: \S+/, `server: https://127.0.0.1:${(server.address() as AddressInfo).port}`)
        .replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${Buffer.from(tls.caPem).toString('base64')}`);
      writeFileSync(kc, text, { mode: 0o600 });
      const t0 = Date.now();
      const err = await Promise.race([
        execStream(kubeClientFor(kc), { namespace: 'gitea', pod, command: ['true'] }).then(() => new Error('opened'), (e: unknown) => e),
        new Promise((r) => setTimeout(() => r(new Error('still waiting after 5 s')), 5000)),
      ]);
      expect(err).toBeInstanceOf(ConnectionLostError);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      server.close();
    }
  });

  it('slow stdout consumer pauses the command (memory stays bounded), then everything arrives', async () => {
    const marker = path.join(dataDir, 'producer-finished');
    const total = 64 * MiB;
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['sh', '-c', 'head -c "$1" /dev/zero && touch "$2"', 'sh', String(total), marker] });
    let received = 0;
    let paused = true;
    let resume!: () => void;
    const gate = new Promise<void>((r) => { resume = r; });
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (paused && received > MiB) void gate.then(() => cb()); else cb();
      },
    });
    const flow = pipeline(ex.stdout, sink);
    await new Promise((r) => setTimeout(r, 1500));
    // The consumer holds ~1 MiB: the command must be blocked far before producing 64 MiB.
    expect(existsSync(marker)).toBe(false);
    expect(received).toBeLessThan(4 * MiB);
    paused = false;
    resume();
    await flow;
    await ex.done;
    expect(received).toBe(total);
    expect(existsSync(marker)).toBe(true);
  });

  it('a pod slow to take stdin pauses the producer', async () => {
    const total = 64 * MiB;
    let pulled = 0;
    const source = new Readable({
      read() {
        if (pulled >= total) return void this.push(null);
        const n = Math.min(256 * 1024, total - pulled);
        pulled += n;
        this.push(Buffer.alloc(n, 7));
      },
    });
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['sh', '-c', 'sleep 1.5; wc -c'], stdin: source });
    await new Promise((r) => setTimeout(r, 1000));
    // Pipe, socket buffers and our send window hold a few MiB; the producer must not have run ahead.
    expect(pulled).toBeLessThan(24 * MiB);
    const out = await collect(ex.stdout);
    expect(out.toString().trim()).toBe(String(total));
  });

  it('a stdin producer that fails kills the command instead of sending end-of-file', async () => {
    const marker = path.join(dataDir, 'saw-eof');
    const source = new Readable({ read() { /* pushed below */ } });
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['sh', '-c', 'cat > /dev/null && touch "$1"', 'sh', marker], stdin: source });
    source.push(Buffer.alloc(1000));
    setTimeout(() => source.destroy(new Error('restic dump failed')), 100);
    await expect(ex.done).rejects.toThrow('restic dump failed');
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(marker)).toBe(false);
  });

  it('an AbortSignal cancels a running exec and closes its socket', async () => {
    const ac = new AbortController();
    const ex = await execStream(client, { namespace: 'gitea', pod, command: ['sleep', '30'], signal: ac.signal });
    setTimeout(() => ac.abort(new Error('operation cancelled')), 200);
    const t0 = Date.now();
    await expect(ex.done).rejects.toBeInstanceOf(KubeAbortedError);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('an already aborted signal never starts the command', async () => {
    await expect(execStream(client, { namespace: 'gitea', pod, command: ['true'], signal: AbortSignal.abort() })).rejects.toBeInstanceOf(KubeAbortedError);
  });

  it('a pod deleted mid-stream gives ConnectionLostError', async () => {
    const victim = (await findReadyPod(client, 'gitea', 'app=gitea'))!.name;
    const ex = await execStream(client, { namespace: 'gitea', pod: victim, command: ['sh', '-c', 'while :; do head -c 65536 /dev/zero; sleep 0.05; done'] });
    let got = 0;
    ex.stdout.on('data', (c: Buffer) => { got += c.length; });
    await until(() => got > 0);
    await client.core.deleteNamespacedPod({ namespace: 'gitea', name: victim });
    const err = await ex.done.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionLostError);
    await sim.waitForPods();
    await until(() => sim.runtime.store.list('pods', 'gitea').length === 1 && sim.runtime.store.list('pods', 'gitea')[0]!.status?.phase === 'Running');
    pod = (await findReadyPod(client, 'gitea', 'app=gitea'))!.name;
  });
});

describe('execStream on a v4-only cluster', () => {
  let sim: SimKube;
  let client: KubeClient;
  let pod: string;

  beforeAll(async () => {
    sim = await startSimKube({ execProtocols: ['v4.channel.k8s.io'] });
    sim.apply(appObjects('ghost'));
    await sim.waitForPods();
    client = kubeClientFor(sim.kubeconfigPath);
    pod = (await findReadyPod(client, 'ghost', 'app=ghost'))!.name;
  });
  afterAll(async () => { await sim?.stop(); });

  it('falls back to v4 and ends stdin with a length-bounded wrapper', async () => {
    const input = randomBytes(8 * MiB + 123);
    const ex = await execStream(client, { namespace: 'ghost', pod, command: ['sha256sum'], stdin: Readable.from([input]), stdinLength: input.length });
    expect(ex.protocol).toBe('v4.channel.k8s.io');
    const out = (await collect(ex.stdout)).toString();
    expect(out.split(' ')[0]).toBe(sha(input));
  });

  it('passes values to the wrapped command as arguments, not shell code', async () => {
    const tricky = 'a b; echo INJECTED $(id) "q\'';
    const ex = await execStream(client, { namespace: 'ghost', pod, command: ['printf', '%s|%s', tricky, '-'], stdin: 'ignored', stdinLength: 7 });
    expect((await collect(ex.stdout)).toString()).toBe(`${tricky}|-`);
  });

  it('refuses stdin of unknown length, saying why', async () => {
    await expect(execStream(client, { namespace: 'ghost', pod, command: ['cat'], stdin: Readable.from([Buffer.from('x')]) })).rejects.toBeInstanceOf(ExecUsageError);
    await until(() => sim.runtime.activeExecs() === 0 && openExecSockets() === 0);
  });
});
