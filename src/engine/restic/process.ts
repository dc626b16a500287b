// One restic child process: spawned in its own process group, stdin fed with backpressure,
// stdout read line by line (or handed out as a stream), a redacted stderr tail kept for errors.
// Abort or timeout sends SIGINT (restic then cleans up and writes no snapshot), then SIGKILL.
// restic is background work: it runs at a lower CPU priority than the API (see runsBehindTheApi).
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from '../../util/log.js';
import { ResticAbortError, ResticError, ResticVanishedFileError, ResticUnreachableError, VANISHED_FILE, classifyResticFailure, vanishedFileWords, type VanishedFileType } from './errors.js';

export interface ResticSpawnInfo {
  pid: number;
  argv: string[];
  command: string;
}

export interface ResticRunSpec {
  binary: string;
  /** Everything after the binary: global options, the subcommand and its options. Never a secret. */
  argv: string[];
  env: Record<string, string>;
  /** The subcommand, for messages and classification. */
  command: string;
  displayUri: string;
  redact: (text: string) => string;
  log: Logger;
  signal?: AbortSignal;
  /** Stops restic after this long and fails with ResticUnreachableError (bounded status checks). */
  timeoutMs?: number;
  /** Fed to restic's stdin with backpressure; on its error restic is interrupted (no snapshot). */
  stdin?: Readable;
  onSpawn?: (info: ResticSpawnInfo) => void;
  /** Time between SIGINT and SIGKILL. */
  killGraceMs?: number;
  /** More text to classify a failure by (a helper's own log), read once restic has exited. */
  diagnostics?: () => Promise<string>;
  /** restic's CPU priority below the API's (a nice increment, 0-19); default RESTIC_NICE. */
  nice?: number;
  /**
   * Stops restic, failing with ResticVanishedFileError, when it starts retrying the read of a lock,
   * snapshot or index file that is not there (VANISHED_FILE), so the caller can start it again instead of
   * waiting ~45 s. A restic fed input only for a lock file: it meets those while it locks the
   * repository, before it reads any input. A function is asked at that moment (a dump: only
   * before its first byte went out).
   */
  stopOnVanishedFile?: boolean | (() => boolean);
}

/** How far below the API restic runs: a contended core goes to the API about 9 times in 10. */
export const RESTIC_NICE = 10;

const executable = (paths: string[]): string | undefined => paths.find((f) => {
  try { accessSync(f, constants.X_OK); return true; } catch { return false; }
});
/** POSIX `nice`, to start restic with every one of its threads at the lower priority. */
const NICE_BINARY = executable(['/usr/bin/nice', '/bin/nice']);
/** util-linux `chrt`, to start restic with every one of its threads under SCHED_BATCH. */
const CHRT_BINARY = process.platform === 'linux' ? executable(['/usr/bin/chrt', '/bin/chrt']) : undefined;

/**
 * The spawn of a restic that runs behind the API. restic runs in its own session (detached, so
 * that a cancel can kill its whole group), and on Linux a session is its own scheduling
 * "autogroup", weighing as much as the server's whole session whatever the nice values inside it:
 * five restic processes deriving their keys at the start of a backup then took five sixths of both
 * cores from the API (query p99 0.3-0.6 s in the load benchmark; 54 ms with this). So the session
 * gets the lower weight too, once restic runs (`/proc/<pid>/autogroup`, where the kernel has it).
 *
 * And restic runs under SCHED_BATCH (`chrt --batch`, where it is installed): a batch thread that
 * wakes up waits for the next tick instead of preempting the thread that runs. Without it, every
 * write into restic's stdin could wake restic onto the core its feeder (the server) was using and
 * take it from the feeder, and restic spent 0.65-1.25 CPU-s more per backup of 2 GiB (DESIGN.md,
 * "restic runs behind the API").
 */
function runsBehindTheApi(binary: string, argv: string[], nice: number): { file: string; args: string[]; lower: (pid: number) => void } {
  if (nice <= 0 || NICE_BINARY === undefined) return { file: binary, args: argv, lower: () => undefined };
  return {
    file: NICE_BINARY,
    args: ['-n', String(nice), ...(CHRT_BINARY ? [CHRT_BINARY, '--batch', '0'] : []), binary, ...argv],
    lower: (pid) => {
      if (process.platform !== 'linux') return;
      try { writeFileSync(`/proc/${pid}/autogroup`, String(nice)); } catch { /* no autogroup scheduling on this kernel */ }
    },
  };
}

const STDERR_TAIL = 16 * 1024;
const MAX_LINE = 64 * 1024 * 1024;
// restic draws its progress bar with ANSI sequences even on a pipe.
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

type StopReason = 'abort' | 'timeout' | 'source' | 'consumer' | 'vanished';

export class ResticProcess {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private stderrTail = '';
  private stopReason: StopReason | undefined;
  private sourceError: unknown;
  private vanished: { type: VanishedFileType; id: string } | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private exited = false;
  private exitSignal: NodeJS.Signals | null = null;
  private readonly done: Promise<void>;
  /** Bytes of the stdin source handed to restic so far. */
  bytesFed = 0;
  /** Taken just before the spawn: no time restic takes (a snapshot's) can be earlier. */
  readonly spawnedAt: Date;

  constructor(private readonly spec: ResticRunSpec) {
    const { binary, argv, env, signal } = spec;
    const behind = runsBehindTheApi(binary, argv, spec.nice ?? RESTIC_NICE);
    this.spawnedAt = new Date();
    this.child = spawn(behind.file, behind.args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    // Listened to before anything else: a failed spawn emits 'error' on the next tick, and an
    // 'error' nobody listens to would end the server.
    let spawnError: Error | undefined;
    this.child.on('error', (err) => {
      spawnError = err;
    });
    // Out of file descriptors (EMFILE, ENFILE), Node returns a child without pipes (its 'error' and
    // 'close' follow): a failed start, like any other.
    if (!this.child.stdin || !this.child.stdout || !this.child.stderr) {
      throw new ResticError(`cannot start restic (${binary}): no pipes to it could be created (out of file descriptors)`, { command: spec.command });
    }
    // A read error on restic's pipes (not seen in practice) only closes them; restic's exit decides.
    this.child.stdout.on('error', () => undefined);
    this.child.stderr.on('error', () => undefined);
    const pid = this.child.pid;
    if (pid !== undefined) {
      behind.lower(pid);
      spec.onSpawn?.({ pid, argv: [behind.file, ...behind.args], command: spec.command });
    }
    spec.log.debug('restic started', { command: spec.command, pid, repository: spec.displayUri });

    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk.replace(ANSI, '')).slice(-STDERR_TAIL);
      if (spec.stopOnVanishedFile && !this.stopReason) {
        const [, type, id] = VANISHED_FILE.exec(this.stderrTail.slice(-4096)) ?? [];
        const file = type && id ? { type: type.toLowerCase() as VanishedFileType, id } : undefined;
        // A restic fed input is stopped only while it locks (before it reads a byte of it).
        const wanted = file && (!spec.stdin || file.type === 'lock');
        if (wanted && (typeof spec.stopOnVanishedFile === 'function' ? spec.stopOnVanishedFile() : true)) {
          this.vanished = file;
          this.stop('vanished');
        }
      }
    });

    const onAbort = () => this.stop('abort');
    signal?.addEventListener('abort', onAbort, { once: true });
    if (spec.timeoutMs !== undefined) this.timeoutTimer = setTimeout(() => this.stop('timeout'), spec.timeoutMs);

    this.feedStdin();

    this.done = new Promise<void>((resolve, reject) => {
      this.child.on('exit', () => {
        this.exited = true;
      });
      this.child.on('close', (code, exitSignal) => {
        this.exited = true;
        this.exitSignal = exitSignal;
        clearTimeout(this.killTimer);
        clearTimeout(this.timeoutTimer);
        signal?.removeEventListener('abort', onAbort);
        spec.stdin?.unpipe(this.child.stdin);
        const stderr = spec.redact(this.stderrTail.trim());
        if (stderr) spec.log.debug('restic stderr', { command: spec.command, exitCode: code, stderr: stderr.slice(-2000) });
        const details = { exitCode: code ?? undefined, command: spec.command, stderrTail: stderr };
        if (this.stopReason === 'abort' || this.stopReason === 'consumer') {
          reject(new ResticAbortError(`restic ${spec.command} was cancelled`, details));
        } else if (this.stopReason === 'timeout') {
          reject(
            new ResticUnreachableError(
              `no answer from the repository at ${spec.displayUri} within ${Math.round((spec.timeoutMs ?? 0) / 1000)} s`,
              details,
            ),
          );
        } else if (this.stopReason === 'source') {
          reject(this.sourceError);
        } else if (this.stopReason === 'vanished' && this.vanished) {
          reject(new ResticVanishedFileError(`restic ${spec.command} met ${vanishedFileWords[this.vanished.type]} ${this.vanished.id} of ${spec.displayUri} that another restic had just removed, and was stopped`, details, this.vanished));
        } else if (spawnError) {
          reject(new ResticError(`cannot start restic (${spec.binary}): ${spec.redact(spawnError.message)}`, { ...details, cause: spawnError }));
        } else if (code === 0) {
          resolve();
        } else {
          // A helper's log that cannot be read adds nothing; restic's own stderr still classifies.
          void (spec.diagnostics?.() ?? Promise.resolve('')).catch(() => '').then((extra) => {
            const all = extra.trim() ? spec.redact(`${extra.trim()}\n${this.stderrTail.trim()}`.slice(-STDERR_TAIL)) : stderr;
            reject(classifyResticFailure({ exitCode: code ?? undefined, stderr: all, command: spec.command, displayUri: spec.displayUri }));
          });
        }
      });
    });
    if (signal?.aborted) this.stop('abort');
  }

  private feedStdin(): void {
    const source = this.spec.stdin;
    // EPIPE when restic exits before reading everything: its exit code tells what happened.
    this.child.stdin.on('error', () => {});
    if (!source) {
      this.child.stdin.end();
      return;
    }
    source.on('error', (err) => {
      this.sourceError = err;
      // Interrupt before anything could end restic's stdin: a clean EOF would commit a short snapshot.
      this.stop('source');
    });
    // A source destroyed before restic started (its error already emitted) will never end: interrupt.
    if (source.destroyed && !source.readableEnded) {
      this.sourceError = source.errored ?? new Error('the input was closed before restic started');
      this.stop('source');
      return;
    }
    // pipe() ends restic's stdin only on the source's 'end', never on its error or destroy.
    source.pipe(this.child.stdin);
    // Counted from the same tick as pipe(): a 'data' listener attached earlier would start the
    // flow before restic could receive it.
    source.on('data', (chunk: Buffer | string) => {
      this.bytesFed += chunk.length;
    });
  }

  /** Interrupts restic (SIGINT lets it remove its lock and write nothing), then kills its group. */
  stop(reason: StopReason): void {
    if (this.exited || this.stopReason) return;
    this.stopReason = reason;
    const pid = this.child.pid;
    if (pid === undefined) return;
    this.spec.stdin?.unpipe(this.child.stdin);
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      // already gone
    }
    this.killTimer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, this.spec.killGraceMs ?? 5_000);
  }

  /**
   * Whether restic may have left its lock in the repository: it was interrupted by us, or killed
   * by any signal (OOM, SIGKILL). On SIGINT restic 0.14 removes the locks it has registered, but it
   * registers a new lock only after writing it and sleeping 200 ms (restic's lock.go, newLock): an
   * interrupt in that window exits with the lock file left (11 of 40 interrupts in one try here).
   * A timeout is not counted: the repository did not answer, so an unlock would not get through.
   */
  mayHaveLeftLock(): boolean {
    if (!this.exited || this.stopReason === 'timeout') return false;
    return this.stopReason !== undefined || this.exitSignal !== null;
  }

  /** What restic wrote to stderr (its tail, redacted): warnings of a run that exited 0. */
  stderr(): string {
    return this.spec.redact(this.stderrTail.trim());
  }

  /** Resolves when restic exited 0; rejects with a named, redacted error otherwise. */
  wait(): Promise<void> {
    return this.done;
  }
}

/** Calls `onLine` for each stdout line (without the newline) as restic writes it. */
export function readLines(stream: Readable, onLine: (line: string) => void): void {
  const decoder = new StringDecoder('utf8');
  let buffer = '';
  stream.on('data', (chunk: Buffer) => {
    buffer += decoder.write(chunk);
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim()) onLine(line);
    }
    // No restic line is this long (a listing of ~100k snapshots); drop garbage rather than grow.
    if (buffer.length > MAX_LINE) buffer = '';
  });
  stream.on('end', () => {
    buffer += decoder.end();
    if (buffer.trim()) onLine(buffer);
  });
}

/** Parses the lines that are JSON; restic mixes text into some --json outputs (forget --prune, 0.14 init). */
export function jsonLines(lines: string[]): unknown[] {
  const out: unknown[] = [];
  for (const line of lines) {
    const t = line.trim();
    if (!t.startsWith('{') && !t.startsWith('[') && t !== 'null') continue;
    try {
      out.push(JSON.parse(t));
    } catch {
      // a text line that happens to start with a bracket
    }
  }
  return out;
}
