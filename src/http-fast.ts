// The common request, answered directly: POST /graphql with a JSON query or mutation, a bearer
// token, no CORS and a plain JSON answer wanted. Everything Yoga would do for it is done here by
// Yoga's own parts (its enveloped parse, validation with the depth and cost rules, context,
// execution with masked errors, its result processor for answers with errors), without its
// Fetch-API adapter: Request, Headers, body streams, Response and the pipeline back to the socket
// were a large share of the server's CPU per query in the load profile (docs/benchmarks/load.md).
// Anything else, or anything that does not go through cleanly (bad JSON, a parse or validation
// error, a subscription, a missing token), is handed to Yoga with the same body: it answers with
// its exact errors and status codes.
import type http from 'node:http';
import { getOperationAST, type DocumentNode, type ExecutionResult } from 'graphql';
import { isAsyncIterable, processRegularResult, type YogaServerInstance } from 'graphql-yoga';
import type { GraphQLContext, Role } from './context.js';
import { logger, scrub } from './util/log.js';

const log = logger('server');

/** Largest request body: a query and its variables (keys included) fit many times over. */
export const MAX_BODY_BYTES = 1024 * 1024;
const PARAM_KEYS = new Set(['query', 'variables', 'operationName', 'extensions']);
const JSON_ANSWERS = new Set(['*/*', 'application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

type Yoga = YogaServerInstance<Record<string, unknown>, GraphQLContext>;

/** How requests of the direct path were answered (tests check that it is taken). */
export const directPathCounts = { direct: 0, yoga: 0 };

/** A request that may take the direct path (judged by its head alone; the body is read after). */
export function fastPathCandidate(req: http.IncomingMessage): boolean {
  const type = req.headers['content-type'];
  const accept = req.headers.accept;
  return req.method === 'POST' && req.url === '/graphql' && !req.headers.origin
    && (type === 'application/json' || type === 'application/json; charset=utf-8' || type === 'application/json;charset=utf-8')
    && (accept === undefined || JSON_ANSWERS.has(accept.toLowerCase()));
}

/**
 * What is wrong with a POST's length, or null. The bound is checked from Content-Length (Node's
 * parser reads exactly that many bytes) instead of by Yoga, which pipes every body through a
 * counting TransformStream (3 % of the server's CPU under load). A body without a length
 * (chunked) is refused: clients send one.
 */
export function bodyLengthProblem(req: http.IncomingMessage): { status: number; code: string; message: string } | null {
  if (req.method !== 'POST') return null;
  const length = req.headers['content-length'];
  if (length === undefined) return { status: 411, code: 'LENGTH_REQUIRED', message: 'a request body needs a Content-Length header' };
  if (!/^\d+$/.test(length)) return { status: 400, code: 'BAD_REQUEST', message: 'the Content-Length header is invalid' };
  if (Number(length) > MAX_BODY_BYTES) return { status: 413, code: 'REQUEST_ENTITY_TOO_LARGE', message: `the request body is larger than ${MAX_BODY_BYTES} bytes` };
  return null;
}

/** Reads the whole body; its length is already bounded (bodyLengthProblem). */
function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Params { query: string; variables?: Record<string, unknown> | null; operationName?: string | null; extensions?: Record<string, unknown> | null }

function paramsOf(body: Buffer): Params | null {
  let v: unknown;
  try { v = JSON.parse(body.toString('utf8')); } catch { return null; }
  if (!isObject(v) || typeof v.query !== 'string') return null;
  for (const k of Object.keys(v)) if (!PARAM_KEYS.has(k)) return null;
  if (v.variables != null && !isObject(v.variables)) return null;
  if (v.operationName != null && typeof v.operationName !== 'string') return null;
  if (v.extensions != null && !isObject(v.extensions)) return null;
  return v as unknown as Params;
}

/**
 * Answers a POST that fastPathCandidate picked: directly when it is the common case, else by Yoga
 * with the same body. `inputProblem` is the server's bound on the query and variables (a request
 * over it is Yoga's to refuse, as are a missing token and anything else unusual).
 */
export async function answerPost(yoga: Yoga, req: http.IncomingMessage, res: http.ServerResponse, role: Role | null, inputProblem: (query: string, variables: unknown) => string | null): Promise<void> {
  try {
    const body = await readBody(req);
    const params = paramsOf(body);
    const direct = params !== null && role !== null && inputProblem(params.query, params.variables) === null;
    if (!(direct && (await answerDirectly(yoga, res, params, role)))) await answerWithYoga(yoga, req, res, body);
  } catch (err) {
    log.error('request failed', { error: scrub(String((err as Error)?.stack ?? err)) });
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] }));
    else res.destroy();
  }
}

/** Runs the operation and answers; false (nothing run, nothing written) when Yoga must answer. */
async function answerDirectly(yoga: Yoga, res: http.ServerResponse, params: Params, role: Role): Promise<boolean> {
  const { parse, validate, contextFactory, execute, schema } = yoga.getEnveloped({ params, role });
  let document: DocumentNode;
  try { document = parse(params.query); } catch { return false; }
  try {
    if (validate(schema, document).length > 0) return false;
  } catch {
    return false; // graphql-armor's depth and cost rules throw: Yoga answers with their error
  }
  const op = getOperationAST(document, params.operationName ?? undefined);
  if (!op || op.operation === 'subscription') return false;
  // From here on the operation runs once, whatever happens: a mutation is never run twice.
  const result = (await execute({
    schema, document, contextValue: await contextFactory(), variableValues: params.variables, operationName: params.operationName,
  })) as ExecutionResult | AsyncIterable<unknown>;
  directPathCounts.direct++;
  if (!isAsyncIterable(result) && !result.errors?.length && !(result.extensions as { http?: unknown } | undefined)?.http) {
    const text = JSON.stringify(result);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
    return true;
  }
  // Errors (or an incremental result): Yoga's own processor decides the status and the body.
  const response = processRegularResult(result as ExecutionResult, yoga.fetchAPI, 'application/json');
  const text = await response.text();
  const headers: Record<string, string> = {};
  response.headers.forEach((v, k) => { headers[k] = v; });
  headers['content-length'] = String(Buffer.byteLength(text));
  res.writeHead(response.status, headers).end(text);
  return true;
}

/**
 * Hands a request whose body was already read to Yoga, and writes its answer as it comes (a
 * subscription without an Accept header is an event stream that lasts; it ends when the client goes).
 */
async function answerWithYoga(yoga: Yoga, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
  directPathCounts.yoga++;
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || k === 'content-length' || k === 'transfer-encoding' || k === 'connection' || k === 'host') continue;
    for (const x of Array.isArray(v) ? v : [v]) headers.append(k, x);
  }
  // The client going away stops Yoga's work and, once streaming, the stream.
  const gone = new AbortController();
  let chunks: AsyncIterator<Uint8Array> | undefined;
  res.once('close', () => { gone.abort(); void chunks?.return?.(); });
  const response = await yoga.fetch(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/graphql'}`, { method: 'POST', headers, body, signal: gone.signal }, { req, res });
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((v, k) => { out[k] = k === 'set-cookie' ? [...((out[k] as string[] | undefined) ?? []), v] : v; });
  res.writeHead(response.status, out);
  if (!response.body) { res.end(); return; }
  res.flushHeaders();
  chunks = (response.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  try {
    for (let r = await chunks.next(); !r.done && !res.destroyed; r = await chunks.next()) {
      if (!res.write(r.value)) await drainedOrClosed(res);
    }
  } finally {
    if (!res.destroyed) res.end();
  }
}

/**
 * Resolves on the response's next 'drain' or its 'close', whichever comes first, and leaves no
 * listener behind: a long event stream to a slow client waits here many times.
 */
export function drainedOrClosed(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
