// The common POST (JSON query or mutation, token, no CORS) is answered without Yoga's Fetch
// adapter (src/http-fast.ts). Each request here is sent twice over HTTP: as is (the direct path)
// and with an Accept header the direct path leaves to Yoga; status, content type and body must
// be the same, whatever the outcome (data, resolver errors, coercion, validation, syntax, auth).
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directPathCounts } from '../../src/http-fast.js';
import { ADMIN_TOKEN, READONLY_TOKEN, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let url = '';
beforeAll(async () => {
  t = await startTestApp({ maxDepth: 6 });
  url = (await t.app.start()).url;
});
afterAll(async () => { await t?.close(); });

async function post(body: string, headers: Record<string, string>): Promise<{ status: number; type: string | null; body: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON: compared as text */ }
  return { status: res.status, type: res.headers.get('content-type'), body: parsed };
}

const CASES: Array<[string, unknown, string | null]> = [
  ['a query', { query: '{ instances { name hasKubeconfig } }' }, ADMIN_TOKEN],
  ['variables and an operation name', { query: 'query A($n: String!) { instance(name: $n) { name apps { name } } } query B { instances { name } }', variables: { n: 'home' }, operationName: 'A' }, READONLY_TOKEN],
  ['a resolver error', { query: '{ instance(name: "Not A Label") { name } }' }, ADMIN_TOKEN],
  ['a variable of the wrong type', { query: 'query($n: String!) { instance(name: $n) { name } }', variables: { n: 5 } }, ADMIN_TOKEN],
  ['a read-only token on a mutation', { query: 'mutation { initRepository(input: { instance: "home" }) { __typename ... on Error { message } } }' }, READONLY_TOKEN],
  ['an unknown field', { query: '{ instances { nope } }' }, ADMIN_TOKEN],
  ['a syntax error', { query: '{ instances { name ' }, ADMIN_TOKEN],
  ['too deep', { query: '{ instances { apps { instance { apps { instance { apps { name } } } } } } }' }, ADMIN_TOKEN],
  ['no token', { query: '{ instances { name } }' }, null],
  ['a wrong token', { query: '{ instances { name } }' }, 'not-a-token'],
  ['an unexpected parameter', { query: '{ instances { name } }', extra: 1 }, ADMIN_TOKEN],
  ['no query', { variables: {} }, ADMIN_TOKEN],
  ['an oversized variable', { query: 'query($n: String!) { instance(name: $n) { name } }', variables: { n: 'x'.repeat(20_000) } }, ADMIN_TOKEN],
];

describe('the direct path for POST /graphql', () => {
  it.each(CASES)('%s: the same answer as Yoga', async (_name, payload, token) => {
    const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const body = JSON.stringify(payload);
    const direct = await post(body, auth);
    const viaYoga = await post(body, { ...auth, accept: 'application/json, text/plain' });
    expect(direct).toEqual(viaYoga);
  });

  it('hands a subscription to Yoga: the same JSON answer, an event stream streamed', async () => {
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const init = await post(JSON.stringify({ query: 'mutation { initRepository(input: { instance: "home" }) { ... on OperationPayload { operation { operationId } } } }' }), auth);
    const opId = (init.body as { data: { initRepository: { operation: { operationId: string } } } }).data.initRepository.operation.operationId;
    await t.app.services.engine.waitFor(opId);
    const body = JSON.stringify({ query: 'subscription($id: ID!) { operation(id: $id) { operationId status } }', variables: { id: opId } });
    const before = { ...directPathCounts };
    const json = await post(body, { ...auth, accept: 'application/json' });
    expect(json).toEqual(await post(body, { ...auth, accept: 'application/json, text/plain' }));
    // No Accept header: Yoga answers with an event stream (the finished operation, then complete).
    const sse = await post(body, auth);
    expect(sse.status).toBe(200);
    expect(sse.type).toMatch(/^text\/event-stream/);
    expect(String(sse.body)).toMatch(/SUCCEEDED[\s\S]*event: complete/);
    expect(sse).toEqual(await post(body, { ...auth, accept: 'text/event-stream' }));
    expect(directPathCounts.yoga - before.yoga).toBe(2);
  }, 30_000);

  it('takes the direct path for the common request, and runs a mutation once', async () => {
    const before = { ...directPathCounts };
    const res = await post(JSON.stringify({ query: '{ instances { name } }' }), { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res).toEqual({ status: 200, type: 'application/json; charset=utf-8', body: { data: { instances: [{ name: 'home' }] } } });
    expect(directPathCounts.direct - before.direct).toBe(1);
    expect(directPathCounts.yoga - before.yoga).toBe(0);
    // A mutation that fails in its resolver is answered by the direct path (Yoga formats the
    // errors) and never handed on to run again.
    const mid = { ...directPathCounts };
    await post(JSON.stringify({ query: 'mutation { cancelOperation(id: "op-nope") { __typename } }' }), { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(directPathCounts.direct - mid.direct).toBe(1);
    expect(directPathCounts.yoga - mid.yoga).toBe(0);
  });

  it('needs a Content-Length, bounded: 411 without one, 413 over 1 MiB, nothing run', async () => {
    const u = new URL(url);
    const raw = (headers: Record<string, string | number>, body: string) => new Promise<number>((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}`, ...headers } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.end(body);
    });
    const q = JSON.stringify({ query: '{ instances { name } }' });
    expect(await raw({ 'transfer-encoding': 'chunked' }, q)).toBe(411);
    const big = JSON.stringify({ query: '{ instances { name } }', variables: { pad: 'x'.repeat(1024 * 1024) } });
    expect(await raw({ 'content-length': Buffer.byteLength(big) }, big)).toBe(413);
    expect(await raw({ 'content-length': Buffer.byteLength(q) }, q)).toBe(200);
  });
});
