// One Kubernetes client per Wild Cloud instance, from its kubeconfig: a small typed REST layer
// (rest.ts, same method names and shapes as client-node's generated APIs) with per-call
// cancellation and timeouts, and failures mapped to our typed errors. client-node is used for its
// model types only (type-only imports): loading it costs ~80 MiB of RSS (docs/design/kube-sim.md).
import { Kubeconfig } from './kubeconfig.js';
import { AppsV1Api, CoreV1Api, RestClient, VersionApi, type RequestOptions } from './rest.js';
import { ClusterUnreachableError, KubeAbortedError, KubeApiError, KubeError, KubeNotFoundError } from './errors.js';

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
  private readonly rest: RestClient;

  constructor(readonly kc: Kubeconfig) {
    this.rest = new RestClient(kc);
    this.core = new CoreV1Api(this.rest);
    this.apps = new AppsV1Api(this.rest);
    this.versionApi = new VersionApi(this.rest);
  }

  get server(): string {
    return this.kc.server;
  }

  /**
   * Runs one API call with cancellation, a timeout and typed errors.
   * `what` names the object for NotFound (`{ kind: 'pod', namespace, name }`).
   */
  async call<T>(fn: (opts: RequestOptions) => Promise<T>, opts: CallOptions = {}, what?: { kind: string; namespace?: string; name: string }): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    try {
      return await fn({ signal });
    } catch (err) {
      throw this.mapError(err, opts.signal, timeout, timeoutMs, what);
    }
  }

  mapError(err: unknown, userSignal: AbortSignal | undefined, timeout: AbortSignal, timeoutMs: number, what?: { kind: string; namespace?: string; name: string }): Error {
    if (userSignal?.aborted) return new KubeAbortedError('Kubernetes request', userSignal.reason);
    if (timeout.aborted) return new ClusterUnreachableError(this.server, `no answer within ${timeoutMs} ms`, { cause: err });
    if (err instanceof KubeApiError) return err.status === 404 && what ? new KubeNotFoundError(what.kind, what.namespace, what.name) : err;
    if (err instanceof KubeError) return err; // already typed (e.g. a token file that cannot be read)
    const e = err as { code?: unknown; message?: string; cause?: { code?: string; message?: string } };
    const cause = (typeof e.code === 'string' ? e.code : undefined) ?? e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
    return new ClusterUnreachableError(this.server, cause, { cause: err });
  }

  /** Closes the idle keep-alive connections of the REST client (open calls and exec streams go on). */
  close(): void {
    this.rest.close();
  }
}

/**
 * A client for the cluster of a kubeconfig file (an instance's `<data>/instances/<n>/kubeconfig`).
 * Throws KubeconfigError when the file cannot be read or uses what is not supported (kubeconfig.ts).
 */
export function kubeClientFor(kubeconfigPath: string, context?: string): KubeClient {
  return new KubeClient(Kubeconfig.load(kubeconfigPath, context));
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
    const v = await client.call((o) => client.versionApi.getCode({}, o), { timeoutMs: 5_000, ...opts });
    return { reachable: true, version: v.gitVersion };
  } catch (err) {
    return { reachable: false, error: err instanceof Error ? err.message : String(err) };
  }
}
