// Pod exec over WebSocket, server side: the `channel.k8s.io` framing (v5 and v4) around a local
// process that runs with the pod's environment. Flow control both ways: the process's output is
// paused while the socket has too much unsent, and the socket is paused while the process's stdin is full.
import { spawn, type ChildProcess } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { logger } from '../util/log.js';
import { ApiError, statusBody, type StatusBody } from './objects.js';
import type { SimRuntime } from './runtime.js';

const log = logger('sim.exec');

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;
export type ExecProtocol = (typeof EXEC_PROTOCOLS)[number];

export const Channel = { stdin: 0, stdout: 1, stderr: 2, status: 3, resize: 4, close: 255 } as const;

const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;

export function writeHttpError(socket: Duplex, status: StatusBody): void {
  const body = JSON.stringify(status);
  const text = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error' }[status.code] ?? 'Error';
  socket.end(`HTTP/1.1 ${status.code} ${text}\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** Accepts exec upgrades for one API server; `protocols` is what it offers (tests drop v5 to see the v4 path). */
export class ExecEndpoint {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();

  constructor(private readonly rt: SimRuntime, public protocols: readonly ExecProtocol[] = EXEC_PROTOCOLS) {
    this.wss = new WebSocketServer({
      noServer: true, maxPayload: 16 << 20, perMessageDeflate: false,
      // Answer the handshake with the first offered protocol this endpoint speaks (the client's preference).
      handleProtocols: (offered) => {
        for (const p of offered) if ((this.protocols as readonly string[]).includes(p)) return p;
        return false;
      },
    });
  }

  handle(req: IncomingMessage, socket: Duplex, head: Buffer, ns: string, pod: string, query: URLSearchParams): void {
    const command = query.getAll('command');
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const protocol = offered.find((p): p is ExecProtocol => (this.protocols as readonly string[]).includes(p));
    let target;
    try {
      if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw ApiError.badRequest('Upgrade request required');
      target = this.rt.execTarget(ns, pod, query.get('container') ?? undefined);
      if (!command.length) throw ApiError.badRequest('you must specify at least one command for the container');
      if (!protocol) throw ApiError.badRequest(`unable to upgrade connection: none of the offered subprotocols (${offered.join(', ') || 'none'}) is supported; the server speaks ${this.protocols.join(', ')}`);
      if (query.get('tty') === 'true') throw ApiError.badRequest('tty is not supported by the simulated cluster');
    } catch (err) {
      writeHttpError(socket, err instanceof ApiError ? err.status : statusBody(500, 'InternalError', String(err)));
      return;
    }
    const t = target;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.once('close', () => this.sockets.delete(ws));
      const run = (): void => runSession(this.rt, ws, socket, protocol, t, command, {
        stdin: query.get('stdin') === 'true',
        stdout: query.get('stdout') !== 'false',
        stderr: query.get('stderr') !== 'false',
      });
      const gate = this.rt.execGate?.(command);
      if (!gate) return run();
      ws.pause(); // stdin waits in the socket until the command starts
      void gate.finally(() => {
        if (ws.readyState !== ws.OPEN) return;
        ws.resume();
        run();
      });
    });
  }

  closeAll(): void {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
  }
}

interface Streams { stdin: boolean; stdout: boolean; stderr: boolean }

/**
 * The header of one unmasked binary frame of `size` payload bytes, with the channel byte that opens
 * the payload: a chunk of output then follows as it came from the pipe, without being copied.
 */
function frameHeader(channel: number, size: number): Buffer {
  const lenBytes = size < 126 ? 0 : size < 65536 ? 2 : 8;
  const h = Buffer.allocUnsafe(2 + lenBytes + 1);
  h[0] = 0x82; // FIN, binary
  if (lenBytes === 0) h[1] = size;
  else if (lenBytes === 2) { h[1] = 126; h.writeUInt16BE(size, 2); }
  else { h[1] = 127; h.writeBigUInt64BE(BigInt(size), 2); }
  h[2 + lenBytes] = channel;
  return h;
}

function runSession(
  rt: SimRuntime, ws: WebSocket, socket: Duplex, protocol: ExecProtocol,
  target: ReturnType<SimRuntime['execTarget']>, command: string[], want: Streams,
): void {
  let child: ChildProcess;
  let pending = 0;
  let outputPaused = false;
  let finished = false;
  let stdinBlocked = false;
  let unregister = (): void => undefined;

  const killGroup = (): void => {
    if (child?.pid) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ } }
  };

  // Output frames are written to the upgraded socket itself, header then chunk (ws's sender would
  // need the channel byte and the chunk in one buffer: a copy of every byte). ws writes its own
  // frames (status, close, pong) to the same socket synchronously too, so the order holds.
  const send = (channel: number, chunk: Buffer): void => {
    if (ws.readyState !== ws.OPEN) return;
    const size = chunk.length + 1;
    pending += size;
    socket.cork();
    socket.write(frameHeader(channel, size));
    socket.write(chunk, () => {
      pending -= size;
      if (outputPaused && pending < LOW_WATER) {
        outputPaused = false;
        child.stdout?.resume();
        child.stderr?.resume();
      }
    });
    socket.uncork();
    if (!outputPaused && pending > HIGH_WATER) {
      outputPaused = true;
      child.stdout?.pause();
      child.stderr?.pause();
    }
  };

  const finish = (status: object): void => {
    if (finished) return;
    finished = true;
    unregister();
    killGroup();
    if (ws.readyState === ws.OPEN) {
      ws.resume(); // a paused socket would never read the client's close frame
      send(Channel.status, Buffer.from(JSON.stringify(status)));
      ws.close(1000);
    }
  };

  try {
    child = spawn(command[0]!, command.slice(1), {
      cwd: target.cwd, env: target.env, detached: true,
      stdio: [want.stdin ? 'pipe' : 'ignore', want.stdout ? 'pipe' : 'ignore', want.stderr ? 'pipe' : 'ignore'],
    });
  } catch (err) {
    finish(startFailure(command[0]!, err));
    return;
  }
  unregister = rt.registerExec(target.podKey, {
    podGone: () => {
      // The container is gone: its processes die and the stream breaks without a status.
      finished = true;
      unregister();
      killGroup();
      ws.terminate();
    },
  });

  child.on('error', (err) => finish(startFailure(command[0]!, err)));
  child.stdout?.on('data', (c: Buffer) => send(Channel.stdout, c));
  child.stderr?.on('data', (c: Buffer) => send(Channel.stderr, c));
  child.stdin?.on('error', () => undefined); // EPIPE when the command exits before reading all stdin
  child.on('exit', () => killGroup()); // background children of the command must not outlive it
  child.on('close', (code, signal) => {
    if (code === 0) return finish({ metadata: {}, status: 'Success' });
    const rc = code ?? 128 + signalNumber(signal);
    finish({
      metadata: {}, status: 'Failure', message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${rc}`,
      reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(rc) }] },
    });
  });

  ws.on('message', (data: Buffer) => {
    if (!data.length) return;
    const ch = data[0];
    if (ch === Channel.close && protocol === 'v5.channel.k8s.io') {
      if (data[1] === Channel.stdin) child.stdin?.end();
      return;
    }
    if (ch !== Channel.stdin || !child.stdin || child.stdin.writableEnded) return;
    if (!child.stdin.write(data.subarray(1)) && !stdinBlocked) {
      stdinBlocked = true;
      ws.pause();
      child.stdin.once('drain', () => { stdinBlocked = false; ws.resume(); });
    }
  });
  const onGone = (): void => {
    if (!finished) {
      finished = true;
      unregister();
      killGroup();
    }
  };
  ws.on('close', onGone);
  ws.on('error', (err) => { log.debug('exec socket error', { error: String(err) }); onGone(); });
}

function startFailure(cmd: string, err: unknown): object {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? `exec: "${cmd}": executable file not found in $PATH` : String(err);
  return {
    metadata: {}, status: 'Failure', reason: 'InternalError', code: 500,
    message: `Internal error occurred: error executing command in container: failed to exec in container: OCI runtime exec failed: exec failed: unable to start container process: ${why}: unknown`,
    details: { causes: [{ message: why }] },
  };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };
  return (signal && table[signal]) ?? 0;
}
