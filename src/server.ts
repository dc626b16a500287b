// buildApp(): one HTTP server on one port: GraphQL over HTTP and SSE (Yoga), graphql-ws over
// WebSocket, GraphiQL from local assets, /healthz. start() listens, stop() drains and closes.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError, execute as graphqlExecute } from 'graphql';
import { createGraphQLError, createYoga, shouldRenderGraphiQL, type Plugin as YogaPlugin } from 'graphql-yoga';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { schema } from './schema/index.js';
import { WildError } from './errors.js';
import { ResticError } from './engine/restic/index.js';
import { lockDataDir } from './server-lock.js';
import { loadTokens, roleFor, type Tokens } from './auth.js';
import { ClientGate, clientKey, type ClientLimits } from './fairness.js';
import { answerPost, bodyLengthProblem, fastPathCandidate } from './http-fast.js';
import type { GraphQLContext, Role, Services } from './context.js';
import { OperationEngine } from './engine/operations/index.js';
import { RepositoryService } from './engine/repository/service.js';
import { BackupService } from './engine/backup/service.js';
import { ClusterService } from './engine/cluster.js';
import { HelperPodSweeper } from './engine/helper-sweep.js';
import { helperPodOwner, setHelperPodOwner } from './kube/index.js';
import { clusterPlanner } from './engine/backup/planner.js';
import { RestoreService } from './engine/restore/service.js';
import { MaintenanceService } from './engine/lifecycle/maintenance.js';
import { ScheduleService } from './engine/lifecycle/schedules.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './engine/metrics.js';
import type { SchedulerOptions } from './engine/schedules/index.js';
import { PubSub } from './subscriptions/pubsub.js';
import { SetupLane } from './subscriptions/setup-lane.js';
import { subscribeShared } from './subscriptions/shared-execution.js';
import type { OperationTopics } from './subscriptions/events.js';
import { WildStore } from './wild/store.js';
import { loadServerId, newRunId } from './wild/server-id.js';
import { logger, processSecrets, scrub } from './util/log.js';

const log = logger('server');

export interface AppOptions {
  /** Wild Central data directory. */
  dataDir: string;
  /** Interface to bind. Default 127.0.0.1: a LAN-wide bind must be asked for. */
  host?: string;
  /** Port; 0 picks a free one. Default 4000. */
  port?: number;
  /** Environment to read tokens from (WILD_BACKUP_TOKEN, WILD_BACKUP_READONLY_TOKEN). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Operations running at once. Default 2. */
  concurrency?: number;
  /** Bound of a repository status check or testRepository. Default 20 s. */
  repositoryTimeoutMs?: number;
  /** Bound of a cluster API call made for a query. Default 5 s. */
  clusterTimeoutMs?: number;
  /** Image of helper pods that mount a PVC nobody mounts (needs sh and tar). */
  helperImage?: string;
  /** Bound of the start-up sweep of one instance's helper pods left by an earlier run. Default 10 s. */
  helperSweepTimeoutMs?: number;
  /** Wait before that sweep is tried again for an instance whose cluster did not answer. Default 60 s. */
  helperSweepRetryMs?: number;
  /** How long a database dump, or a restore's swap of a MariaDB schema, waits for a table lock another session holds before it fails naming it. Default 2 min. */
  lockWaitMs?: number;
  /** A backup artifact under way that moves no byte for this long fails (STALLED). Default 2 min. */
  stallTimeoutMs?: number;
  /** A backup artifact whose restic has not opened the repository, or whose source sent nothing, after this long fails (STALLED). Default 10 min. */
  startTimeoutMs?: number;
  /** How often a failed backup's snapshots are retried for removal while their repository is down. */
  leftoverRetryMs?: number;
  /** First wait before an unfinished recovery (a restore's rollback) is tried again; doubles up to 10 min. Default 30 s. */
  recoveryRetryMs?: number;
  /** Clock and timers of the schedules (tests). Default: the real ones. */
  scheduleTiming?: Pick<SchedulerOptions, 'now' | 'setTimer' | 'clearTimer'>;
  /** Deepest query accepted. Default 12. */
  maxDepth?: number;
  /** Highest query cost accepted (graphql-armor's measure). Default 20000. */
  maxCost?: number;
  /** Per-client fairness (src/fairness.ts): requests executing at once and waiting, per client. */
  clientLimits?: ClientLimits;
}

export interface WildBackupApp {
  readonly services: Services;
  readonly tokens: Tokens;
  /** The per-client request gate (every transport). */
  readonly gate: ClientGate;
  readonly yoga: ReturnType<typeof createYoga<Record<string, unknown>, GraphQLContext>>;
  /** Listens; resolves with the GraphQL URL. */
  start(): Promise<{ url: string; port: number }>;
  /** Stops taking requests, lets operations reach a safe point, closes every socket. */
  stop(): Promise<void>;
}

/** Longest string a variable may hold: GraphQL's error suggestions for a bad enum value cost time
 *  quadratic in its length (a 100 KB one took 34 s), so longer input never reaches coercion. */
const MAX_VARIABLE_STRING = 16 * 1024;
/** Fields whose values are legitimately long (PEM keys, service-account JSON). */
const LONG_FIELDS = new Set(['privateKey', 'serviceAccountKey']);
const MAX_LONG_STRING = 64 * 1024;
const MAX_QUERY_LENGTH = 64 * 1024;
const STALL_CHECK_MS = 100;
const STALL_LOG_MS = 250;
/** What a client over its queue is told (HTTP 429 body, graphql-ws error). */
const RATE_LIMITED = { message: 'too many requests from this client at once; retry later', extensions: { code: 'RATE_LIMITED' } };

/** The first oversized input of a request, or null. */
export function oversizedInput(query: unknown, variables: unknown): string | null {
  if (typeof query === 'string' && query.length > MAX_QUERY_LENGTH) return `the query is longer than ${MAX_QUERY_LENGTH} characters`;
  const walk = (v: unknown, key: string, depth: number): string | null => {
    if (depth > 20) return 'variables are nested too deeply';
    if (typeof v === 'string') {
      const max = LONG_FIELDS.has(key) ? MAX_LONG_STRING : MAX_VARIABLE_STRING;
      return v.length > max ? `variable field "${key.slice(0, 40)}" is longer than ${max} characters` : null;
    }
    if (Array.isArray(v)) {
      if (v.length > 1000) return `variable field "${key.slice(0, 40)}" has more than 1000 items`;
      for (const x of v) { const e = walk(x, key, depth + 1); if (e) return e; }
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) { const e = walk(x, k, depth + 1); if (e) return e; }
    }
    return null;
  };
  return walk(variables, '', 0);
}

function useInputBounds(): YogaPlugin {
  return {
    onParams({ params }) {
      const problem = oversizedInput(params.query, params.variables);
      if (problem) throw createGraphQLError(problem, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
    },
  };
}

/**
 * Yoga plugin: graphql-js executes, instead of Yoga's default executor (@graphql-tools/executor,
 * which adds @defer/@stream, unused here, and its own per-field overhead that showed in the load
 * profile): the same results (docs/benchmarks/load.md).
 */
function useGraphQLJsExecution(): YogaPlugin {
  return {
    onExecute({ setExecuteFn }) { setExecuteFn(graphqlExecute as Parameters<typeof setExecuteFn>[0]); },
    onSubscribe({ setSubscribeFn }) { setSubscribeFn(subscribeShared as Parameters<typeof setSubscribeFn>[0]); },
  };
}

/** Yoga plugin: every HTTP request but GraphiQL's page needs a valid bearer token. */
function useBearerAuth(tokens: Tokens): YogaPlugin {
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      // GraphiQL's page holds no data: it is served to anyone (its queries need the token).
      if (shouldRenderGraphiQL(request)) return;
      if (!roleFor(tokens, request.headers.get('authorization'))) {
        endResponse(
          new fetchAPI.Response(JSON.stringify({ errors: [{ message: 'a valid bearer token is required', extensions: { code: 'UNAUTHENTICATED' } }] }), {
            status: 401,
            headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' },
          }),
        );
      }
    },
  };
}

export async function buildApp(opts: AppOptions): Promise<WildBackupApp> {
  const store = new WildStore(opts.dataDir);
  const releaseLock = await lockDataDir(store.paths.stateDir);
  try {
    return await build(opts, store, releaseLock);
  } catch (err) {
    await releaseLock();
    throw err;
  }
}

async function build(opts: AppOptions, store: WildStore, releaseLock: () => Promise<void>): Promise<WildBackupApp> {
  const tokens = await loadTokens(store.paths, opts.env ?? process.env);
  processSecrets.add(tokens.admin, tokens.readOnly);
  // Every helper pod this run makes carries the server's id (kept in the data directory) and this
  // run's id, so the next start can tell the ones this run left behind (src/engine/helper-sweep.ts).
  const owner = { server: await loadServerId(store.paths), run: newRunId() };
  setHelperPodOwner(owner);
  const pubsub = new PubSub<OperationTopics>();
  const engine = new OperationEngine({ paths: store.paths, pubsub, concurrency: opts.concurrency, recoveryRetryMs: opts.recoveryRetryMs });
  const repositories = new RepositoryService(store, engine, { statusTimeoutMs: opts.repositoryTimeoutMs });
  const backups = new BackupService(store, engine, repositories, { stallTimeoutMs: opts.stallTimeoutMs, startTimeoutMs: opts.startTimeoutMs, leftoverRetryMs: opts.leftoverRetryMs });
  for (const kind of ['BACKUP_APP', 'BACKUP_CLUSTER'] as const) {
    engine.onRecovery(kind, async (rec, log) => {
      if (!rec.backupId) return;
      const inst = await store.instance(rec.instanceName);
      if (inst) await backups.removeIncomplete(inst, rec.backupId, log);
    });
  }
  const cluster = new ClusterService({ timeoutMs: opts.clusterTimeoutMs });
  backups.planner = clusterPlanner(cluster, { helperImage: opts.helperImage, lockWaitMs: opts.lockWaitMs });
  const restores = new RestoreService(store, engine, repositories, backups, cluster, { helperImage: opts.helperImage, lockWaitMs: opts.lockWaitMs });
  // A drill's record holds only side copies to drop (never swapped, nothing scaled).
  engine.onRecovery('VERIFY_BACKUP', (rec, log) => restores.recover(rec, log));
  engine.onRecovery('RESTORE_APP', async (rec, log) => {
    await restores.recover(rec, log);
    const inst = rec.backupId ? await store.instance(rec.instanceName) : null;
    if (inst && rec.backupId) await backups.removeIncomplete(inst, rec.backupId, log); // an unfinished safety backup
  });
  const maintenance = new MaintenanceService(store, engine, repositories, backups);
  const schedules = new ScheduleService(store, engine, backups, maintenance, restores, opts.scheduleTiming);
  const services: Services = { store, engine, pubsub, repositories, backups, cluster, restores, maintenance, schedules };
  const instanceNames = await store.instanceNames();
  // Before the start-up recovery, whose hooks make new helper pods for the same volumes: a helper
  // pod of a killed run would keep a ReadWriteOnce volume attached. Bounded; never fails the start
  // (a silent cluster is swept again in the background).
  const sweeper = new HelperPodSweeper(store, cluster, owner, { timeoutMs: opts.helperSweepTimeoutMs, retryMs: opts.helperSweepRetryMs });
  try {
    await sweeper.sweep(instanceNames);
    await engine.init(instanceNames);
    // After recovery: a run missed while the server was down happens now, once.
    await schedules.startAll();
  } catch (err) {
    await sweeper.stop(); // no background retry for a server that did not start
    if (helperPodOwner()?.run === owner.run) setHelperPodOwner(undefined);
    throw err;
  }

  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    maxRequestBodySize: false, // bounded before Yoga sees the request (below)
    logging: false,
    context: (init) => {
      const role = (init as { role?: Role }).role ?? roleFor(tokens, (init as { request?: Request }).request?.headers.get('authorization')) ?? 'readonly';
      return { services, role };
    },
    maskedErrors: {
      maskError(error, message) {
        // graphql ships CJS and ESM builds, so `instanceof GraphQLError` is unreliable: duck-type.
        const isGraphQLError = error instanceof Error && error.name === 'GraphQLError';
        const original = isGraphQLError ? (error as GraphQLError).originalError ?? null : error;
        // restic's failures carry their own code (RESTIC_WRONG_PASSWORD, RESTIC_UNREACHABLE…): a
        // query that meets one says what it was, as for a WildError.
        if (original instanceof WildError || original instanceof ResticError) {
          return new GraphQLError(scrub(original.message), { extensions: { code: original.code } });
        }
        if (isGraphQLError && !original) return error as GraphQLError;
        // Input coercion failures (a number for a String, an unknown enum value) are the client's.
        const gqlError = error as GraphQLError;
        if (isGraphQLError && ((original as Error)?.name === 'GraphQLError' || gqlError.extensions?.code === 'BAD_USER_INPUT')) {
          return new GraphQLError(scrub(gqlError.message), { nodes: gqlError.nodes, extensions: { code: 'BAD_USER_INPUT' } });
        }
        log.error('unexpected error', { error: scrub(String((original as Error)?.stack ?? original)) });
        return new GraphQLError(message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      },
    },
    graphiql: (request) => {
      const token = new URL(request.url).searchParams.get('token');
      const role = roleFor(tokens, token);
      return {
        title: 'Wild Backup',
        subscriptionsProtocol: 'WS',
        shouldPersistHeaders: false,
        headers: role ? JSON.stringify({ Authorization: `Bearer ${token}` }) : JSON.stringify({ Authorization: 'Bearer <token>' }),
        defaultQuery: '{\n  instances {\n    name\n    apps { name databases { engine databaseName included reason } }\n  }\n}\n',
      };
    },
    // GraphiQL's bundle is 9 MB inlined (~40 MiB of heap): loaded on the first page view only.
    renderGraphiQL: async (o) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(o),
    plugins: [
      useGraphQLJsExecution(),
      useBearerAuth(tokens),
      useInputBounds(),
      maxDepthPlugin({ n: opts.maxDepth ?? 12, ignoreIntrospection: true, exposeLimits: true }),
      costLimitPlugin({ maxCost: opts.maxCost ?? 20_000, ignoreIntrospection: true, exposeLimits: true }),
    ],
  });

  const gate = new ClientGate(opts.clientLimits);

  /** Runs `handle` once the client's gate admits it; the slot is freed when the response head goes
   *  out (a subscription's SSE stream then lives on without holding one) or the client goes away. */
  const gated = (req: http.IncomingMessage, res: http.ServerResponse, handle: (role: Role | null) => unknown): void => {
    const role = roleFor(tokens, req.headers.authorization);
    const ticket = gate.acquire(clientKey(req.socket.remoteAddress, role));
    if (!ticket) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ errors: [RATE_LIMITED] }));
      return;
    }
    const writeHead = res.writeHead;
    res.writeHead = function (this: http.ServerResponse, ...args: Parameters<typeof writeHead>) {
      ticket.release();
      return writeHead.apply(this, args);
    } as typeof writeHead;
    res.once('close', () => ticket.release());
    ticket.ready.then(() => {
      if (res.destroyed) return; // gave up while waiting
      void handle(role);
    }, () => undefined);
  };

  // Subscriptions (graphql-ws and SSE) are set up a batch per turn of the event loop.
  const setupLane = new SetupLane();
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, runningOperations: engine.activeCount() }));
      return;
    }
    if (req.url === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      if (!roleFor(tokens, req.headers.authorization)) { res.writeHead(401, { 'www-authenticate': 'Bearer' }).end(); return; }
      gated(req, res, () => renderMetrics(services).then((text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) => { log.error('metrics failed', { error: scrub(String(err)) }); res.writeHead(500).end(); }));
      return;
    }
    const problem = bodyLengthProblem(req);
    if (problem) {
      res.writeHead(problem.status, { 'content-type': 'application/json', connection: 'close' })
        .end(JSON.stringify({ errors: [{ message: problem.message, extensions: { code: problem.code } }] }));
      return;
    }
    if (fastPathCandidate(req)) {
      gated(req, res, (role) => answerPost(yoga, req, res, role, oversizedInput));
      return;
    }
    const subscription = req.headers.accept?.includes('text/event-stream') === true; // SSE
    gated(req, res, () => (subscription ? setupLane.turn().then(() => yoga.handle(req, res)) : yoga.handle(req, res)));
  });

  /** The gate over graphql-ws: a query holds a slot while it executes, a subscription while it sets up. */
  const gatedWs = <A, R>(client: string, run: (args: A) => R) => async (args: A): Promise<Awaited<R> | { errors: GraphQLError[] }> => {
    const ticket = gate.acquire(client);
    if (!ticket) return { errors: [new GraphQLError(RATE_LIMITED.message, { extensions: RATE_LIMITED.extensions })] };
    try {
      await ticket.ready;
      return await run(args);
    } finally {
      ticket.release();
    }
  };

  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  // ws re-emits the HTTP server's errors here; graphql-ws listens only once.
  wss.on('error', (err) => log.error('websocket server error', { error: String(err) }));
  const wsServer = useServer<Record<string, unknown>, { role?: Role }>(
    {
      execute: (args) => (args.rootValue as { execute: (a: unknown) => never }).execute(args),
      subscribe: (args) => (args.rootValue as { subscribe: (a: unknown) => never }).subscribe(args),
      onConnect: (ctx) => {
        const role = roleFor(tokens, ctx.connectionParams?.authorization);
        if (!role) {
          ctx.extra.socket.close(4401, 'Unauthorized');
          return false;
        }
        (ctx.extra as { role?: Role }).role = role;
        return true;
      },
      onSubscribe: async (ctx, _id, params) => {
        await setupLane.turn();
        const role = (ctx.extra as { role?: Role }).role;
        const client = clientKey(ctx.extra.request.socket.remoteAddress, role ?? null);
        const { schema: s, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
          role,
        });
        const problem = oversizedInput(params.query, params.variables);
        if (problem) return [new GraphQLError(problem, { extensions: { code: 'BAD_USER_INPUT' } })];
        // Parse and validation failures (graphql-armor's depth and cost rules throw) answer this
        // operation; thrown out of onSubscribe they would close the whole socket (4500).
        const asErrors = (err: unknown) => [err instanceof GraphQLError ? err : new GraphQLError(scrub((err as Error)?.message ?? String(err)))];
        let document;
        try {
          document = parse(params.query);
        } catch (err) {
          return asErrors(err);
        }
        let errors;
        try {
          errors = validate(s, document);
        } catch (err) {
          return asErrors(err);
        }
        if (errors.length > 0) return errors;
        return {
          schema: s,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute: gatedWs(client, execute), subscribe: gatedWs(client, subscribe) },
        };
      },
    },
    wss,
  );

  // A blocked event loop is every client waiting: say so in the log when it happens.
  let tick = performance.now();
  const stallWatch = setInterval(() => {
    const now = performance.now();
    const late = now - tick - STALL_CHECK_MS;
    tick = now;
    if (late > STALL_LOG_MS) log.warn('the event loop was blocked', { ms: Math.round(late) });
  }, STALL_CHECK_MS);
  stallWatch.unref();

  let stopped = false;
  return {
    services,
    tokens,
    gate,
    yoga,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 4000, opts.host ?? '127.0.0.1', () => resolve());
      });
      const { port, address } = server.address() as AddressInfo;
      const host = address.includes(':') ? `[${address}]` : address;
      return { url: `http://${host}:${port}/graphql`, port };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(stallWatch);
      schedules.stop();
      backups.leftovers.close();
      await sweeper.stop();
      await engine.stop();
      await backups.catalog.close();
      if (helperPodOwner()?.run === owner.run) setHelperPodOwner(undefined);
      await wsServer.dispose();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await releaseLock();
    },
  };
}
