// A small typed REST layer over node:https for the Kubernetes calls Wild Backup makes. It keeps the
// method names and parameter shapes of @kubernetes/client-node's generated APIs (`listNamespacedPod(
// { namespace, labelSelector }, options)`), and its model types (type-only imports: nothing of
// client-node is loaded at run time; its module graph costs ~80 MiB of RSS, docs/design/kube-sim.md).
// Objects are plain JSON as the API server sends them (timestamps stay RFC 3339 strings; nothing
// here reads them as Date). A non-2xx answer throws KubeApiError with the Status's reason/message.
import http from 'node:http';
import https from 'node:https';
import type {
  V1Deployment, V1DeploymentList, V1NamespaceList, V1PersistentVolumeClaimList, V1Pod, V1PodList, V1Scale, V1Secret,
  V1StatefulSet, V1StatefulSetList, VersionInfo,
} from '@kubernetes/client-node';
import { KubeApiError } from './errors.js';
import type { Kubeconfig } from './kubeconfig.js';

/** Per-call options (the second argument of every method, as client-node's ConfigurationOptions was). */
export interface RequestOptions {
  signal?: AbortSignal;
}

/**
 * Bound of a request made without a signal (KubeClient.call always passes one, with its own
 * timeout): an API server that accepts the connection and never answers must not hold a caller forever.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/** Largest response body accepted (a list of thousands of pods is a few MiB). */
const MAX_RESPONSE = 64 << 20;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
type Query = Record<string, string | number | boolean | undefined>;

export class RestClient {
  private readonly agent: http.Agent;
  private readonly base: URL;

  constructor(readonly kc: Kubeconfig) {
    this.base = new URL(kc.server);
    // One keep-alive pool per cluster (idle sockets are unref'd by node and closed after 5 s).
    this.agent = this.base.protocol === 'http:'
      ? new http.Agent({ keepAlive: true, timeout: 5_000 })
      : new https.Agent({ keepAlive: true, timeout: 5_000, ...kc.tlsOptions() });
  }

  /** Sends one request and parses the JSON answer; `query` values that are undefined are left out. */
  async request<T>(method: Method, path: string, o: { query?: Query; body?: unknown; contentType?: string; signal?: AbortSignal | undefined } = {}): Promise<T> {
    const url = new URL(this.base.pathname.replace(/\/+$/, '') + path, this.base);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k === '_continue' ? 'continue' : k, String(v));
    const body = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const headers: Record<string, string | number> = { Accept: 'application/json' };
    const authz = this.kc.authorization();
    if (authz) headers.Authorization = authz;
    if (body) { headers['Content-Type'] = o.contentType ?? 'application/json'; headers['Content-Length'] = body.length; }
    const lib = url.protocol === 'http:' ? http : https;
    const signal = o.signal ?? AbortSignal.timeout(DEFAULT_REQUEST_TIMEOUT_MS);
    return new Promise<T>((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: this.agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE) { req.destroy(new Error(`response larger than ${MAX_RESPONSE} bytes`)); return; }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code < 200 || code > 299) {
            let status: { reason?: string; message?: string } = {};
            try { status = JSON.parse(text) as typeof status; } catch { status = { message: text.slice(0, 300) }; }
            reject(new KubeApiError(code, status.reason ?? 'Unknown', status.message || `HTTP ${code}`));
            return;
          }
          try { resolve((text ? JSON.parse(text) : {}) as T); } catch (err) { reject(new Error(`invalid JSON from ${method} ${path}: ${(err as Error).message}`)); }
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.agent.destroy();
  }
}

const seg = encodeURIComponent;

/** Query parameters of a request object: everything but the path parameters and the body. */
function q(p: object | undefined): Query {
  const out: Query = {};
  for (const [k, v] of Object.entries(p ?? {})) if (k !== 'namespace' && k !== 'name' && k !== 'body' && v !== undefined) out[k] = v as string | number | boolean;
  return out;
}

/** A JSON Patch (array) or else a JSON merge patch. */
function patchType(body: unknown): string {
  return Array.isArray(body) ? 'application/json-patch+json' : 'application/merge-patch+json';
}

export interface ListRequest {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  _continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
  timeoutSeconds?: number;
  pretty?: string;
}
export interface NamespacedListRequest extends ListRequest { namespace: string }
export interface ReadRequest { namespace: string; name: string; pretty?: string }
export interface WriteOptions { pretty?: string; dryRun?: string; fieldManager?: string; fieldValidation?: string }
export interface CreateRequest<T> extends WriteOptions { namespace: string; body: T }
export interface ReplaceRequest<T> extends WriteOptions { namespace: string; name: string; body: T }
export interface PatchRequest extends WriteOptions { namespace: string; name: string; body: object; force?: boolean }
export interface DeleteRequest {
  namespace: string;
  name: string;
  pretty?: string;
  dryRun?: string;
  gracePeriodSeconds?: number;
  propagationPolicy?: string;
  orphanDependents?: boolean;
  /** V1DeleteOptions; sent as the body when given. */
  body?: object;
}

/** core/v1: the calls Wild Backup makes (same names and shapes as client-node's CoreV1Api). */
export class CoreV1Api {
  constructor(private readonly rest: RestClient) {}

  listNamespace(param: ListRequest = {}, o: RequestOptions = {}): Promise<V1NamespaceList> {
    return this.rest.request('GET', '/api/v1/namespaces', { query: q(param), signal: o.signal });
  }
  listNamespacedPod(param: NamespacedListRequest, o: RequestOptions = {}): Promise<V1PodList> {
    return this.rest.request('GET', `/api/v1/namespaces/${seg(param.namespace)}/pods`, { query: q(param), signal: o.signal });
  }
  listPodForAllNamespaces(param: ListRequest = {}, o: RequestOptions = {}): Promise<V1PodList> {
    return this.rest.request('GET', '/api/v1/pods', { query: q(param), signal: o.signal });
  }
  readNamespacedPod(param: ReadRequest, o: RequestOptions = {}): Promise<V1Pod> {
    return this.rest.request('GET', `/api/v1/namespaces/${seg(param.namespace)}/pods/${seg(param.name)}`, { query: q(param), signal: o.signal });
  }
  createNamespacedPod(param: CreateRequest<V1Pod>, o: RequestOptions = {}): Promise<V1Pod> {
    return this.rest.request('POST', `/api/v1/namespaces/${seg(param.namespace)}/pods`, { query: q(param), body: param.body, signal: o.signal });
  }
  deleteNamespacedPod(param: DeleteRequest, o: RequestOptions = {}): Promise<V1Pod> {
    return this.rest.request('DELETE', `/api/v1/namespaces/${seg(param.namespace)}/pods/${seg(param.name)}`, { query: q(param), body: param.body, signal: o.signal });
  }
  listNamespacedPersistentVolumeClaim(param: NamespacedListRequest, o: RequestOptions = {}): Promise<V1PersistentVolumeClaimList> {
    return this.rest.request('GET', `/api/v1/namespaces/${seg(param.namespace)}/persistentvolumeclaims`, { query: q(param), signal: o.signal });
  }
  readNamespacedSecret(param: ReadRequest, o: RequestOptions = {}): Promise<V1Secret> {
    return this.rest.request('GET', `/api/v1/namespaces/${seg(param.namespace)}/secrets/${seg(param.name)}`, { query: q(param), signal: o.signal });
  }
}

/** apps/v1: Deployments and StatefulSets and their scale subresource (client-node's AppsV1Api names). */
export class AppsV1Api {
  constructor(private readonly rest: RestClient) {}

  private path(kind: 'deployments' | 'statefulsets', namespace: string, name?: string, sub?: string): string {
    return `/apis/apps/v1/namespaces/${seg(namespace)}/${kind}${name === undefined ? '' : `/${seg(name)}`}${sub ? `/${sub}` : ''}`;
  }

  listNamespacedDeployment(param: NamespacedListRequest, o: RequestOptions = {}): Promise<V1DeploymentList> {
    return this.rest.request('GET', this.path('deployments', param.namespace), { query: q(param), signal: o.signal });
  }
  listNamespacedStatefulSet(param: NamespacedListRequest, o: RequestOptions = {}): Promise<V1StatefulSetList> {
    return this.rest.request('GET', this.path('statefulsets', param.namespace), { query: q(param), signal: o.signal });
  }
  readNamespacedDeployment(param: ReadRequest, o: RequestOptions = {}): Promise<V1Deployment> {
    return this.rest.request('GET', this.path('deployments', param.namespace, param.name), { query: q(param), signal: o.signal });
  }
  readNamespacedStatefulSet(param: ReadRequest, o: RequestOptions = {}): Promise<V1StatefulSet> {
    return this.rest.request('GET', this.path('statefulsets', param.namespace, param.name), { query: q(param), signal: o.signal });
  }
  readNamespacedDeploymentScale(param: ReadRequest, o: RequestOptions = {}): Promise<V1Scale> {
    return this.rest.request('GET', this.path('deployments', param.namespace, param.name, 'scale'), { query: q(param), signal: o.signal });
  }
  readNamespacedStatefulSetScale(param: ReadRequest, o: RequestOptions = {}): Promise<V1Scale> {
    return this.rest.request('GET', this.path('statefulsets', param.namespace, param.name, 'scale'), { query: q(param), signal: o.signal });
  }
  replaceNamespacedDeploymentScale(param: ReplaceRequest<V1Scale>, o: RequestOptions = {}): Promise<V1Scale> {
    return this.rest.request('PUT', this.path('deployments', param.namespace, param.name, 'scale'), { query: q(param), body: param.body, signal: o.signal });
  }
  replaceNamespacedStatefulSetScale(param: ReplaceRequest<V1Scale>, o: RequestOptions = {}): Promise<V1Scale> {
    return this.rest.request('PUT', this.path('statefulsets', param.namespace, param.name, 'scale'), { query: q(param), body: param.body, signal: o.signal });
  }
  /** `body` is a JSON Patch when it is an array, else a JSON merge patch (e.g. `{ spec: { replicas: 0 } }`). */
  patchNamespacedDeploymentScale(param: PatchRequest, o: RequestOptions = {}): Promise<V1Scale> {
    return this.rest.request('PATCH', this.path('deployments', param.namespace, param.name, 'scale'), { query: q(param), body: param.body, contentType: patchType(param.body), signal: o.signal });
  }
  /** `body` is a JSON Patch when it is an array, else a JSON merge patch. */
  patchNamespacedStatefulSetScale(param: PatchRequest, o: RequestOptions = {}): Promise<V1Scale> {
    return this.rest.request('PATCH', this.path('statefulsets', param.namespace, param.name, 'scale'), { query: q(param), body: param.body, contentType: patchType(param.body), signal: o.signal });
  }
}

/** /version (client-node's VersionApi). */
export class VersionApi {
  constructor(private readonly rest: RestClient) {}

  getCode(param: object = {}, o: RequestOptions = {}): Promise<VersionInfo> {
    // Tolerates the one-argument form `getCode(options)` (the first argument of client-node's is the request).
    const opts = 'signal' in param && !('signal' in o) ? (param as RequestOptions) : o;
    return this.rest.request('GET', '/version', { signal: opts.signal });
  }
}
