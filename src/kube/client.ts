// One Kubernetes client per Wild Cloud instance, from its kubeconfig: the REST APIs of client-node
// with per-call cancellation and timeouts, and client-node's errors mapped to ours.
import './node-compat.js';
import {
  AppsV1Api, CoreV1Api, KubeConfig, Observable, ServerConfiguration, VersionApi, createConfiguration,
  type ConfigurationOptions,
} from '@kubernetes/client-node';
import { nodeHttpLibrary } from './http.js';
import { ClusterUnreachableError, KubeAbortedError, KubeApiError, KubeNotFoundError } from './errors.js';

export type ExecProtocol = 'v5.channel.k8s.io' | 'v4.channel.k8s.io';

export interface CallOptions {
  /** Cancels the call and closes its connection. */
  signal?: AbortSignal;
  /** Per-request timeout in ms (default 30 s); past it the cluster counts as unreachable. */
  timeoutMs?: number;
}

export class KubeClient {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly versionApi: VersionApi;
  /** The exec subprotocol this cluster negotiated the first time (undefined until then). */
  execProtocol: ExecProtocol | undefined;

  constructor(readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new ClusterUnreachableError('(none)', 'the kubeconfig names no current cluster');
    // Credentials and TLS are applied by our HTTP library (applyToHTTPSOptions), so the auth method is a no-op.
    const config = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: { getName: () => 'kubeconfig', applySecurityAuthentication: async () => undefined } },
      httpApi: nodeHttpLibrary(kc),
    });
    this.core = new CoreV1Api(config);
    this.apps = new AppsV1Api(config);
    this.versionApi = new VersionApi(config);
  }

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '(no cluster in kubeconfig)';
  }

  /**
   * Runs one API call with cancellation, a timeout and typed errors.
   * `what` names the object for NotFound (`{ kind: 'pod', namespace, name }`).
   */
  async call<T>(fn: (opts: ConfigurationOptions) => Promise<T>, opts: CallOptions = {}, what?: { kind: string; namespace?: string; name: string }): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const config: ConfigurationOptions = {
      middleware: [{
        pre: (ctx) => { ctx.setSignal(signal); return new Observable(Promise.resolve(ctx)); },
        post: (res) => new Observable(Promise.resolve(res)),
      }],
      middlewareMergeStrategy: 'append',
    };
    try {
      return await fn(config);
    } catch (err) {
      throw this.mapError(err, opts.signal, timeout, timeoutMs, what);
    }
  }

  mapError(err: unknown, userSignal: AbortSignal | undefined, timeout: AbortSignal, timeoutMs: number, what?: { kind: string; namespace?: string; name: string }): Error {
    if (userSignal?.aborted) return new KubeAbortedError('Kubernetes request', userSignal.reason);
    if (timeout.aborted) return new ClusterUnreachableError(this.server, `no answer within ${timeoutMs} ms`, { cause: err });
    const e = err as { code?: unknown; body?: unknown; message?: string; cause?: { code?: string; message?: string } };
    if (typeof e.code === 'number' && e.code >= 400) {
      const status = parseStatus(e.body);
      if (e.code === 404 && what) return new KubeNotFoundError(what.kind, what.namespace, what.name);
      return new KubeApiError(e.code, status?.reason ?? 'Unknown', status?.message ?? `HTTP ${e.code}`);
    }
    const cause = e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
    return new ClusterUnreachableError(this.server, cause, { cause: err });
  }
}

function parseStatus(body: unknown): { reason?: string; message?: string } | undefined {
  if (typeof body === 'string') {
    try { return JSON.parse(body) as { reason?: string; message?: string }; } catch { return { message: body.slice(0, 300) }; }
  }
  if (body && typeof body === 'object') return body as { reason?: string; message?: string };
  return undefined;
}

/** A client for the cluster of a kubeconfig file (an instance's `<data>/instances/<n>/kubeconfig`). */
export function kubeClientFor(kubeconfigPath: string, context?: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  if (context) kc.setCurrentContext(context);
  return new KubeClient(kc);
}

export interface ClusterStatus {
  reachable: boolean;
  /** gitVersion, e.g. v1.32.3 */
  version?: string;
  error?: string;
}

/** Whether the cluster answers, and its version; never throws (default timeout 5 s). */
export async function clusterVersion(client: KubeClient, opts: CallOptions = {}): Promise<ClusterStatus> {
  try {
    const v = await client.call((o) => client.versionApi.getCode(o), { timeoutMs: 5_000, ...opts });
    return { reachable: true, version: v.gitVersion };
  } catch (err) {
    return { reachable: false, error: err instanceof Error ? err.message : String(err) };
  }
}
