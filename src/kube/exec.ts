// Pod exec as streams, on `ws` (client-node's exec has no flow control: ARCHITECTURE §9).
// stdout is a Readable whose slow consumer pauses the socket; stdin is pulled from the caller's
// stream only as fast as the socket drains; stderr keeps a bounded tail; the exit code comes from
// the status channel. v5.channel.k8s.io ends stdin with its close signal; on a v4-only server a
// stdin of known length is bounded by `head -c` in the pod (values as positional args, never code).
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import type { KubeClient, ExecProtocol } from './client.js';
import {
  ClusterUnreachableError, CommandFailedError, ConnectionLostError, ExecUsageError, KubeAbortedError,
  KubeApiError, PodNotFoundError, PodNotRunningError,
} from './errors.js';

const CH_STDIN = 0, CH_STDOUT = 1, CH_STDERR = 2, CH_STATUS = 3, CH_CLOSE = 255;
const STDIN_FRAME = 256 << 10;
const SEND_HIGH = 1 << 20;
const SEND_LOW = 256 << 10;

export interface ExecOptions {
  namespace: string;
  pod: string;
  /** Default: the pod's first container. */
  container?: string;
  /** argv; never a shell string built from values. */
  command: readonly string[];
  /** Bytes for the command's stdin; the caller keeps ownership of a stream (it is not destroyed). */
  stdin?: Readable | Buffer | string;
  /** Exact stdin size; required only when the server speaks v4 (no stdin close signal). */
  stdinLength?: number;
  /**
   * The command stops reading stdin by itself (a psql script that ends with `\q`): on v4 it needs no
   * length bound, and its input may be written as the conversation goes (`head -c` would hold it).
   */
  stdinEndsItself?: boolean;
  /** Bytes of stderr kept (the tail), default 64 KiB. */
  stderrLimit?: number;
  /** Live stderr, e.g. for an operation log. */
  onStderr?: (chunk: Buffer) => void;
  /** Cancels the exec: the socket closes, the command is killed with it. */
  signal?: AbortSignal;
  /** Connect + handshake timeout, default 15 s. */
  connectTimeoutMs?: number;
  /** stdout buffer before the socket pauses, default 1 MiB. */
  highWaterMark?: number;
  /** Subprotocols to offer (tests); default v5 then v4. */
  protocols?: readonly ExecProtocol[];
  /**
   * A non-zero exit that the caller takes as success, from its code and stderr tail (GNU tar's 1
   * when files changed while it read them: its archive is whole). stdout then ends cleanly.
   */
  acceptExit?: (exitCode: number, stderr: string) => boolean;
  /** What a failure means, from its exit code and stderr tail, put before CommandFailedError's own words. */
  explainFailure?: (exitCode: number | null, stderr: string) => string | undefined;
}

export interface ExecResult {
  /** 0, or a code `acceptExit` accepted. */
  exitCode: number;
  stderr: string;
}

export interface ExecStream {
  /** Ends (EOF) only after the command succeeded; errors with the typed failure otherwise. */
  readonly stdout: Readable;
  readonly protocol: ExecProtocol;
  /** The TLS suite of the exec's connection (e.g. TLS_AES_128_GCM_SHA256; see ciphers.ts); null over plain HTTP. */
  readonly tlsCipher: string | null;
  /** Resolves when the command exited 0, or with a code `acceptExit` took (stdout may still hold unread bytes); rejects with a KubeError. */
  readonly done: Promise<ExecResult>;
  /** The stderr tail kept so far. */
  stderr(): string;
  /** Cancels the exec (same as the signal). */
  abort(reason?: unknown): void;
}

/** The stderr tail an exec keeps unless ExecOptions.stderrLimit says otherwise: a fuller one starts inside a line. */
export const EXEC_STDERR_LIMIT = 64 << 10;

let openSockets = 0;
/** Exec sockets currently open in this process (tests check that none is left behind). */
export function openExecSockets(): number {
  return openSockets;
}

function execUrl(client: KubeClient, o: ExecOptions, command: readonly string[], stdin: boolean): string {
  const server = client.server.replace(/\/+$/, '').replace(/^http/, 'ws');
  const q = new URLSearchParams();
  for (const c of command) q.append('command', c);
  if (o.container) q.set('container', o.container);
  q.set('stdin', String(stdin));
  q.set('stdout', 'true');
  q.set('stderr', 'true');
  q.set('tty', 'false');
  return `${server}/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods/${encodeURIComponent(o.pod)}/exec?${q.toString()}`;
}

/** Opens the exec WebSocket; rejects with a typed error if the API server refuses it. */
async function connect(client: KubeClient, o: ExecOptions, command: readonly string[], stdin: boolean, protocols: readonly ExecProtocol[]): Promise<{ ws: WebSocket; tlsCipher: string | null }> {
  const wsOpts: WebSocket.ClientOptions = { perMessageDeflate: false, maxPayload: 64 << 20, handshakeTimeout: o.connectTimeoutMs ?? 15_000 };
  // Over TLS the client-to-server mask protects nothing (it exists so that script in a browser cannot
  // steer what a plain-text intermediary sees), yet XOR-ing every stdin byte in JavaScript, and
  // un-masking it again on the other side, is most of what streaming a restore into a pod costs
  // (docs/benchmarks/restore.md). ws sends a zero key as-is: frames stay valid, only unmasked.
  if (client.server.startsWith('https:')) wsOpts.generateMask = (mask: Buffer) => { mask.fill(0); };
  await client.kc.applyToHTTPSOptions(wsOpts);
  const where = `${o.namespace}/${o.pod}`;
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(new KubeAbortedError(`exec in ${where}`, o.signal.reason));
    const ws = new WebSocket(execUrl(client, o, command, stdin), [...protocols], wsOpts);
    openSockets++;
    let tlsCipher: string | null = null;
    ws.once('upgrade', (res: IncomingMessage) => { tlsCipher = (res.socket as Partial<TLSSocket>).getCipher?.().standardName ?? null; });
    let settled = false;
    ws.once('close', () => { openSockets--; });
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      ws.terminate();
      reject(err);
    };
    const onAbort = (): void => fail(new KubeAbortedError(`exec in ${where}`, o.signal?.reason));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { if (body.length < 8192) body += c; });
      res.on('error', () => undefined);
      // A connection dropped before the end of the refusal never ends the response: fail on its close.
      res.on('close', () => { if (!res.complete) fail(new ConnectionLostError(where, `the API server closed the connection during its HTTP ${res.statusCode} answer`)); });
      res.on('end', () => {
        let status: { message?: string; reason?: string } = {};
        try { status = JSON.parse(body) as typeof status; } catch { status = { message: body.slice(0, 300) }; }
        const msg = status.message ?? `HTTP ${res.statusCode}`;
        const code = res.statusCode ?? 0;
        if (code === 404 && /pods? "?/.test(msg)) fail(new PodNotFoundError(o.namespace, o.pod));
        else if (code === 400) fail(new PodNotRunningError(o.namespace, o.pod, msg));
        else fail(new KubeApiError(code, status.reason ?? 'Unknown', msg));
      });
    });
    ws.once('error', (err: Error & { code?: string }) => {
      fail(new ClusterUnreachableError(client.server, err.code ?? err.message, { cause: err }));
    });
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      ws.removeAllListeners('error');
      resolve({ ws, tlsCipher });
    });
  });
}

/** Learns which exec subprotocol the server speaks, by a handshake that runs `true` without stdin. */
async function negotiate(client: KubeClient, o: ExecOptions, protocols: readonly ExecProtocol[]): Promise<ExecProtocol> {
  if (client.execProtocol && protocols.includes(client.execProtocol)) return client.execProtocol;
  const { ws } = await connect(client, o, ['true'], false, protocols);
  const p = ws.protocol as ExecProtocol;
  ws.on('error', () => undefined);
  ws.close();
  if (!o.protocols) client.execProtocol = p;
  return p;
}

/**
 * Runs `command` in a pod and streams it. Resolves once the exec socket is open (pod missing, pod not
 * running or cluster down reject here, typed); the command's outcome is `done`, and `stdout` errors too.
 */
export async function execStream(client: KubeClient, o: ExecOptions): Promise<ExecStream> {
  const protocols = o.protocols ?? ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
  const where = `${o.namespace}/${o.pod}`;
  const program = o.command[0] ?? '';
  if (!o.command.length) throw new ExecUsageError('exec needs a command');
  const hasStdin = o.stdin !== undefined;
  let command = o.command;
  if (hasStdin) {
    const proto = await negotiate(client, o, protocols);
    if (proto === 'v4.channel.k8s.io' && !o.stdinEndsItself) {
      if (o.stdinLength === undefined) throw new ExecUsageError(`the cluster at ${client.server} speaks only v4.channel.k8s.io, which cannot signal the end of stdin: pass stdinLength`);
      // head -c ends the command's stdin after exactly n bytes; n and argv are positional arguments.
      command = ['sh', '-c', 'n="$1"; shift; head -c "$n" | "$@"', 'sh', String(o.stdinLength), ...o.command];
    }
  }
  const { ws, tlsCipher } = await connect(client, o, command, hasStdin, protocols);
  const protocol = ws.protocol as ExecProtocol;
  if (!o.protocols) client.execProtocol ??= protocol;

  const stderrLimit = o.stderrLimit ?? EXEC_STDERR_LIMIT;
  let stderrTail = Buffer.alloc(0);
  let status: { status?: string; reason?: string; message?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } } | undefined;
  let finished = false;
  let resolveDone!: (r: ExecResult) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<ExecResult>((res, rej) => { resolveDone = res; rejectDone = rej; });
  done.catch(() => undefined); // observed through stdout or by the caller; never an unhandled rejection

  const stdout = new Readable({
    highWaterMark: o.highWaterMark ?? 1 << 20,
    read() { if (ws.isPaused) ws.resume(); },
    destroy(err, cb) {
      // A consumer that gives up (destroy) cancels the command.
      if (!finished) finish(err ?? new KubeAbortedError(`exec in ${where}`, new Error('stdout destroyed by its consumer')));
      cb(err);
    },
  });
  stdout.on('error', () => undefined); // the same error reaches `done`

  const stderrText = (): string => stderrTail.toString('utf8');

  function finish(err?: Error, exitCode = 0): void {
    if (finished) return;
    finished = true;
    o.signal?.removeEventListener('abort', onAbort);
    if (err) {
      if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      if (!stdout.destroyed) stdout.destroy(err);
      rejectDone(err);
    } else {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      stdout.push(null);
      resolveDone({ exitCode, stderr: stderrText() });
    }
  }

  const onAbort = (): void => finish(new KubeAbortedError(`exec of ${program} in ${where}`, o.signal?.reason));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();

  ws.on('message', (data: Buffer) => {
    if (finished || data.length === 0) return;
    const ch = data[0];
    const payload = data.subarray(1);
    if (ch === CH_STDOUT) {
      if (payload.length && !stdout.push(payload) && !ws.isPaused) ws.pause();
    } else if (ch === CH_STDERR) {
      o.onStderr?.(payload);
      stderrTail = Buffer.concat([stderrTail, payload]);
      if (stderrTail.length > stderrLimit) stderrTail = stderrTail.subarray(stderrTail.length - stderrLimit);
    } else if (ch === CH_STATUS) {
      try { status = JSON.parse(payload.toString('utf8')) as typeof status; } catch { status = { status: 'Failure', message: payload.toString('utf8') }; }
      if (status?.status === 'Success') return finish();
      const exit = status?.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
      const code = status?.reason === 'NonZeroExitCode' && exit !== undefined ? Number(exit) : null;
      if (code !== null && o.acceptExit?.(code, stderrText())) return finish(undefined, code);
      finish(new CommandFailedError(program, code, stderrText(), where, status?.message, o.explainFailure?.(code, stderrText())));
    }
  });
  ws.on('close', (code: number, reason: Buffer) => {
    if (!finished) finish(new ConnectionLostError(where, `socket closed (${code}${reason.length ? ` ${reason.toString()}` : ''}) before the command's status arrived`));
  });
  ws.on('error', (err: Error) => {
    if (!finished) finish(new ConnectionLostError(where, err.message, { cause: err }));
  });

  if (hasStdin) void pumpStdin();

  async function pumpStdin(): Promise<void> {
    const src = typeof o.stdin === 'string' || Buffer.isBuffer(o.stdin) ? Readable.from([Buffer.from(o.stdin)]) : o.stdin!;
    let pending = 0;
    let wake: (() => void) | undefined;
    let sent = 0;
    const send = async (frame: Buffer): Promise<void> => {
      pending += frame.length;
      ws.send(frame, { binary: true }, () => {
        pending -= frame.length;
        if (pending < SEND_LOW && wake) { const w = wake; wake = undefined; w(); }
      });
      // Respect the socket: wait until what is queued has gone out before reading more from the producer.
      while (pending > SEND_HIGH && !finished) await new Promise<void>((r) => { wake = r; });
    };
    try {
      for await (const chunk of src as AsyncIterable<Buffer | string>) {
        if (finished) return;
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        sent += buf.length;
        if (protocol === 'v4.channel.k8s.io' && o.stdinLength !== undefined && sent > o.stdinLength) throw new ExecUsageError(`stdin is longer than stdinLength (${o.stdinLength})`);
        for (let off = 0; off < buf.length; off += STDIN_FRAME) {
          const part = buf.subarray(off, off + STDIN_FRAME);
          const frame = Buffer.allocUnsafe(part.length + 1);
          frame[0] = CH_STDIN;
          part.copy(frame, 1);
          await send(frame);
          if (finished) return;
        }
      }
      if (finished) return;
      if (protocol === 'v5.channel.k8s.io') ws.send(Buffer.from([CH_CLOSE, CH_STDIN]));
      else if (o.stdinLength !== undefined && sent !== o.stdinLength) throw new ExecUsageError(`stdin ended after ${sent} bytes, stdinLength said ${o.stdinLength}`);
    } catch (err) {
      // A producer that fails must not look like end-of-file: the command is killed, not fed a truncated stream.
      finish(err instanceof Error ? err : new Error(String(err)));
    }
  }

  return {
    stdout,
    protocol,
    tlsCipher,
    done,
    stderr: stderrText,
    abort: (reason?: unknown) => finish(new KubeAbortedError(`exec of ${program} in ${where}`, reason)),
  };
}

export interface ExecTextOptions extends ExecOptions {
  /** stdout beyond this many bytes fails the call (default 16 MiB). */
  maxOutput?: number;
}

/** Runs a short command and collects its stdout (bounded) and stderr; throws a KubeError on failure. */
export async function execText(client: KubeClient, o: ExecTextOptions): Promise<{ stdout: string; stderr: string }> {
  const max = o.maxOutput ?? 16 << 20;
  const ex = await execStream(client, o);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of ex.stdout as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > max) { ex.abort(new Error(`output larger than ${max} bytes`)); throw new ExecUsageError(`output of ${o.command[0] ?? ''} is larger than ${max} bytes`); }
      chunks.push(c);
    }
  } catch (err) {
    if (err instanceof ExecUsageError) throw err;
    await ex.done; // rejects with the typed failure that broke stdout
    throw err;
  }
  const r = await ex.done;
  return { stdout: Buffer.concat(chunks).toString('utf8'), stderr: r.stderr };
}
