// Load benchmark (`npm run bench:load`; not part of `npm test`): the compiled server on a simulated
// cluster, loopback only, bounded in count and time. 200 GraphQL clients poll instances, apps and
// backups (backups answered from the snapshot cache) while 500 subscribers (graphql-ws, a share over
// SSE) follow running backups through `subscription { operation(id) }`, one backup after another.
//
// Measured: query latency p50/p99 (client side), event delivery delay p99 (Operation.updatedAt, the
// server's publish time, against the time the subscriber parsed the event; same clock), whether
// every subscriber got every terminal event, the server's peak RSS (/proc VmHWM and a 100 ms
// sampler). The clients run in two worker threads (queries, subscribers) so that neither the
// simulated cluster (in the main thread) nor the other kind of client delays what they measure.
// Each client connects from its own loopback address (127.0.0.2...), as separate machines would.
//
// Usage: npm run bench:load -- [--clients 200] [--subscribers 500] [--sse-share 0.1] [--seconds 20]
//        [--runs 3] [--think-ms 250] [--quick] [--tsx] [--keep] [--out FILE] [--cpu-prof DIR]
//        [--no-backups]  (with --subscribers 0: queries alone, e.g. --think-ms 0 for the server's capacity)
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';

const INSTANCE = 'test';
const FOLLOWED_APP = 'immich';
const TARGETS = { queryP99Ms: 100, rssMB: 300 };
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

const QUERIES = {
  instances: `{ instances { name hasKubeconfig problems { file path message } } }`,
  apps: `query($i: String!) { instance(name: $i) { apps { name version description databases { engine databaseName included reason } problems { message } } } }`,
  backups: `query($i: String!) { instance(name: $i) { backups(first: 20) { totalCount edges { node { id backupId appName kind status createdAt sizeBytes addedBytes reason artifacts { kind name sizeBytes } } } } } }`,
} as const;
const OPERATION_SUB = `subscription($id: ID!) { operation(id: $id) { status updatedAt progress { phase percent bytesDone } } }`;

/** The i-th client's own loopback address (127.0.0.2 ... 127.0.255.254). */
const localAddressOf = (i: number): string => `127.0.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// =============================================================================================
// Worker: query clients. Each client: its own keep-alive connection and address, one query at a
// time (instances, apps, backups in turn), then a random pause of 0..2×think ms.

interface QueryWorkerData { role: 'queries'; url: string; token: string; clients: number; thinkMs: number }
interface QueryReport { latencies: Record<keyof typeof QUERIES, number[]>; errors: string[]; statuses: Record<string, number>; slow: Array<[number, number]> }

async function queryWorker(d: QueryWorkerData): Promise<void> {
  const url = new URL(d.url);
  let running = false;
  const newReport = (): QueryReport => ({ latencies: { instances: [], apps: [], backups: [] }, errors: [], statuses: {}, slow: [] });
  const epoch = performance.timeOrigin;
  const names = Object.keys(QUERIES) as Array<keyof typeof QUERIES>;
  const one = (agent: http.Agent, localAddress: string, body: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = http.request({
        host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, localAddress,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${d.token}`, 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  // Every client connects first and sends one untimed query (its connection set up, this thread's
  // code warmed up); the timed runs start when all are connected.
  const agents = Array.from({ length: d.clients }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const firstMs = await Promise.all(agents.map(async (agent, i) => {
    const t0 = performance.now();
    await one(agent, localAddressOf(i), JSON.stringify({ query: QUERIES.instances, variables: { i: INSTANCE } }));
    return performance.now() - t0;
  }));
  parentPort!.postMessage({ connected: firstMs });
  let report = newReport();
  const client = async (i: number): Promise<void> => {
    const agent = agents[i]!;
    const localAddress = localAddressOf(i);
    await new Promise((r) => setTimeout(r, Math.random() * d.thinkMs * 2)); // spread the start
    for (let n = i; running; n++) {
      const name = names[n % names.length]!;
      const body = JSON.stringify({ query: QUERIES[name], variables: { i: INSTANCE } });
      const t0 = performance.now();
      try {
        const r = await one(agent, localAddress, body);
        const ms = performance.now() - t0;
        if (ms > 100) report.slow.push([epoch + t0, ms]); // when (epoch ms) and how long: the slow ones, for the timeline
        report.statuses[r.status] = (report.statuses[r.status] ?? 0) + 1;
        const parsed = JSON.parse(r.text) as { errors?: Array<{ message: string }> };
        if (r.status !== 200 || parsed.errors) { if (report.errors.length < 20) report.errors.push(`${name}: ${r.status} ${r.text.slice(0, 200)}`); } else report.latencies[name].push(ms);
      } catch (err) {
        if (report.errors.length < 20) report.errors.push(`${name}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, Math.random() * d.thinkMs * 2));
    }
  };
  let loops: Promise<void[]> | undefined;
  parentPort!.on('message', (m: { start?: boolean; stop?: boolean; close?: boolean }) => {
    if (m.start) { running = true; report = newReport(); loops = Promise.all(agents.map((_, i) => client(i))); }
    if (m.stop) { running = false; void loops!.then(() => parentPort!.postMessage({ done: report })); }
    if (m.close) for (const a of agents) a.destroy();
  });
}

// =============================================================================================
// Worker: subscribers. `ws` of them keep a graphql-ws connection open for the whole run; `sse` of
// them open one text/event-stream request per followed operation. On {follow: id} every one of
// them subscribes to operation(id) and reports what it got when all have completed.

interface SubWorkerData { role: 'subscribers'; url: string; token: string; ws: number; sse: number; clientOffset: number }
interface FollowReport { id: string; subscribers: number; gotTerminal: number; completed: number; events: number; delaysMs: number[]; errors: string[]; terminalStatus: string | null }

async function subscriberWorker(d: SubWorkerData): Promise<void> {
  const wsUrl = d.url.replace(/^http/, 'ws');
  const clients: Client[] = [];
  for (let i = 0; i < d.ws; i++) {
    const localAddress = localAddressOf(d.clientOffset + i);
    const Impl = class extends WebSocket { constructor(u: string, p?: string | string[]) { super(u, p, { localAddress }); } };
    const c = createClient({ url: wsUrl, webSocketImpl: Impl, connectionParams: { authorization: `Bearer ${d.token}` }, lazy: false, retryAttempts: 0, keepAlive: 10_000 });
    clients.push(c);
  }
  // Wait until every socket is connected (a trivial query on each).
  await Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => {
    c.subscribe({ query: '{ __typename }' }, { next: () => undefined, error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))), complete: resolve });
  })));
  parentPort!.postMessage({ ready: true });

  type One = { terminal: boolean; completed: boolean; events: number; delays: number[]; error: string | null; status: string | null };
  const record = (o: One, payload: { data?: { operation?: { status: string; updatedAt: string } }; errors?: unknown[] }, first: boolean): void => {
    const now = Date.now();
    const op = payload.data?.operation;
    if (!op) { o.error ??= JSON.stringify(payload.errors ?? payload).slice(0, 200); return; }
    o.events++;
    // The first message is the current state (possibly old): not a pushed event.
    if (!first) o.delays.push(now - Date.parse(op.updatedAt));
    o.status = op.status;
    if (TERMINAL.has(op.status)) o.terminal = true;
  };
  const followWs = (c: Client, id: string): Promise<One> => new Promise((resolve) => {
    const o: One = { terminal: false, completed: false, events: 0, delays: [], error: null, status: null };
    c.subscribe<{ operation: { status: string; updatedAt: string } }>({ query: OPERATION_SUB, variables: { id } }, {
      next: (r) => record(o, r as never, o.events === 0),
      error: (e) => { o.error = (e instanceof Error ? e.message : JSON.stringify(e)).slice(0, 200); resolve(o); },
      complete: () => { o.completed = true; resolve(o); },
    });
  });
  const followSse = (i: number, id: string): Promise<One> => new Promise((resolve) => {
    const o: One = { terminal: false, completed: false, events: 0, delays: [], error: null, status: null };
    const u = new URL(d.url);
    const body = JSON.stringify({ query: OPERATION_SUB, variables: { id } });
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', localAddress: localAddressOf(d.clientOffset + d.ws + i),
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${d.token}`, 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      if (res.statusCode !== 200) { o.error = `HTTP ${res.statusCode}`; res.resume(); resolve(o); return; }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, k);
          buf = buf.slice(k + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event === 'next' && data) record(o, JSON.parse(data) as never, o.events === 0);
          if (event === 'complete') o.completed = true;
        }
      });
      res.on('end', () => resolve(o));
      res.on('error', (e) => { o.error = e.message; resolve(o); });
    });
    req.on('error', (e) => { o.error = e.message; resolve(o); });
    req.end(body);
  });

  parentPort!.on('message', (m: { follow?: string; stop?: boolean }) => {
    if (m.stop) {
      void Promise.all(clients.map((c) => c.dispose())).then(() => parentPort!.postMessage({ stopped: true }));
      return;
    }
    const id = m.follow!;
    const all = [...clients.map((c) => followWs(c, id)), ...Array.from({ length: d.sse }, (_, i) => followSse(i, id))];
    void Promise.all(all).then((got) => {
      const rep: FollowReport = {
        id, subscribers: got.length, gotTerminal: got.filter((o) => o.terminal).length, completed: got.filter((o) => o.completed).length,
        events: got.reduce((n, o) => n + o.events, 0), delaysMs: got.flatMap((o) => o.delays),
        errors: [...new Set(got.map((o) => o.error).filter((e): e is string => !!e))].slice(0, 10),
        terminalStatus: got.find((o) => o.terminal)?.status ?? null,
      };
      parentPort!.postMessage({ followed: rep });
    });
  });
}

if (!isMainThread) {
  const d = workerData as QueryWorkerData | SubWorkerData;
  await (d.role === 'queries' ? queryWorker(d) : subscriberWorker(d));
} else {
  await main();
}

// =============================================================================================
// Main thread: the cluster, the server, the runs, the report.

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      clients: { type: 'string' }, subscribers: { type: 'string' }, 'sse-share': { type: 'string', default: '0.1' },
      seconds: { type: 'string' }, runs: { type: 'string' }, 'think-ms': { type: 'string', default: '250' },
      quick: { type: 'boolean', default: false }, tsx: { type: 'boolean', default: false }, keep: { type: 'boolean', default: false },
      out: { type: 'string' }, 'cpu-prof': { type: 'string' }, 'no-backups': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (flags.help) {
    console.log('usage: npm run bench:load -- [--clients 200] [--subscribers 500] [--sse-share 0.1] [--seconds 20] [--runs 3] [--think-ms 250] [--quick] [--tsx] [--keep] [--out FILE]');
    return;
  }
  const { startSimCluster } = await import('../src/sim/fixture.js');
  const { cpuTimes, loadAverage, machineBusySeconds, median, sampleMemory } = await import('./lib-proc.js');
  const { configureRepository, backupApp, serverArgv, serverMode, startServer } = await import('./lib-server.js');

  const CLIENTS = Number(flags.clients ?? (flags.quick ? 20 : 200));
  const SUBSCRIBERS = Number(flags.subscribers ?? (flags.quick ? 50 : 500));
  const SSE = Math.round(SUBSCRIBERS * Number(flags['sse-share']));
  const SECONDS = Number(flags.seconds ?? (flags.quick ? 8 : 20));
  const RUNS = Number(flags.runs ?? (flags.quick ? 1 : 3));
  const THINK = Number(flags['think-ms']);
  const OUT = flags.out ?? (flags.quick ? undefined : 'docs/benchmarks/load.md');
  const MODE = serverMode({ tsx: flags.tsx! });
  const TOKEN = 'bench-load-admin-token-0123456789abcdef';
  const RO_TOKEN = `${TOKEN}-ro`; // what lib-server's startServer gives the server
  const t00 = performance.now();
  const say = (s: string): void => console.log(`[${((performance.now() - t00) / 1000).toFixed(0).padStart(4)} s] ${s}`);

  const root = mkdtempSync(path.join(os.tmpdir(), 'wild-bench-load-'));
  chmodSync(root, 0o755); // the sim's PostgreSQL runs as the postgres user
  mkdirSync(path.join(root, 'repos'));
  say(`load benchmark: ${CLIENTS} query clients (think 0-${2 * THINK} ms), ${SUBSCRIBERS} subscribers (${SUBSCRIBERS - SSE} graphql-ws, ${SSE} SSE), ${RUNS} × ${SECONDS} s; server: ${MODE}`);
  const sim = await startSimCluster({ dir: path.join(root, 'sim'), instance: INSTANCE, apps: ['gitea', 'immich', 'ghost', 'website'], databases: ['postgres', 'mysql'] });
  const server = await startServer({ dataDir: sim.dataDir, token: TOKEN, mode: MODE, argv: [...(flags['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(flags['cpu-prof'])}`] : []), ...serverArgv(MODE, root)], logFile: path.join(root, 'server.log') });
  const workers: Worker[] = [];
  try {
    say(`server pid ${server.pid} at ${server.url}; repository and the first backups`);
    await configureRepository(server, INSTANCE, path.join(root, 'repos', 'r1'), 'bench-load-password');
    for (const app of ['gitea', 'ghost', 'website', 'immich']) {
      const op = await backupApp(server, INSTANCE, app);
      if (op.status !== 'SUCCEEDED') throw new Error(`backup of ${app}: ${JSON.stringify(op.error)}`);
    }
    const warm = await server.gql<{ instance: { backups: { totalCount: number } } }>(QUERIES.backups, { i: INSTANCE });
    say(`${warm.instance.backups.totalCount} backups exist`);
    const startRssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? 0);

    const subs = startWorker({ role: 'subscribers', url: server.url, token: RO_TOKEN, ws: SUBSCRIBERS - SSE, sse: SSE, clientOffset: CLIENTS } satisfies SubWorkerData);
    workers.push(subs);
    const subMessages: Array<Record<string, unknown>> = [];
    const waiters: Array<() => void> = [];
    subs.on('message', (m: Record<string, unknown>) => { subMessages.push(m); for (const w of waiters.splice(0)) w(); });
    const nextSub = async <K extends string>(key: K): Promise<Record<K, unknown>> => {
      for (;;) {
        const i = subMessages.findIndex((m) => key in m);
        if (i >= 0) return subMessages.splice(i, 1)[0] as Record<K, unknown>;
        await new Promise<void>((r) => waiters.push(r));
      }
    };
    await nextSub('ready');
    say(`${SUBSCRIBERS - SSE} graphql-ws connections open`);

    // The query clients connect once, before the runs (their first, untimed, query is reported apart).
    const q = startWorker({ role: 'queries', url: server.url, token: RO_TOKEN, clients: CLIENTS, thinkMs: THINK } satisfies QueryWorkerData);
    workers.push(q);
    const firstMs = await new Promise<number[]>((resolve, reject) => {
      q.on('message', (m: { connected?: number[] }) => m.connected && resolve(m.connected));
      q.once('error', reject);
    });
    say(`${CLIENTS} query clients connected; their first query (connection included) p50 ${percentile(firstMs, 50).toFixed(0)} ms, max ${Math.max(...firstMs).toFixed(0)} ms`);

    interface RunResult {
      queries: QueryReport; follows: FollowReport[]; seconds: number; load: [number, number];
      serverCpuS: number; rssPeakKiB: number; hwmKiB: number;
      /** CPU seconds of the run: the whole machine, our restic (the server's reaped children), this process (load generator and simulated cluster API). */
      machineCpuS: number; resticCpuS: number; benchCpuS: number;
    }
    const runs: RunResult[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const load0 = loadAverage();
      const server0 = cpuTimes(server.pid), bench0 = process.cpuUsage(), machine0 = machineBusySeconds();
      const mem = sampleMemory(server.pid, 100, false);
      const qDone = new Promise<QueryReport>((resolve, reject) => {
        const on = (m: { done?: QueryReport }): void => { if (m.done) { q.off('message', on); resolve(m.done); } };
        q.on('message', on);
        q.once('error', reject);
      });
      q.postMessage({ start: true });
      const t0 = performance.now();
      const follows: FollowReport[] = [];
      const marks: Array<[number, number]> = []; // each followed backup: [start, all subscribers done] (epoch ms)
      // Backups of one app, one after another, each followed by every subscriber, until the time is up.
      while (performance.now() - t0 < SECONDS * 1000) {
        if (SUBSCRIBERS === 0) { // queries alone: the server's capacity, with or without backups running
          if (flags['no-backups']) await new Promise((r) => setTimeout(r, SECONDS * 1000)); else await backupApp(server, INSTANCE, FOLLOWED_APP);
          continue;
        }
        const res = await server.gql<{ backupApp: { operation?: { operationId: string }; message?: string } }>(
          `mutation($i: String!, $a: String!) { backupApp(input: { instance: $i, app: $a }) { ... on OperationPayload { operation { operationId } } ... on Error { message } } }`,
          { i: INSTANCE, a: FOLLOWED_APP });
        const id = res.backupApp.operation?.operationId;
        if (!id) throw new Error(`backupApp: ${JSON.stringify(res)}`);
        const followStart = performance.timeOrigin + performance.now();
        subs.postMessage({ follow: id });
        const rep = (await nextSub('followed')).followed as FollowReport;
        follows.push(rep);
        marks.push([followStart, performance.timeOrigin + performance.now()]);
      }
      q.postMessage({ stop: true });
      const queries = await qDone;
      const seconds = (performance.now() - t0) / 1000;
      const m = mem.stop();
      const server1 = cpuTimes(server.pid);
      runs.push({ queries, follows, seconds, load: [load0, loadAverage()], serverCpuS: server1.self - server0.self, rssPeakKiB: m.sampledPeakKiB, hwmKiB: m.vmHwmKiB,
        machineCpuS: machineBusySeconds() - machine0, resticCpuS: server1.children - server0.children, benchCpuS: ((u) => (u.user + u.system) / 1e6)(process.cpuUsage(bench0)) });
      const all = Object.values(queries.latencies).flat();
      const delays = follows.flatMap((f) => f.delaysMs);
      say(`run ${run}: ${all.length} queries in ${seconds.toFixed(1)} s (${(all.length / seconds).toFixed(0)}/s), p50 ${percentile(all, 50).toFixed(1)} ms, p99 ${percentile(all, 99).toFixed(1)} ms, ` +
        `${queries.errors.length} errors; ${follows.length} backups followed, terminal ${follows.map((f) => `${f.gotTerminal}/${f.subscribers}`).join(' ')}, ` +
        `delivery p50 ${percentile(delays, 50).toFixed(0)} ms p99 ${percentile(delays, 99).toFixed(0)} ms; RSS peak ${(m.vmHwmKiB / 1024).toFixed(1)} MiB; load ${load0.toFixed(2)} → ${loadAverage().toFixed(2)}`);
      for (const e of queries.errors.slice(0, 5)) say(`  query error: ${e}`);
      // When the slow queries started, in 500 ms buckets from the run's start, beside the followed backups.
      const base = performance.timeOrigin + t0;
      const buckets = new Map<number, number[]>();
      for (const [at, ms] of queries.slow) { const b = Math.floor((at - base) / 500); buckets.set(b, [...(buckets.get(b) ?? []), ms]); }
      say(`  followed backups (s from the run's start): ${marks.map(([a, b]) => `${((a - base) / 1000).toFixed(1)}-${((b - base) / 1000).toFixed(1)}`).join(', ')}`);
      say(`  queries over 100 ms, by start time: ${[...buckets].sort((a, b) => a[0] - b[0]).map(([b, xs]) => `${(b / 2).toFixed(1)}s:${xs.length}×≤${Math.max(...xs).toFixed(0)}`).join(' ') || 'none'}`);
      for (const f of follows) for (const e of f.errors.slice(0, 3)) say(`  subscriber error (${f.id}): ${e}`);
    }
    subs.postMessage({ stop: true });
    await nextSub('stopped');
    q.postMessage({ close: true });

    // ------------------------------------------------------------------------------------------
    const per = runs.map((r) => {
      const all = Object.values(r.queries.latencies).flat();
      const delays = r.follows.flatMap((f) => f.delaysMs);
      return {
        queries: all.length, qps: all.length / r.seconds, p50: percentile(all, 50), p99: percentile(all, 99),
        byName: Object.fromEntries(Object.entries(r.queries.latencies).map(([k, v]) => [k, { n: v.length, p50: percentile(v, 50), p99: percentile(v, 99) }])),
        errors: r.queries.errors.length, statuses: r.queries.statuses,
        follows: r.follows.length, subscriptions: r.follows.reduce((n, f) => n + f.subscribers, 0),
        terminal: r.follows.reduce((n, f) => n + f.gotTerminal, 0), completed: r.follows.reduce((n, f) => n + f.completed, 0),
        events: r.follows.reduce((n, f) => n + f.events, 0), statusesOfBackups: r.follows.map((f) => f.terminalStatus),
        d50: percentile(delays, 50), d99: percentile(delays, 99), dmax: Math.max(...delays),
        hwmMB: (r.hwmKiB * 1024) / 1e6, load: r.load, cpu: r.serverCpuS, seconds: r.seconds,
        machine: r.machineCpuS, restic: r.resticCpuS, bench: r.benchCpuS,
      };
    });
    const med = (f: (x: (typeof per)[number]) => number): number => median(per.map(f));
    const everyTerminal = per.every((p) => p.terminal === p.subscriptions && p.completed === p.subscriptions);
    const peakMB = Math.max(...per.map((p) => p.hwmMB));
    const verdict = (ok: boolean): string => (ok ? 'met' : '**missed**');
    const lines = [
      `# Load benchmark (issue 8)`,
      ``,
      `\`npm run bench:load${process.argv.slice(2).length ? ' -- ' + process.argv.slice(2).join(' ') : ''}\` — ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, commit ${gitCommit()}, server as \`${server.command.replace(/--data \S+/, '--data <sim data dir>')}\` (${MODE}).`,
      ``,
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}; shared with other work: load average (1 min) ${per.map((p) => `${p.load[0].toFixed(2)} → ${p.load[1].toFixed(2)}`).join(', ')} over the runs.`,
      ``,
      `Setup: the simulated cluster (gitea, immich, ghost, website; real PostgreSQL and MariaDB) in the benchmark's main thread; the server in its own process; ${CLIENTS} query clients and ${SUBSCRIBERS} subscribers (${SUBSCRIBERS - SSE} graphql-ws connections, ${SSE} SSE requests per followed backup) in two worker threads, each client from its own loopback address, all with the read-only token. The query clients connect before the runs (each sends one untimed query first; its latency, connection included, is given apart below); then each sends \`instances\`, \`apps\` and \`backups(first: 20)\` in turn, one at a time, pausing 0-${2 * THINK} ms between them. Meanwhile \`backupApp(${FOLLOWED_APP})\` runs back to back for ${SECONDS} s and every subscriber follows each one with \`subscription { operation(id) { status updatedAt progress { ... } } }\` to its end. Delivery delay = the time the subscriber parsed an event − \`Operation.updatedAt\` (the server's publish time; same clock), the first message (the current state) excluded. ${RUNS} run(s); figures are medians of the runs.`,
      ``,
      `| measure | median of ${RUNS} | runs | target |`,
      `|---|---|---|---|`,
      `| query latency p50 | ${med((p) => p.p50).toFixed(1)} ms | ${per.map((p) => p.p50.toFixed(1)).join(', ')} | |`,
      `| query latency p99 | **${med((p) => p.p99).toFixed(1)} ms** | ${per.map((p) => p.p99.toFixed(1)).join(', ')} | < ${TARGETS.queryP99Ms} ms: ${verdict(med((p) => p.p99) < TARGETS.queryP99Ms)} |`,
      `| queries answered / s | ${med((p) => p.qps).toFixed(0)} | ${per.map((p) => p.qps.toFixed(0)).join(', ')} | |`,
      `| query errors | ${per.reduce((n, p) => n + p.errors, 0)} | ${per.map((p) => p.errors).join(', ')} | 0 |`,
      `| event delivery delay p50 | ${med((p) => p.d50).toFixed(0)} ms | ${per.map((p) => p.d50.toFixed(0)).join(', ')} | |`,
      `| event delivery delay p99 | **${med((p) => p.d99).toFixed(0)} ms** | ${per.map((p) => p.d99.toFixed(0)).join(', ')} (max ${per.map((p) => p.dmax.toFixed(0)).join(', ')}) | |`,
      `| backups followed (each by all ${SUBSCRIBERS}) | ${med((p) => p.follows)} | ${per.map((p) => `${p.follows} (${[...new Set(p.statusesOfBackups)].join('/')})`).join(', ')} | |`,
      `| subscriptions that got the terminal event and completed | ${per.map((p) => `${p.terminal}/${p.subscriptions}`).join(', ')} | ${per.map((p) => `${p.events} events`).join(', ')} | all: ${verdict(everyTerminal)} |`,
      `| server peak RSS (VmHWM, since start) | **${peakMB.toFixed(0)} MB** (${(peakMB * 1e6 / 2 ** 20).toFixed(0)} MiB) | ${per.map((p) => p.hwmMB.toFixed(0)).join(', ')}; ${(startRssKiB / 1024).toFixed(0)} MiB before the load | < ${TARGETS.rssMB} MB: ${verdict(peakMB < TARGETS.rssMB)} |`,
      `| server CPU | ${med((p) => p.cpu / p.seconds * 100).toFixed(0)} % of one core | ${per.map((p) => `${p.cpu.toFixed(1)} s in ${p.seconds.toFixed(1)} s`).join(', ')} | |`,
      `| the machine's CPU (${os.cpus().length} cores) | ${med((p) => p.machine / p.seconds * 100).toFixed(0)} % of one core | ${per.map((p) => `${(p.machine / p.seconds * 100).toFixed(0)} %: server ${(p.cpu / p.seconds * 100).toFixed(0)}, restic ${(p.restic / p.seconds * 100).toFixed(0)}, load generator + simulated cluster process ${(p.bench / p.seconds * 100).toFixed(0)}, the rest (PostgreSQL, MariaDB, pod commands, others) ${((p.machine - p.cpu - p.restic - p.bench) / p.seconds * 100).toFixed(0)}`).join('; ')} | |`,
      `| server CPU per query (all its work ÷ queries answered) | ${med((p) => p.cpu / p.queries * 1000).toFixed(2)} ms | ${per.map((p) => (p.cpu / p.queries * 1000).toFixed(2)).join(', ')} | |`,
      ``,
      `First query of each client before the runs (connection set-up included, untimed in the runs): p50 ${percentile(firstMs, 50).toFixed(0)} ms, p99 ${percentile(firstMs, 99).toFixed(0)} ms, max ${Math.max(...firstMs).toFixed(0)} ms.`,
      ``,
      `Per query (median of the runs' p50 / p99): ${(Object.keys(QUERIES) as Array<keyof typeof QUERIES>).map((k) => `${k} ${median(per.map((p) => p.byName[k]!.p50)).toFixed(1)} / ${median(per.map((p) => p.byName[k]!.p99)).toFixed(1)} ms`).join('; ')}.`,
      ``,
    ];
    const text = lines.join('\n');
    console.log('\n' + text);
    if (OUT) {
      const existing = (() => { try { return readFileSync(OUT, 'utf8'); } catch { return ''; } })();
      const notes = existing.indexOf('\n## ');
      writeFileSync(OUT, text + (notes >= 0 ? existing.slice(notes) : ''));
      say(`written to ${OUT} (sections from "## " on kept)`);
    }
  } finally {
    for (const w of workers) void w.terminate();
    await server.stop();
    await sim.stop();
    if (!flags.keep) rmSync(root, { recursive: true, force: true });
    else say(`kept ${root}`);
  }
  say('done');
}

/** This file in a worker thread; tsx is registered there first (Node 20 workers do not inherit `--import tsx`). */
function startWorker(data: QueryWorkerData | SubWorkerData): Worker {
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}

function gitCommit(): string {
  try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return '?'; }
}
