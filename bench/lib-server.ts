// The Wild Backup server as its own process for the benchmark (so its memory is its own), and a
// small GraphQL client over HTTP with the admin token: configure, init, back up, wait.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createWriteStream, existsSync, symlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { SERVER_NODE_FLAGS } from '../src/util/heap.js';

export type ServerMode = 'dist' | 'bundle' | 'tsx';

export interface ServerProcess {
  pid: number;
  url: string;
  mode: ServerMode;
  command: string;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<T>;
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
  /** Wall time from sending the mutation to seeing the operation finished (polled every 100 ms), ms. */
  clientMs: number;
  /** progress.phase as polled, with when it was first seen (ms after the mutation was sent). */
  phases: Array<{ phase: string; atMs: number }>;
}

/** Sends a mutation answering an OperationPayload and polls operation(id) every 100 ms until it ends. */
export async function runOperation(s: ServerProcess, mutation: string, variables: Record<string, unknown> = {}): Promise<OperationDone> {
  const t0 = performance.now();
  const res = await s.gql<Record<string, { __typename: string; operation?: { operationId: string }; code?: string; message?: string }>>(mutation.replace('%PAYLOAD%', PAYLOAD), variables);
  const payload = Object.values(res)[0];
  if (!payload?.operation) throw new Error(`no operation: ${JSON.stringify(res)}`);
  const id = payload.operation.operationId;
  const phases: OperationDone['phases'] = [];
  for (;;) {
    const r = await s.gql<{ operation: (Omit<OperationDone, 'clientMs' | 'operationId' | 'phases'> & { progress: { phase: string } }) | null }>(
      `query($id: ID!) { operation(id: $id) { status createdAt startedAt finishedAt backupId message error { code message } log(last: 40) progress { phase } } }`, { id });
    const op = r.operation;
    const at = performance.now() - t0;
    if (op && phases[phases.length - 1]?.phase !== op.progress.phase) phases.push({ phase: op.progress.phase, atMs: at });
    if (op && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(op.status)) {
      const { progress: _p, ...rest } = op;
      return { ...rest, operationId: id, clientMs: at, phases };
    }
    await new Promise((res2) => setTimeout(res2, 100));
  }
}

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
