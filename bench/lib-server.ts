// The Wild Backup server as its own process for the benchmark (so its memory is its own), and a
// small GraphQL client over HTTP with the admin token: configure, init, back up, wait.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createWriteStream, existsSync, symlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { SERVER_NODE_FLAGS } from '../src/util/heap.js';
import { sseMessages } from '../test/helpers/sse-messages.js';

export type ServerMode = 'dist' | 'bundle' | 'tsx';

export interface ServerProcess {
  pid: number;
  url: string;
  mode: ServerMode;
  command: string;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** A subscription over text/event-stream: each event's data, until the server completes it. */
  subscribe<T>(query: string, variables?: Record<string, unknown>): AsyncGenerator<T>;
  stop(): Promise<void>;
}

/**
 * How the server runs: `node dist/main.js` when the project's build exists; else compiled here with
 * esbuild into the work dir (`bundle`: no transpiler in the process, as in production); `tsx` when forced.
 */
export function serverMode(opt: { tsx: boolean }): ServerMode {
  if (opt.tsx) return 'tsx';
  return existsSync('dist/main.js') ? 'dist' : 'bundle';
}

/** The argv (after `node`) that starts the server in `mode`; `bundle` compiles src/main.ts into `workDir` first. */
export function serverArgv(mode: ServerMode, workDir: string): string[] {
  if (mode === 'dist') return [...SERVER_NODE_FLAGS, 'dist/main.js'];
  if (mode === 'tsx') return [...SERVER_NODE_FLAGS, '--import', 'tsx', 'src/main.ts'];
  const esbuild = path.resolve('node_modules/.bin/esbuild');
  const out = path.join(workDir, 'server');
  // Packages stay external (loaded from node_modules as in production).
  execFileSync(esbuild, ['src/main.ts', '--bundle', '--platform=node', '--format=esm', '--packages=external', `--outfile=${out}/main.mjs`, '--log-level=warning']);
  // Packages resolve from the bundle's directory upwards: give it the project's node_modules.
  symlinkSync(path.resolve('node_modules'), path.join(out, 'node_modules'));
  return [...SERVER_NODE_FLAGS, `${out}/main.mjs`];
}

export async function startServer(o: { dataDir: string; token: string; mode: ServerMode; argv: string[]; logFile: string; env?: Record<string, string> }): Promise<ServerProcess> {
  // `node --import tsx` (not the tsx CLI, which runs the server in a child): the pid is the server's.
  const args = [...o.argv, 'serve', '--data', o.dataDir, '--port', '0'];
  const child: ChildProcess = spawn(process.execPath, args, {
    env: { ...process.env, ...o.env, WILD_BACKUP_TOKEN: o.token, WILD_BACKUP_READONLY_TOKEN: `${o.token}-ro` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(o.logFile, { flags: 'a' });
  child.stderr!.pipe(log);
  const url = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`the server did not start in 60 s (log: ${o.logFile})`)), 60_000);
    rl.on('line', (line) => {
      log.write(line + '\n');
      const m = /GraphQL and GraphiQL: (\S+)/.exec(line);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the server exited with ${code} (log: ${o.logFile})`)); });
  });
  const endpoint = url.endsWith('/graphql') ? url : `${url.replace(/\/$/, '')}/graphql`;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    pid: child.pid!,
    url: endpoint,
    mode: o.mode,
    command: `node ${args.join(' ')}`,
    async gql<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${o.token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data?: T; errors?: Array<{ message: string }> };
      if (body.errors?.length || !body.data) throw new Error(`GraphQL: ${JSON.stringify(body.errors ?? body)}`);
      return body.data;
    },
    async *subscribe<T>(query: string, variables?: Record<string, unknown>): AsyncGenerator<T> {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${o.token}` },
        body: JSON.stringify({ query, variables }),
      });
      if (res.status !== 200 || !res.body) throw new Error(`subscription: HTTP ${res.status}`);
      try {
        for await (const msg of sseMessages(res.body as unknown as AsyncIterable<Uint8Array>)) {
          if (msg.event !== 'next') continue;
          const body = JSON.parse(msg.data) as { data?: T; errors?: unknown };
          if (!body.data) throw new Error(`subscription: ${JSON.stringify(body.errors ?? body)}`);
          yield body.data;
        }
      } finally {
        await res.body.cancel().catch(() => undefined);
      }
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
      log.end();
    },
  };
}

const PAYLOAD = `__typename ... on OperationPayload { operation { operationId } } ... on Error { code message }`;

export interface OperationDone {
  operationId: string;
  status: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  backupId: string | null;
  message: string | null;
  error: { code: string; message: string } | null;
  log: string[];
  /** Wall time from sending the mutation to seeing the operation finished (its subscription's event), ms. */
  clientMs: number;
  /** progress.phase as the subscription delivered it, with when it was first seen (ms after the mutation was sent). */
  phases: Array<{ phase: string; atMs: number }>;
}

/**
 * Sends a mutation answering an OperationPayload and follows the operation as a frontend does:
 * the `operation` subscription over text/event-stream (events pushed by the server, a few a
 * second), then one query for the finished record and its log. (Until 2026-11-27 the benchmark
 * polled operation(id) with its log every 100 ms: ~10 queries a second that the server and the
 * benchmark process spent CPU on, charged to "ours" alone.)
 */
export async function runOperation(s: ServerProcess, mutation: string, variables: Record<string, unknown> = {}): Promise<OperationDone> {
  const t0 = performance.now();
  const res = await s.gql<Record<string, { __typename: string; operation?: { operationId: string }; code?: string; message?: string }>>(mutation.replace('%PAYLOAD%', PAYLOAD), variables);
  const payload = Object.values(res)[0];
  if (!payload?.operation) throw new Error(`no operation: ${JSON.stringify(res)}`);
  const id = payload.operation.operationId;
  const phases: OperationDone['phases'] = [];
  let clientMs: number | undefined;
  for await (const data of s.subscribe<{ operation: { status: string; progress: { phase: string } } }>(
    'subscription($id: ID!) { operation(id: $id) { status progress { phase } } }', { id })) {
    const op = data.operation;
    const at = performance.now() - t0;
    if (phases[phases.length - 1]?.phase !== op.progress.phase) phases.push({ phase: op.progress.phase, atMs: at });
    if (TERMINAL.includes(op.status)) { clientMs = at; break; }
  }
  const r = await s.gql<{ operation: Omit<OperationDone, 'clientMs' | 'operationId' | 'phases'> | null }>(
    `query($id: ID!) { operation(id: $id) { status createdAt startedAt finishedAt backupId message error { code message } log(last: 40) } }`, { id });
  if (!r.operation || !TERMINAL.includes(r.operation.status)) throw new Error(`operation ${id} ended its subscription unfinished: ${JSON.stringify(r.operation)}`);
  return { ...r.operation, operationId: id, clientMs: clientMs ?? performance.now() - t0, phases };
}

const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

export async function configureRepository(s: ServerProcess, instance: string, repository: string, password: string): Promise<void> {
  const r = await s.gql<{ updateBackupConfig: { __typename: string; message?: string } }>(
    `mutation($i: UpdateBackupConfigInput!) { updateBackupConfig(input: $i) { __typename ... on Error { message } } }`,
    { i: { instance, config: { repository, password } } });
  if (r.updateBackupConfig.__typename !== 'BackupConfigPayload') throw new Error(`updateBackupConfig: ${JSON.stringify(r)}`);
  const init = await runOperation(s, `mutation($i: String!) { initRepository(input: { instance: $i }) { %PAYLOAD% } }`, { i: instance });
  if (init.status !== 'SUCCEEDED') throw new Error(`initRepository: ${JSON.stringify(init.error)}`);
}

export function backupApp(s: ServerProcess, instance: string, app: string): Promise<OperationDone> {
  return runOperation(s, `mutation($i: String!, $a: String!) { backupApp(input: { instance: $i, app: $a }) { %PAYLOAD% } }`, { i: instance, a: app });
}

/** restoreBackup of `backupId` (Backup.id or its backupId), to SUCCEEDED or not; safetyBackup as given (the server's default: on). */
export function restoreBackup(s: ServerProcess, backupId: string, opts: { safetyBackup?: boolean; components?: string[] } = {}): Promise<OperationDone> {
  const input: Record<string, unknown> = { backupId };
  if (opts.safetyBackup !== undefined) input.safetyBackup = opts.safetyBackup;
  if (opts.components) input.components = opts.components;
  return runOperation(s, `mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { %PAYLOAD% } }`, { input });
}
