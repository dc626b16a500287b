// Real clients against a real port: graphql-ws and SSE receive an operation's progress in order
// and its completion; tokens are required on every transport.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { startTestApp, ADMIN_TOKEN, READONLY_TOKEN, type TestApp } from '../helpers/app.js';
import { sseRequest } from '../helpers/sse.js';
import { tickTask } from '../helpers/tasks.js';

let t: TestApp;
let url: string;
beforeAll(async () => {
  t = await startTestApp();
  url = (await t.app.start()).url;
});
afterAll(async () => { await t.close(); });

const OPERATION_SUB = `subscription($id: ID!) { operation(id: $id) { status progress { phase bytesDone bytesTotal percent currentItem } } }`;
type OpState = { status: string; progress: { phase: string; bytesDone: number; percent: number | null } };

function wsClient(authorization: string | undefined, onClose?: (code: number) => void): Client {
  return createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: authorization === undefined ? {} : { authorization },
    retryAttempts: 0,
    lazy: true,
    on: { closed: (e) => onClose?.((e as { code: number }).code) },
  });
}

function collectWs(client: Client, query: string, variables: Record<string, unknown>): Promise<OpState[]> {
  return new Promise((resolve, reject) => {
    const got: OpState[] = [];
    client.subscribe<{ operation: OpState }>({ query, variables }, {
      next: (r) => { if (r.errors) reject(new Error(JSON.stringify(r.errors))); else got.push(r.data!.operation); },
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
      complete: () => resolve(got),
    });
  });
}

function assertOrderedProgress(states: OpState[]): void {
  expect(states.at(-1)?.status).toBe('SUCCEEDED');
  expect(states.filter((s) => s.status === 'SUCCEEDED')).toHaveLength(1);
  const bytes = states.map((s) => s.progress.bytesDone);
  expect([...bytes].sort((a, b) => a - b)).toEqual(bytes); // never goes backwards
  const running = states.filter((s) => s.status === 'RUNNING' && s.progress.phase === 'ticking');
  expect(running.length).toBeGreaterThanOrEqual(3);
  expect(states.at(-1)?.progress.bytesDone).toBe(8000);
  expect(states.at(-1)?.progress.percent).toBe(100);
}

describe('graphql-ws', () => {
  it('follows an operation: current state first, progress in order, then completion', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const rec = await t.app.services.engine.submit(tickTask({ steps: 8, stepMs: 300, bytesPerStep: 1000, gate }));
    const client = wsClient(`Bearer ${ADMIN_TOKEN}`);
    const states = collectWs(client, OPERATION_SUB, { id: rec.id });
    setTimeout(release, 2600);
    const got = await states;
    await client.dispose();
    assertOrderedProgress(got);
  });

  it('streams operationEvents of one instance', async () => {
    const client = wsClient(`Bearer ${READONLY_TOKEN}`);
    const events: Array<{ type: string; operation: { instanceName: string; status: string } }> = [];
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe<{ operationEvents: (typeof events)[number] }>({ query: `subscription { operationEvents(instance: "home") { type operation { instanceName status } } }` }, {
        next: (r) => { events.push(r.data!.operationEvents); if (r.data!.operationEvents.type === 'FINISHED') resolve(); },
        error: reject,
        complete: () => resolve(),
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    await t.app.services.engine.submit(tickTask({ steps: 2 }));
    await done;
    await client.dispose();
    expect(events[0]?.type).toBe('CREATED');
    expect(events.at(-1)).toMatchObject({ type: 'FINISHED', operation: { instanceName: 'home', status: 'SUCCEEDED' } });
  });

  it('closes a connection without a token or with a wrong token with 4401', async () => {
    for (const auth of [undefined, 'Bearer nope']) {
      let code = 0;
      const client = wsClient(auth, (c) => (code = c));
      await expect(collectWs(client, '{ instances { name } }' as string, {})).rejects.toBeDefined();
      await client.dispose();
      expect(code).toBe(4401);
    }
  });

  it('applies auth roles over WebSocket: a read-only token cannot mutate', async () => {
    const client = wsClient(`Bearer ${READONLY_TOKEN}`);
    const result = await new Promise<unknown>((resolve, reject) => {
      client.subscribe({ query: `mutation { cancelOperation(id: "op-x-00") { __typename } }` }, { next: (r) => resolve(r.data), error: reject, complete: () => undefined });
    });
    await client.dispose();
    expect(result).toEqual({ cancelOperation: { __typename: 'ForbiddenError' } });
  });
});

describe('SSE', () => {
  it('follows an operation over text/event-stream to its completion', async () => {
    const rec = await t.app.services.engine.submit(tickTask({ steps: 8, stepMs: 300, bytesPerStep: 1000 }));
    const states: OpState[] = [];
    let completed = false;
    for await (const msg of sseRequest(url, { query: OPERATION_SUB, variables: { id: rec.id } }, { authorization: `Bearer ${ADMIN_TOKEN}` })) {
      if (msg.event === 'next') states.push((JSON.parse(msg.data) as { data: { operation: OpState } }).data.operation);
      if (msg.event === 'complete') completed = true;
    }
    expect(completed).toBe(true);
    assertOrderedProgress(states);
  });

  it('refuses an SSE subscription without a valid token', async () => {
    const gen = sseRequest(url, { query: OPERATION_SUB, variables: { id: 'x' } }, { authorization: 'Bearer nope' });
    await expect(gen.next()).rejects.toThrow(/401/);
  });
});

describe('HTTP', () => {
  it('serves /healthz and GraphQL over a real port', async () => {
    const health = await fetch(url.replace('/graphql', '/healthz'));
    expect(health.status).toBe(200);
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ query: '{ instances { name } }' }) });
    expect(await res.json()).toEqual({ data: { instances: [{ name: 'home' }] } });
  });
});
