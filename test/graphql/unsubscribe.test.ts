// A client that unsubscribes while nothing happens lets go of its subscription at once, not at the
// next event (which may be hours away between nightly schedules): the pubsub subscriber is gone.
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../helpers/app.js';
import { tickTask } from '../helpers/tasks.js';

let t: TestApp;
let client: Client;
beforeAll(async () => {
  t = await startTestApp();
  const { url } = await t.app.start();
  client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` }, retryAttempts: 0 });
});
afterAll(async () => {
  await client?.dispose();
  await t?.close();
});

/** Subscribes; resolves with the first value (if `wantValue`) and the way to stop. */
function subscribe(query: string, wantValue: boolean): Promise<{ stop: () => void; first?: unknown }> {
  return new Promise((resolve, reject) => {
    const stop = client.subscribe({ query }, {
      next: (v) => resolve({ stop, first: v }),
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
      complete: () => undefined,
    });
    if (!wantValue) resolve({ stop });
  });
}

const subscribers = (topic: string) => t.app.services.pubsub.subscriberCount(topic as 'operations');

it('operationEvents: unsubscribing in a quiet moment removes the subscriber at once', async () => {
  const before = subscribers('operations');
  const s = await subscribe('subscription { operationEvents { type } }', false);
  await expect.poll(() => subscribers('operations'), { timeout: 5000 }).toBe(before + 1);
  s.stop();
  await expect.poll(() => subscribers('operations'), { timeout: 2000, interval: 20 }).toBe(before);
});

it('operation(id): unsubscribing from a running operation that reports nothing removes the subscriber at once', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const rec = await t.app.services.engine.submit(tickTask({ steps: 1, gate }));
  try {
    // Held at its gate, its last step published: nothing more comes until the gate opens.
    await expect.poll(() => t.app.services.engine.published(rec.id)?.progress?.bytesDone, { timeout: 5000 }).toBe(1000);
    const topic = `operation:${rec.id}`;
    const id = Buffer.from(`Operation:${rec.id}`).toString('base64');
    const s = await subscribe(`subscription { operation(id: "${id}") { status } }`, true);
    expect(s.first).toEqual({ data: { operation: { status: 'RUNNING' } } });
    expect(subscribers(topic)).toBe(1);
    s.stop();
    await expect.poll(() => subscribers(topic), { timeout: 2000, interval: 20 }).toBe(0);
  } finally {
    release();
  }
  expect((await t.app.services.engine.waitFor(rec.id)).status).toBe('SUCCEEDED');
});

it('operation(id) still ends after the terminal state, sending it', async () => {
  const rec = await t.app.services.engine.submit(tickTask({ steps: 2, stepMs: 50 }));
  const id = Buffer.from(`Operation:${rec.id}`).toString('base64');
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    client.subscribe<{ operation: { status: string } }>({ query: `subscription { operation(id: "${id}") { status } }` }, {
      next: (v) => { seen.push(v.data!.operation.status); },
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
      complete: resolve,
    });
  });
  expect(seen.at(-1)).toBe('SUCCEEDED');
  expect(new Set(seen.slice(0, -1))).not.toContain('SUCCEEDED');
  expect(subscribers(`operation:${rec.id}`)).toBe(0);
});
