// Auth and limits on every transport of a real port: HTTP, graphql-ws and SSE. No token and a
// wrong token are refused before anything runs; the read-only token may query and subscribe, and
// EVERY mutation of the schema (the list comes from the schema itself) answers it ForbiddenError
// and changes nothing; the depth and cost limits hold on each transport. No response ever holds
// a token. (test/graphql covers the in-process yoga.fetch cases and WS 4401 on a missing token.)
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  getNamedType, isEnumType, isInputObjectType, isListType, isNonNullType, isScalarType,
  type GraphQLField, type GraphQLInputType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { schema } from '../../src/schema/index.js';
import { startTestApp, ADMIN_TOKEN, READONLY_TOKEN, type TestApp } from '../helpers/app.js';
import { tickTask } from '../helpers/tasks.js';

let t: TestApp;
let url: string;
const seen: string[] = []; // every response body, to check that no token ever comes back
beforeAll(async () => {
  t = await startTestApp();
  url = (await t.app.start()).url;
});
afterAll(async () => {
  for (const body of seen) {
    expect(body).not.toContain(ADMIN_TOKEN);
    expect(body).not.toContain(READONLY_TOKEN);
  }
  await t.close();
});

type Result = { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
type Transport = 'http' | 'ws' | 'sse';
const TRANSPORTS: Transport[] = ['http', 'ws', 'sse'];

async function overHttp(query: string, variables: Record<string, unknown> | undefined, authorization: string | null): Promise<{ status: number; result: Result }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
  if (authorization !== null) headers.authorization = authorization;
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await res.text();
  seen.push(text);
  return { status: res.status, result: JSON.parse(text) as Result };
}

/** SSE (Yoga's distinct-connections mode): the first `next` payload, or the JSON body of a refusal. */
async function overSse(query: string, variables: Record<string, unknown> | undefined, authorization: string | null): Promise<{ status: number; result: Result }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (authorization !== null) headers.authorization = authorization;
  const ac = new AbortController();
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }), signal: ac.signal });
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    const text = await res.text();
    seen.push(text);
    return { status: res.status, result: JSON.parse(text) as Result };
  }
  let buf = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      const m = /event: next\ndata: (.*)\n\n/.exec(buf);
      if (m) {
        seen.push(m[1]!);
        return { status: res.status, result: JSON.parse(m[1]!) as Result };
      }
      if (buf.includes('event: complete')) break;
    }
  } finally {
    ac.abort();
  }
  throw new Error(`no next event over SSE: ${buf.slice(0, 300)}`);
}

function wsClient(connectionParams: Record<string, unknown>, onClose?: (code: number) => void): Client {
  return createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    lazy: true,
    on: { closed: (e) => onClose?.((e as { code: number }).code), message: (m) => { seen.push(JSON.stringify(m)); } },
  });
}

/** The first result over graphql-ws; errors sent as an `error` message come back as `{ errors }`. */
function firstOverWs(client: Client, query: string, variables?: Record<string, unknown>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const stop = client.subscribe<Record<string, unknown>>({ query, variables }, {
      next: (r) => { resolve(r as Result); stop(); },
      error: (e) => (Array.isArray(e) ? resolve({ errors: e as Result['errors'] }) : reject(e instanceof Error ? e : new Error(JSON.stringify(e)))),
      complete: () => undefined,
    });
  });
}

/** One request over a transport with a token; WS opens and closes a connection around it. */
async function over(transport: Transport, query: string, variables: Record<string, unknown> | undefined, token: string): Promise<Result> {
  if (transport === 'http') return (await overHttp(query, variables, `Bearer ${token}`)).result;
  if (transport === 'sse') return (await overSse(query, variables, `Bearer ${token}`)).result;
  const client = wsClient({ authorization: `Bearer ${token}` });
  try {
    return await firstOverWs(client, query, variables);
  } finally {
    await client.dispose();
  }
}

describe('without a valid token, nothing answers', () => {
  const BAD = [['no token', null], ['a wrong token', 'Bearer not-the-token-0123456789'], ['a bare wrong token', 'not-the-token'], ['an empty bearer', 'Bearer ']] as const;

  it.each(BAD)('HTTP with %s: 401 + WWW-Authenticate, for POST and GET', async (_label, authorization) => {
    const post = await overHttp('{ instances { name } }', undefined, authorization);
    expect(post.status).toBe(401);
    expect(post.result.data).toBeUndefined();
    expect(post.result.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const headers: Record<string, string> = { accept: 'application/json' };
    if (authorization) headers.authorization = authorization;
    const get = await fetch(`${url}?query=${encodeURIComponent('{ instances { name } }')}`, { headers });
    seen.push(await get.text());
    expect(get.status).toBe(401);
    expect(get.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('HTTP: a token in the URL is not a credential (it would end up in logs)', async () => {
    const get = await fetch(`${url}?query=${encodeURIComponent('{ instances { name } }')}&token=${ADMIN_TOKEN}`, { headers: { accept: 'application/json' } });
    await get.text();
    expect(get.status).toBe(401);
  });

  it.each(BAD)('SSE with %s: 401 before any event, also for a subscription', async (_label, authorization) => {
    for (const query of ['{ instances { name } }', 'subscription { operationEvents { type } }']) {
      const r = await overSse(query, undefined, authorization);
      expect(r.status).toBe(401);
      expect(r.result.data).toBeUndefined();
    }
  });

  it('graphql-ws with a wrong token, a token of the wrong type, or the token only in the upgrade request: closed 4401', async () => {
    const cases: Array<Record<string, unknown>> = [
      { authorization: 'Bearer not-the-token-0123456789' },
      { authorization: 12345 },
      { authorization: { token: ADMIN_TOKEN } },
      { Authorization: undefined },
    ];
    for (const params of cases) {
      let code = 0;
      const client = wsClient(params, (c) => (code = c));
      await expect(firstOverWs(client, '{ instances { name } }')).rejects.toBeDefined();
      await client.dispose();
      expect(code, JSON.stringify(params)).toBe(4401);
    }
  });
});

describe('the read-only token', () => {
  it.each(TRANSPORTS)('may query and subscribe over %s', async (transport) => {
    expect(await over(transport, '{ instances { name } }', undefined, READONLY_TOKEN)).toEqual({ data: { instances: [{ name: 'home' }] } });
    if (transport === 'http') return; // subscriptions are served over SSE and WebSocket only
    const rec = await t.app.services.engine.submit(tickTask({ steps: 1 }));
    await t.app.services.engine.waitFor(rec.id);
    const sub = await over(transport, 'subscription($id: ID!) { operation(id: $id) { status } }', { id: rec.id }, READONLY_TOKEN);
    expect(sub).toEqual({ data: { operation: { status: 'SUCCEEDED' } } });
  });
});

// ---------------------------------------------------------------------------------------------
// Every mutation of the schema, with input that passes validation (so the role check is what
// answers): values are generated from the argument types, with plausible values by field name.

const BY_NAME: Record<string, unknown> = {
  instance: 'home', app: 'gitea', targetApp: 'gitea', backupId: '20261126T101010Z-abcd', id: '20261126T101010Z-abcd',
  repository: '/srv/backups/wild-cloud', password: 'pw-123456', cron: '@daily', name: 'nightly',
};

function valueFor(type: GraphQLInputType, field: string): unknown {
  if (isNonNullType(type)) return valueFor(type.ofType, field);
  if (isListType(type)) return [valueFor(type.ofType, field)];
  if (isEnumType(type)) return type.getValues()[0]!.value;
  if (isInputObjectType(type)) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(type.getFields())) if (isNonNullType(f.type)) out[f.name] = valueFor(f.type, f.name);
    return out;
  }
  if (isScalarType(type)) {
    if (field in BY_NAME) return BY_NAME[field];
    return ({ Int: 1, Float: 10, Boolean: false, String: 'x', ID: 'x' } as Record<string, unknown>)[type.name] ?? 'x';
  }
  throw new Error(`no value for ${String(type)}`);
}

interface MutationCase { name: string; query: string; variables: Record<string, unknown> }

function mutationCases(): MutationCase[] {
  const fields = Object.values(schema.getMutationType()!.getFields()) as Array<GraphQLField<unknown, unknown>>;
  return fields.map((f) => {
    const args = f.args.filter((a) => isNonNullType(a.type));
    const variables = Object.fromEntries(args.map((a) => [a.name, valueFor(a.type, a.name)]));
    const decl = args.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
    const call = args.map((a) => `${a.name}: $${a.name}`).join(', ');
    const union = getNamedType(f.type);
    return {
      name: f.name,
      variables,
      query: `mutation${decl ? `(${decl})` : ''} { ${f.name}${call ? `(${call})` : ''} { __typename ${'getTypes' in union ? '... on Error { code message }' : ''} } }`,
    };
  });
}

async function snapshotFiles(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else out[r] = await readFile(path.join(dir, r), 'utf8');
    }
  }
  await walk('');
  return out;
}

describe('every mutation of the schema with the read-only token', () => {
  const cases = mutationCases();

  it('covers the whole schema', () => {
    expect(cases.length).toBe(Object.keys(schema.getMutationType()!.getFields()).length);
    expect(cases.map((c) => c.name)).toEqual(expect.arrayContaining(['backupApp', 'restoreBackup', 'deleteBackup', 'updateBackupConfig', 'setSchedules', 'cancelOperation']));
  });

  it.each(TRANSPORTS)('answers ForbiddenError over %s and changes nothing', async (transport) => {
    const operationsBefore = t.app.services.engine.list().length;
    const before = await snapshotFiles(t.data.dir);
    const wrong: string[] = [];
    for (const c of cases) {
      const r = await over(transport, c.query, c.variables, READONLY_TOKEN);
      const payload = r.data?.[c.name] as { __typename?: string; code?: string } | undefined;
      if (payload?.__typename !== 'ForbiddenError' || payload.code !== 'FORBIDDEN') wrong.push(`${c.name}: ${JSON.stringify(r).slice(0, 300)}`);
    }
    expect(wrong, wrong.join('\n')).toEqual([]);
    expect(t.app.services.engine.list().length).toBe(operationsBefore);
    expect(await snapshotFiles(t.data.dir)).toEqual(before);
  });

  it('while the admin token gets past the role check with the same input (the generated input is valid)', async () => {
    // Only the mutations that answer at once without touching anything outside: a failure here
    // would mean the read-only answers above came from validation, not from the role check.
    for (const name of ['cancelOperation', 'deleteBackup', 'verifyBackup']) {
      const c = cases.find((x) => x.name === name)!;
      const r = await over('http', c.query, c.variables, ADMIN_TOKEN);
      expect((r.data?.[name] as { __typename: string }).__typename, name).toBe('NotFoundError');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Depth (12) and cost (20,000) limits, the server's defaults, on each transport.

/** Depth 12: the limit, accepted. */
const DEPTH_12_QUERY = '{ instances { backups { edges { node { instance { backups { edges { node { instance { backups { edges { cursor } } } } } } } } } } } }';
const DEEP_QUERY = '{ instances { backups { edges { node { instance { backups { edges { node { instance { backups { edges { node { appName } } } } } } } } } } } } }';
const DEEP_SUBSCRIPTION = 'subscription { operationEvents { operation { backup { instance { backups { edges { node { instance { backups { edges { node { instance { name } } } } } } } } } } } } }';
/** About 9,650 each (graphql-armor's measure): three cost ~29,000. */
const COST_QUERY = (n: number): string => '{ ' + Array.from({ length: n }, (_, i) => `a${i}: instances { backups(first: 100) { edges { node { instance { apps { databases { engine databaseName } } } } } } }`).join(' ') + ' }';
const COSTLY_QUERY = COST_QUERY(3);

describe('depth and cost limits on every transport', () => {
  it.each(TRANSPORTS)('refuses a query deeper than 12 over %s, and a subscription too, before running it', async (transport) => {
    const q = await over(transport, DEEP_QUERY, undefined, ADMIN_TOKEN);
    expect(q.data ?? null).toBeNull();
    expect(q.errors?.[0]?.message).toMatch(/depth/i);
    if (transport === 'http') return; // subscriptions are served over SSE and WebSocket only
    const before = t.app.services.pubsub.subscriberCount();
    const s = await over(transport, DEEP_SUBSCRIPTION, undefined, ADMIN_TOKEN);
    expect(s.data ?? null).toBeNull();
    expect(s.errors?.[0]?.message).toMatch(/depth/i);
    expect(t.app.services.pubsub.subscriberCount()).toBe(before);
  });

  it.each(TRANSPORTS)('refuses a query that costs more than 20,000 over %s', async (transport) => {
    const r = await over(transport, COSTLY_QUERY, undefined, ADMIN_TOKEN);
    expect(r.data ?? null).toBeNull();
    expect(r.errors?.[0]?.message).toMatch(/cost/i);
  });

  it.each(TRANSPORTS)('while a query just under both limits answers over %s', async (transport) => {
    expect((await over(transport, COST_QUERY(2), undefined, ADMIN_TOKEN)).errors).toBeUndefined();
    expect((await over(transport, DEPTH_12_QUERY, undefined, ADMIN_TOKEN)).errors).toBeUndefined();
  });

  it('a refused operation over graphql-ws leaves the connection and its other subscriptions open', async () => {
    let closed = 0;
    const client = wsClient({ authorization: `Bearer ${ADMIN_TOKEN}` }, (c) => (closed = c));
    try {
      expect((await firstOverWs(client, DEEP_QUERY)).errors?.[0]?.message).toMatch(/depth/i);
      expect((await firstOverWs(client, COSTLY_QUERY)).errors?.[0]?.message).toMatch(/cost/i);
      expect(await firstOverWs(client, '{ instances { name } }')).toEqual({ data: { instances: [{ name: 'home' }] } });
      expect(closed).toBe(0);
    } finally {
      await client.dispose();
    }
  });
});
