// An artifact source that streams a command's stdout out of a pod (the database and volume
// plugins' common shape): argv only, secrets through stdin, facts for the manifest at the end.
import { createInterface } from 'node:readline';
import type { Duplex, Readable } from 'node:stream';
import { finished as finishedWriting } from 'node:stream/promises';
import { CommandFailedError, execStream, execText, type KubeClient } from '../kube/index.js';
import type { ArtifactSource } from '../engine/backup/source.js';
import type { ArtifactRef } from '../engine/backup/tags.js';

export interface PodTarget {
  namespace: string;
  pod: string;
  container?: string;
}

export interface ExecSourceSpec {
  client: KubeClient;
  target: PodTarget;
  artifact: ArtifactRef;
  extension: string;
  /** argv, or made when the stream opens (e.g. naming a snapshot taken just before). */
  command: string[] | ((signal: AbortSignal) => Promise<string[]>);
  /** Given to the command on stdin (e.g. a password line); never on argv. */
  stdin?: string;
  estimate?: (signal: AbortSignal) => Promise<number | null>;
  /** Facts gathered after the command succeeded (row counts, listing), once the estimate is in (ESTIMATE_WAIT_MS at most). */
  meta?: (signal: AbortSignal) => Promise<Record<string, unknown>>;
  /** Transforms the stream on its way out (e.g. a tar scanner), given the same bytes. */
  through?: () => { transform: Duplex; result: () => Record<string, unknown> };
  /** Called when the stream is done either way (helper pod removal). */
  cleanup?: () => Promise<void>;
  /**
   * A non-zero exit that still leaves a whole stream, and the warnings to record of it (the
   * artifact's `meta.warnings`, logged by the backup); null: a failure, as any other exit.
   */
  acceptExit?: (exitCode: number, stderr: string) => string[] | null;
  /** What a failure means (ExecOptions.explainFailure). */
  explainFailure?: (exitCode: number | null, stderr: string) => string | undefined;
}

/**
 * How long a source's facts wait for its estimate, whose measures they may record (a database's
 * whole size): the streams start while the estimates run, and a small dump can end first. A size
 * query held up (a table's share lock queued behind a migration's) leaves the fact out rather than
 * the backup waiting on it.
 */
const ESTIMATE_WAIT_MS = 20_000;

/** Resolves when `p` settles or after `ms`, whichever is first. */
function settledWithin(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!p) return Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(() => undefined, () => undefined),
    new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); timer.unref(); }),
  ]).finally(() => clearTimeout(timer));
}

export function execSource(spec: ExecSourceSpec): ArtifactSource {
  let estimating: Promise<unknown> | undefined;
  return {
    artifact: spec.artifact,
    extension: spec.extension,
    estimate: (signal) => (spec.estimate ? (estimating = spec.estimate(signal)) : Promise.resolve(null)),
    async open(signal) {
      const stdin = spec.stdin === undefined ? undefined : Buffer.from(spec.stdin);
      let ex;
      // What an accepted non-zero exit leaves to record, read once when the exec decides on it.
      let warnings: string[] = [];
      try {
        const command = typeof spec.command === 'function' ? await spec.command(signal) : spec.command;
        const accept = spec.acceptExit;
        ex = await execStream(spec.client, {
          ...spec.target, command, signal,
          ...(stdin ? { stdin, stdinLength: stdin.length } : {}),
          ...(accept ? {
            acceptExit: (code: number, stderr: string) => {
              const w = accept(code, stderr);
              if (w !== null) warnings = w;
              return w !== null;
            },
          } : {}),
          explainFailure: spec.explainFailure,
        });
      } catch (err) {
        await spec.cleanup?.().catch(() => undefined);
        throw err;
      }
      const through = spec.through?.();
      const stream: Readable = through ? ex.stdout.pipe(through.transform) : ex.stdout;
      if (through) ex.stdout.on('error', (e) => through.transform.destroy(e));
      const ended = (async () => {
        await ex.done;
        // The command has exited, but its last bytes may still be on their way through the
        // transform: its facts are complete only once it has processed all of them.
        if (through) await finishedWriting(through.transform, { readable: false });
      })();
      ended.catch(() => undefined);
      const finished = (async () => {
        try {
          await ended;
          if (spec.meta) await settledWithin(estimating, ESTIMATE_WAIT_MS);
          const facts = spec.meta ? await spec.meta(signal) : {};
          return { ...facts, ...(through ? through.result() : {}), ...(warnings.length > 0 ? { warnings } : {}) };
        } finally {
          await spec.cleanup?.().catch(() => undefined);
        }
      })();
      finished.catch(() => undefined);
      return { stream, finished, ended };
    },
  };
}

/**
 * Streams bytes of known length into a command in a pod (pg_restore, mariadb, tar -x) and resolves
 * when it exited 0. The length bounds stdin where the server only speaks v4 (no close signal);
 * 'ends-itself' for a command that stops reading at its input's own end (tar at its end marker).
 */
export async function streamIntoPod(client: KubeClient, target: PodTarget, command: string[], stdin: import('node:stream').Readable, stdinLength: number | 'ends-itself', signal: AbortSignal): Promise<void> {
  const ex = await execStream(client, { ...target, command, signal, stdin, ...(stdinLength === 'ends-itself' ? { stdinEndsItself: true } : { stdinLength }) });
  for await (const _ of ex.stdout) { /* these commands print nothing we keep */ }
  await ex.done;
}

/** The exec could not start the program: the container's image has none (a distroless one). */
export function programMissing(err: unknown): boolean {
  return err instanceof CommandFailedError && err.exitCode === null && /executable file.* not found|no such file or directory/i.test(err.message);
}

/**
 * Runs a command in a pod and hands each line of its stdout to `onLine` as it comes (a listing of
 * a whole volume, never held whole); resolves when the command exited 0. `stdin`, when given, is
 * read by a command that stops at its own end line (v4 has no close signal).
 */
export async function podLines(client: KubeClient, target: PodTarget, command: string[], onLine: (line: string) => void, signal: AbortSignal, stdin?: Readable): Promise<void> {
  const ex = await execStream(client, { ...target, command, signal, ...(stdin ? { stdin, stdinEndsItself: true } : {}) });
  for await (const line of createInterface({ input: ex.stdout, crlfDelay: Infinity })) onLine(line);
  await ex.done;
}

/** Runs a short command in a pod and returns its trimmed stdout. */
export async function podText(client: KubeClient, target: PodTarget, command: string[], signal?: AbortSignal, stdin?: string): Promise<string> {
  const input = stdin === undefined ? undefined : Buffer.from(stdin);
  const { stdout } = await execText(client, { ...target, command, signal, ...(input ? { stdin: input, stdinLength: input.length } : {}) });
  return stdout.trim();
}
