// Test helpers for the storage suites: byte streams with digests, a gate to hold a stream open,
// a TCP tarpit, and scans of every process's argv and of log lines for secrets.
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import { Readable } from 'node:stream';
import { configureLogging } from '../../src/util/log.js';

/** A stream of `size` random bytes (64 KiB chunks) that honours backpressure; digest() once ended. */
export function randomStream(size: number, opts: { holdAfter?: number; hold?: Promise<void> } = {}) {
  const hash = createHash('sha256');
  let sent = 0;
  let released = false;
  const stream = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      if (opts.hold && !released && opts.holdAfter !== undefined && sent >= opts.holdAfter) {
        // read() is not called again until we push: the stream waits here.
        opts.hold.then(
          () => {
            released = true;
            this.push(next());
          },
          (err: Error) => this.destroy(err),
        );
        return;
      }
      this.push(next());
    },
  });
  function next(): Buffer {
    const chunk = randomBytes(Math.min(64 * 1024, size - sent));
    sent += chunk.length;
    hash.update(chunk);
    return chunk;
  }
  return { stream, digest: () => hash.digest('hex'), sent: () => sent };
}

export async function sha256Of(stream: Readable): Promise<{ hex: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hex: hash.digest('hex'), bytes };
}

/** Every process's argv (what /proc/<pid>/cmdline shows to anyone on the machine). */
export async function allCmdlines(): Promise<Array<{ pid: number; ppid: number; argv: string[] }>> {
  const out: Array<{ pid: number; ppid: number; argv: string[] }> = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8');
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(name), ppid, argv: cmdline.split('\0').filter(Boolean) });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The process and all its descendants, from a snapshot of /proc. */
export function descendantsOf(pid: number, procs: Array<{ pid: number; ppid: number; argv: string[] }>) {
  const result = procs.filter((p) => p.pid === pid);
  for (let i = 0; i < result.length; i++) {
    const parent = result[i]!.pid;
    result.push(...procs.filter((p) => p.ppid === parent));
  }
  return result;
}

/** A TCP server that accepts connections and never answers: an unreachable-but-listening host. */
export async function startTarpit(): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Collects every text the suite produced (log lines, error messages, responses) to scan for secrets. */
export class SecretScan {
  readonly texts: string[] = [];

  captureLogs(): void {
    configureLogging({ level: 'debug', sink: (line) => this.texts.push(line) });
  }

  record(...values: unknown[]): void {
    for (const v of values) {
      if (v instanceof Error) {
        const e = v as Error & { stderrTail?: string; issues?: unknown };
        this.texts.push(e.message, String(e.stack ?? ''), e.stderrTail ?? '', JSON.stringify(e.issues ?? null));
      } else {
        this.texts.push(typeof v === 'string' ? v : JSON.stringify(v));
      }
    }
  }

  /** The secrets (or their URL-encoded forms) found, with where; empty means clean. */
  findings(secrets: string[]): string[] {
    const found: string[] = [];
    for (const secret of secrets.filter((s) => s.length >= 4)) {
      const forms = new Set([secret, encodeURIComponent(secret), ...secret.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'))]);
      for (const text of this.texts) {
        for (const form of forms) {
          if (text.includes(form)) found.push(`secret ${secret.slice(0, 3)}… in: ${text.slice(0, 200)}`);
        }
      }
    }
    return found;
  }
}
