// Setup file of every test worker: wires each channel of the secret-leak watch (test/helpers/leaks.ts)
// and fails a test file in which a registered secret was seen.
//   responses       every HTTP response Wild Backup writes on a port (/graphql incl. SSE, /metrics,
//                   /healthz); in-process yoga.fetch answers are scanned by the app helpers
//   subscriptions   every graphql-ws message a server-side WebSocket sends
//   logs            every logger line at every level (observeLogLines), every stdout/stderr write
//   records         every operation record saved and every operation log line appended
//   argv            every process this worker spawns (here) and every descendant (the sampler)
//   registration    every value the product puts in a SecretSet, every secret field of a GraphQL
//                   request a test sends (fetch, graphql-ws), besides the fixtures' own
import { ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import { relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import WebSocket from 'ws';
import { OperationStore } from '../../src/engine/operations/store.js';
import { observeLogLines } from '../../src/util/log.js';
import { SecretSet } from '../../src/util/redact.js';
import { leakState, observe, registerSecret, registerSecretsFromGraphQL } from '../helpers/leaks.js';
import { formatFindings, readJsonLines, runFile, type LeakChannel, type LeakFinding } from './leak-run.js';

const state = leakState();
const MAX_TEXT = 1 << 20;

function text(chunk: unknown): string | null {
  if (typeof chunk === 'string') return chunk.length <= MAX_TEXT ? chunk : null;
  if (chunk instanceof Uint8Array && chunk.byteLength <= MAX_TEXT) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
  return null;
}

/** Patches of Node built-ins and external packages: once per worker process (they outlive a file). */
function installProcessHooks(): void {
  if (state.installed.has('process')) return;
  state.installed.add('process');

  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const t = text(chunk);
      if (t !== null) observe('log', t);
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }

  // Every spawn, exec, execFile and fork of this process goes through ChildProcess#spawn.
  const proto = ChildProcess.prototype as unknown as { spawn(options: { file?: string; args?: string[] }): unknown };
  const spawn = proto.spawn;
  proto.spawn = function (this: ChildProcess, options) {
    observe('argv', (options?.args ?? [options?.file ?? '']).join(' '));
    return spawn.call(this, options);
  };

  // Wild Backup's endpoints only: the simulated API server and storage emulators share this process.
  const watched = (res: http.ServerResponse): 'response' | 'subscription' | null => {
    const url = res.req?.url ?? '';
    if (!/^\/(graphql|metrics|healthz)(\/|\?|$)/.test(url)) return null;
    const type = String(res.getHeader('content-type') ?? '');
    if (/javascript|css|image|font|wasm/.test(type)) return null;
    return type.includes('event-stream') ? 'subscription' : 'response';
  };
  const rproto = http.ServerResponse.prototype as unknown as { write(...a: unknown[]): boolean; end(...a: unknown[]): unknown };
  const write = rproto.write;
  rproto.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
    const channel = watched(this);
    const t = channel && text(chunk);
    if (channel && t) observe(channel, t);
    return write.call(this, chunk, ...rest);
  };
  const end = rproto.end;
  rproto.end = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
    const channel = typeof chunk === 'function' ? null : watched(this);
    const t = channel && text(chunk);
    if (channel && t) observe(channel, t);
    return end.call(this, chunk, ...rest);
  };

  // graphql-ws: what the server sends is watched; what a test's client sends registers its secrets.
  const wproto = WebSocket.prototype as unknown as { send(data: unknown, ...rest: unknown[]): void; _isServer?: boolean };
  const send = wproto.send;
  wproto.send = function (this: typeof wproto, data: unknown, ...rest: unknown[]) {
    if (typeof data === 'string') {
      if (this._isServer) observe('subscription', data);
      else if (data.includes('"subscribe"')) {
        try {
          const msg = JSON.parse(data) as { type?: string; payload?: { query?: unknown; variables?: unknown } };
          if (msg.type === 'subscribe') registerSecretsFromGraphQL(msg.payload?.query, msg.payload?.variables);
        } catch {
          // not graphql-ws
        }
      }
    }
    return send.call(this, data, ...rest);
  };

  // Requests tests send over a port: the secret fields of their GraphQL bodies are registered, and
  // the answers read (a server in another process, as after a crash, is watched from here only).
  const fetch = globalThis.fetch;
  globalThis.fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const graphql = /\/graphql(\?|$)/.test(url);
    if (graphql && typeof init?.body === 'string') {
      try {
        const body = JSON.parse(init.body) as { query?: unknown; variables?: unknown };
        registerSecretsFromGraphQL(body.query, body.variables);
      } catch {
        // not JSON
      }
    }
    const res = await fetch(input, init);
    if (graphql && /json/.test(res.headers.get('content-type') ?? '')) observe('response', await res.clone().text());
    return res;
  }) as typeof fetch;
}

/** Patches of the product's own modules: once per test file (each file has its module instances). */
function installModuleHooks(): void {
  const proto = SecretSet.prototype as unknown as { add(...v: Array<string | undefined | null>): SecretSet; __leakWatched?: boolean };
  if (!proto.__leakWatched) {
    proto.__leakWatched = true;
    const add = proto.add;
    proto.add = function (this: SecretSet, ...values) {
      registerSecret(...values);
      return add.apply(this, values);
    };
  }
  const store = OperationStore.prototype as OperationStore & { __leakWatched?: boolean };
  if (!store.__leakWatched) {
    store.__leakWatched = true;
    const save = store.save;
    store.save = function (this: OperationStore, rec) {
      observe('operation-record', JSON.stringify(rec));
      return save.call(this, rec);
    };
    const appendLog = store.appendLog;
    store.appendLog = function (this: OperationStore, rec, lines) {
      observe('operation-record', lines.join('\n'));
      return appendLog.call(this, rec, lines);
    };
  }
  const stop = observeLogLines((line) => observe('log', line));
  afterAll(() => { stop(); });
}

installProcessHooks();
installModuleHooks();

let findingsBefore = 0;
let argvLinesBefore = 0;
let observedBefore = { ...state.observed };

beforeAll(() => {
  const file = expect.getState().testPath;
  state.file = file ? relative(process.cwd(), file) : '(unknown file)';
  state.test = '(beforeAll)';
  findingsBefore = state.findings.length;
  observedBefore = { ...state.observed };
  argvLinesBefore = state.runDir ? readJsonLines(runFile(state.runDir, 'findings.jsonl')).length : 0;
});
beforeEach((ctx) => { state.test = ctx.task.name; });
afterEach(() => { state.test = '(afterEach/afterAll)'; });

// Registered first, so it runs last: after the file's own afterAll hooks have stopped its servers.
afterAll(async () => {
  let found: LeakFinding[] = state.findings.slice(findingsBefore);
  if (state.runDir) {
    // The sampler looks at /proc every few tens of milliseconds: give it two looks.
    await sleep(80);
    const argv = readJsonLines<LeakFinding>(runFile(state.runDir, 'findings.jsonl'))
      .slice(argvLinesBefore)
      .filter((f) => f.channel === 'argv' && f.workerPid === process.pid && f.where.startsWith('argv of process'))
      .map((f) => ({ ...f, where: `${state.file}: ${f.where}` }));
    found = found.concat(argv);
  }
  state.test = '(after the file)';
  if (state.runDir) appendFileSync(runFile(state.runDir, 'stats.jsonl'), JSON.stringify({ file: state.file, secrets: state.detector.size, observed: Object.fromEntries(Object.entries(state.observed).map(([k, n]) => [k, n - observedBefore[k as LeakChannel]])) }) + '\n');
  if (found.length) throw new Error(formatFindings(found));
});
