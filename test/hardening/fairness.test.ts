// A flood of requests from one client does not starve the others: each client (address + token)
// has a few requests executing at once and a bounded queue behind them; beyond the queue it gets
// 429 + Retry-After (RATE_LIMITED over graphql-ws). The flooder runs in its own process, so only
// the server is shared between it and the client whose latency is measured.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { buildApp, type WildBackupApp } from '../../src/server.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from '../helpers/app.js';
import { tempDataDir, type TempDataDir } from '../helpers/data-dir.js';
import { tickTask } from '../helpers/tasks.js';

/** Expensive but allowed (cost and depth under the limits): every instance, app and database, 20 times. */
const HEAVY = '{ ' + Array.from({ length: 20 }, (_, i) =>
  `a${i}: instances { name problems { message } apps { name version description databases { engine databaseName included reason } problems { file path message } } }`).join(' ') + ' }';
const SIMPLE = '{ instances { name } }';
/** Requests the flooder keeps in flight (each answered one is sent again) while the other client is measured. */
const FLOOD_IN_FLIGHT = 300;
const MEASURE_MS = 6000;
/** While the flood runs, the other client's median query answers within this (without the gate: seconds). */
const MEDIAN_BOUND_MS = 1000;
/** ... and every one of its queries within this. A loaded shared machine took 2.8 s for the first, and
 *  once (the whole suite beside it on 2 cores) over 5 s for one; without the gate one waits for minutes. */
const MAX_BOUND_MS = 15_000;

/** A child process that keeps `n` requests in flight until killed, printing the count of each status as it goes.
 *  The token comes by environment: secrets never go into a process's arguments. */
const FLOODER = `
const [url, n, query] = process.argv.slice(1);
const statuses = {};
const one = async () => {
  for (;;) {
    try {
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + process.env.FLOOD_TOKEN }, body: JSON.stringify({ query }) });
      await r.arrayBuffer();
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    } catch { statuses.error = (statuses.error ?? 0) + 1; }
  }
};
for (let i = 0; i < Number(n); i++) void one();
setInterval(() => console.log(JSON.stringify(statuses)), 250);`;

const started: Array<{ app: WildBackupApp; data: TempDataDir }> = [];
afterAll(async () => {
  for (const s of started) {
    await s.app.stop();
    await s.data.cleanup();
  }
});

/** A server on its own copy of examples/data (one server per data directory). */
async function serve(clientLimits?: { concurrency?: number; queue?: number }): Promise<{ app: WildBackupApp; url: string }> {
  const data = await tempDataDir();
  const app = await buildApp({ dataDir: data.dir, port: 0, clientLimits, env: { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN } });
  started.push({ app, data });
  return { app, url: (await app.start()).url };
}

const post = (url: string, query: string, token: string, signal?: AbortSignal) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }), signal });

describe('per-client fairness', () => {
  it("a flood of expensive queries from one client does not hold up another client's simple queries", async () => {
    const { url } = await serve();
    const flooder = spawn(process.execPath, ['--input-type=module', '-e', FLOODER, url, String(FLOOD_IN_FLIGHT), HEAVY], {
      stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLOOD_TOKEN: READONLY_TOKEN },
    });
    let last = '{}';
    flooder.stdout.on('data', (d: Buffer) => { const lines = d.toString().trim().split('\n'); last = lines.at(-1) ?? last; });
    try {
      // The flood is in: the first of its answers came back.
      const t00 = performance.now();
      while (!('200' in (JSON.parse(last) as object)) && performance.now() - t00 < 20_000) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500)); // past the burst of its first connections
      const latencies: number[] = [];
      const t0 = performance.now();
      while (performance.now() - t0 < MEASURE_MS) {
        const t1 = performance.now();
        // Without the gate a query can wait for minutes: give up (and fail) past the bound.
        const res = await post(url, SIMPLE, ADMIN_TOKEN, AbortSignal.timeout(MAX_BOUND_MS));
        expect(await res.json()).toEqual({ data: { instances: [{ name: 'home' }] } });
        latencies.push(performance.now() - t1);
        await new Promise((r) => setTimeout(r, 25));
      }
      const before = JSON.parse(last) as Record<string, number>;
      await new Promise((r) => setTimeout(r, 600));
      const after = JSON.parse(last) as Record<string, number>;
      // The flood was still being served (within its queue nobody is refused) while we measured.
      expect(Object.keys(after)).toEqual(['200']);
      expect(after['200']!).toBeGreaterThan(before['200']!);
      expect(latencies.length).toBeGreaterThanOrEqual(3);
      const sorted = [...latencies].sort((a, b) => a - b);
      const shown = `latencies: ${latencies.map((l) => l.toFixed(0)).join(' ')} ms`;
      expect(sorted[Math.floor(sorted.length / 2)]!, shown).toBeLessThan(MEDIAN_BOUND_MS);
      expect(sorted.at(-1)!, shown).toBeLessThan(MAX_BOUND_MS);
    } finally {
      flooder.kill();
    }
  }, 60_000);

  it('answers 429 with Retry-After beyond a client\'s queue, to that client only, and serves it again afterwards', async () => {
    const { app, url } = await serve({ concurrency: 1, queue: 2 });
    const flood = await Promise.all(Array.from({ length: 12 }, async () => {
      const r = await post(url, HEAVY, READONLY_TOKEN);
      return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() };
    }).concat([post(url, SIMPLE, ADMIN_TOKEN).then(async (r) => ({ status: r.status, retryAfter: null, body: await r.text() }))]));
    const other = flood.pop()!;
    expect(other.status).toBe(200); // another client is not refused
    const refused = flood.filter((r) => r.status === 429);
    expect(flood.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(3); // one running, two queued
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
      expect(JSON.parse(r.body)).toMatchObject({ errors: [{ extensions: { code: 'RATE_LIMITED' } }] });
      expect(r.body).not.toContain(READONLY_TOKEN);
    }
    expect(app.gate.rejected).toBe(refused.length);
    expect((await post(url, SIMPLE, READONLY_TOKEN)).status).toBe(200);
    expect(app.gate.load('127.0.0.1|readonly')).toEqual({ running: 0, waiting: 0 });
  });

  it('limits a flood over graphql-ws the same way', async () => {
    const { url } = await serve({ concurrency: 1, queue: 2 });
    const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${READONLY_TOKEN}` }, retryAttempts: 0 });
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => new Promise<string>((resolve) => {
        client.subscribe<unknown>({ query: HEAVY }, {
          next: (r) => resolve(r.errors ? String(r.errors[0]?.extensions?.code) : 'ok'),
          error: (e) => resolve(`error ${JSON.stringify(e)}`),
          complete: () => undefined,
        });
      })));
      expect(results.filter((r) => r === 'ok').length).toBeGreaterThanOrEqual(3);
      expect(results.filter((r) => r === 'RATE_LIMITED').length).toBeGreaterThan(0);
      expect(results.filter((r) => r !== 'ok' && r !== 'RATE_LIMITED')).toEqual([]);
    } finally {
      await client.dispose();
    }
  });
  it('a burst of subscriptions (one backup followed by 300 tabs at once) does not hold up a query', async () => {
    const { app, url } = await serve();
    let release!: () => void;
    const rec = await app.services.engine.submit(tickTask({ steps: 1, gate: new Promise<void>((r) => (release = r)) }));
    const N = 300;
    // Each subscriber its own client (own loopback address), as the per-client gate sees them.
    const sockets = await Promise.all(Array.from({ length: N }, (_, i) => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws', { localAddress: `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}` });
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${READONLY_TOKEN}` } })));
      ws.once('message', (m: Buffer) => (JSON.parse(m.toString()).type === 'connection_ack' ? resolve(ws) : reject(new Error(m.toString()))));
      ws.once('error', reject);
    })));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const query = (): Promise<number> => new Promise((resolve, reject) => {
      const body = JSON.stringify({ query: SIMPLE });
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}`, 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now()));
      });
      req.on('error', reject);
      req.end(body);
    });
    try {
      await query(); // its connection is open before the burst
      const firstMessageAt: number[] = [];
      const firsts = sockets.map((ws) => new Promise<void>((resolve) => {
        ws.on('message', (m: Buffer) => {
          const msg = JSON.parse(m.toString()) as { type: string; payload?: { data?: { operation?: { status: string } } } };
          if (msg.type === 'next' && msg.payload?.data?.operation?.status === 'RUNNING') { firstMessageAt.push(performance.now()); resolve(); }
        });
      }));
      const sub = `subscription { operation(id: "${rec.id}") { status updatedAt progress { phase bytesDone } } }`;
      for (const ws of sockets) ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: sub } }));
      const answeredAt = await query(); // sent after every subscribe frame
      await Promise.all(firsts);
      // The query went ahead of the burst (taken a batch per turn of the server's event loop):
      // subscribers got their first message after its answer. Set up all in one go, none did.
      // How many depends on how cheap a set-up is (the first message is one shared execution
      // now) and on the machine's load: 76-200 of 300 seen; 0 without the lane.
      const after = firstMessageAt.filter((t) => t > answeredAt).length;
      expect(after, `${after} of ${N} subscriptions were set up after the query was answered`).toBeGreaterThan(N / 10);
    } finally {
      release();
      agent.destroy();
      for (const ws of sockets) ws.terminate();
    }
  }, 60_000);
});
