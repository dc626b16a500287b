// The simulated cluster's HTTP API server on loopback: bearer-token auth, discovery, CRUD of the
// resources in resources.ts with real List/Status shapes, the scale subresource, and pod exec.
import { constants as cryptoConstants } from 'node:crypto';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { cipherList } from '../kube/ciphers.js';
import { logger } from '../util/log.js';
import { ExecEndpoint, EXEC_PROTOCOLS, writeHttpError, type ExecProtocol } from './exec.js';
import { ApiError, matchesFields, matchesLabels, parseLabelSelector, statusBody, type KubeObject } from './objects.js';
import { apiGroupList, resourceByPlural, resourceList, type ResourceDef } from './resources.js';
import type { SimRuntime } from './runtime.js';
import type { WorkloadPlural } from './workloads.js';

/**
 * TLS suites in the order a Go server (kube-apiserver, k3s, Talos) chooses them on a machine with
 * AES instructions, which is the order our client offers there (src/kube/ciphers.ts): AES-128-GCM
 * first for a client that prefers AES-GCM (Node's server order would choose AES-256-GCM, ~10 % more
 * CPU per byte at both ends of every exec stream: docs/BENCHMARKS.md, 2026-11-28), and
 * ChaCha20-Poly1305 for a client that lists it first, as a client on a CPU without AES
 * instructions does (OpenSSL's SSL_OP_PRIORITIZE_CHACHA, below: Go's rule).
 */
const CIPHERS = cipherList('aes');

const log = logger('sim.api');

export const SIM_VERSION = {
  major: '1', minor: '32', gitVersion: 'v1.32.3+wildsim', gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23.6', compiler: 'gc', platform: 'linux/amd64',
};

export interface SimApiServerOptions {
  runtime: SimRuntime;
  token: string;
  host?: string;
  /** 0 or absent: a free port. */
  port?: number;
  /** The exec subprotocols offered (default v5 and v4). */
  execProtocols?: readonly ExecProtocol[];
  /** Server certificate and key (kubectl sends a bearer token only over TLS). */
  tls: { certPem: string; keyPem: string };
}

interface Route { def: ResourceDef; ns?: string; name?: string; sub?: string }

export class SimApiServer {
  private readonly server: https.Server;
  private readonly exec: ExecEndpoint;
  private readonly sockets = new Set<Socket>();
  /** The TLS side of each connection: what HTTP and the exec WebSockets read and write. */
  private readonly tlsSockets = new Set<TLSSocket>();
  private readonly rt: SimRuntime;
  private readonly token: string;
  private boundPort = 0;
  private hanging = false;
  /** Requests and upgrades that arrived while hanging, answered when it stops (or cut by stop()). */
  private held: Array<() => void> = [];

  constructor(private readonly opts: SimApiServerOptions) {
    this.rt = opts.runtime;
    this.token = opts.token;
    this.exec = new ExecEndpoint(this.rt, opts.execProtocols ?? EXEC_PROTOCOLS);
    this.server = https.createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem, ciphers: CIPHERS, honorCipherOrder: true, secureOptions: cryptoConstants.SSL_OP_PRIORITIZE_CHACHA }, (req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on('connection', (s: Socket) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)); });
    this.server.on('secureConnection', (s: TLSSocket) => { this.tlsSockets.add(s); s.once('close', () => this.tlsSockets.delete(s)); });
  }

  get url(): string {
    return `https://${this.opts.host ?? '127.0.0.1'}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Changes the exec subprotocols offered from now on. */
  setExecProtocols(protocols: readonly ExecProtocol[]): void {
    this.exec.protocols = protocols;
  }

  /**
   * Fault injection: while hanging, the server accepts connections (TCP and TLS complete) but answers
   * nothing, and every open connection, exec streams included, freezes both ways (reads paused,
   * writes corked): an API server whose backend (etcd) is gone, or a network that drops everything.
   * `false` answers what waited and thaws the open connections.
   */
  setHanging(on: boolean): void {
    if (on === this.hanging) return;
    this.hanging = on;
    for (const s of this.tlsSockets) {
      if (on) {
        s.pause();
        s.cork();
        // An exec session resumes its socket when its command's stdin drains: not while frozen.
        (s as TLSSocket & { resume: () => TLSSocket }).resume = () => s;
      } else {
        delete (s as Partial<TLSSocket>).resume; // the prototype's again
        s.uncork();
        s.resume();
      }
    }
    if (!on) {
      const held = this.held;
      this.held = [];
      for (const go of held) go();
    }
  }

  get isHanging(): boolean {
    return this.hanging;
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this.url;
  }

  /** Stops listening and cuts every connection, exec streams included (a cluster going down). */
  async stop(): Promise<void> {
    this.exec.closeAll();
    this.held = [];
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private authorized(req: http.IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    return h === `Bearer ${this.token}`;
  }

  private onUpgrade(req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    if (this.hanging) {
      this.held.push(() => { if (!socket.destroyed) this.onUpgrade(req, socket, head); });
      return;
    }
    if (!this.authorized(req)) return writeHttpError(socket, statusBody(401, 'Unauthorized', 'Unauthorized'));
    const url = new URL(req.url ?? '/', 'http://sim');
    const m = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/);
    if (!m) return writeHttpError(socket, statusBody(404, 'NotFound', 'the server could not find the requested resource'));
    this.exec.handle(req, socket, head, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), url.searchParams);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.hanging) {
      // Read the body now (a paused socket would keep it), answer when the hang ends.
      const chunks: Buffer[] = [];
      let ended = false;
      let release: (() => void) | undefined;
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => { ended = true; release?.(); });
      this.held.push(() => {
        if (res.destroyed) return;
        release = () => this.answer(req, res, Buffer.concat(chunks));
        if (ended) release();
      });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 8 << 20) { this.send(res, 413, statusBody(413, 'RequestEntityTooLarge', 'the request body is too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => this.answer(req, res, Buffer.concat(chunks)));
  }

  private send(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): void {
    if (!this.authorized(req)) return this.send(res, 401, statusBody(401, 'Unauthorized', 'Unauthorized'));
    try {
      const [code, body] = this.dispatch(req, raw);
      this.send(res, code, body);
    } catch (err) {
      if (err instanceof ApiError) return this.send(res, err.status.code, err.status);
      log.error('request failed', { url: req.url, error: String(err) });
      this.send(res, 500, statusBody(500, 'InternalError', `Internal error occurred: ${String(err)}`));
    }
  }

  private dispatch(req: http.IncomingMessage, raw: Buffer): [number, unknown] {
    const url = new URL(req.url ?? '/', 'http://sim');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (p === '/version') return [200, SIM_VERSION];
    if (p === '/healthz' || p === '/livez' || p === '/readyz') return [200, 'ok'];
    if (p === '/api') return [200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.boundPort}` }] }];
    if (p === '/apis') return [200, apiGroupList()];
    if (p === '/api/v1') return [200, resourceList('')];
    if (p === '/apis/apps/v1') return [200, resourceList('apps')];
    if (p === '/apis/apps') { const gv = { groupVersion: 'apps/v1', version: 'v1' }; return [200, { kind: 'APIGroup', apiVersion: 'v1', name: 'apps', versions: [gv], preferredVersion: gv }]; }
    const route = parseRoute(p);
    if (!route) return [404, statusBody(404, 'NotFound', 'the server could not find the requested resource')];
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') throw ApiError.methodNotAllowed();
    const body = (): KubeObject => {
      try { return JSON.parse(raw.toString('utf8')) as KubeObject; } catch { throw ApiError.badRequest('the body of the request was in an unknown format - accepted media types include: application/json'); }
    };
    const { def, ns, name, sub } = route;
    const rt = this.rt;
    if (sub === 'exec') throw ApiError.badRequest('Upgrade request required');
    if (sub === 'scale') {
      if (def.plural !== 'deployments' && def.plural !== 'statefulsets') return [404, statusBody(404, 'NotFound', 'the server could not find the requested resource')];
      const plural = def.plural as WorkloadPlural;
      if (method === 'GET') return [200, rt.getScale(plural, ns!, name!)];
      if (method === 'PUT') return [200, rt.setScale(plural, ns!, name!, Number((body().spec as { replicas?: unknown } | undefined)?.replicas))];
      if (method === 'PATCH') {
        const patched = applyPatch(rt.getScale(plural, ns!, name!), body(), String(req.headers['content-type'] ?? ''));
        return [200, rt.setScale(plural, ns!, name!, Number((patched.spec as { replicas?: unknown } | undefined)?.replicas))];
      }
      throw ApiError.methodNotAllowed();
    }
    if (sub) return [404, statusBody(404, 'NotFound', 'the server could not find the requested resource')];
    if (name === undefined) {
      if (method === 'GET') {
        const ls = parseLabelSelector(url.searchParams.get('labelSelector'));
        const fs = url.searchParams.get('fieldSelector');
        const items = rt.store.list(def.plural, def.namespaced ? ns : undefined)
          .filter((o) => matchesLabels(ls, o.metadata.labels) && matchesFields(fs, o))
          .map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
        return [200, { kind: `${def.kind}List`, apiVersion: def.group ? `${def.group}/v1` : 'v1', metadata: { resourceVersion: rt.store.currentResourceVersion() }, items }];
      }
      if (method === 'POST') {
        if (def.namespaced && ns === undefined) throw ApiError.methodNotAllowed();
        return [201, rt.create(def.plural, ns, body())];
      }
      throw ApiError.methodNotAllowed();
    }
    switch (method) {
      case 'GET': return [200, rt.store.getOrThrow(def.plural, ns, name)];
      case 'PUT': return [200, rt.replace(def.plural, ns, name, body())];
      case 'PATCH': {
        const cur = rt.store.getOrThrow(def.plural, ns, name);
        const patched = applyPatch(cur, body(), String(req.headers['content-type'] ?? ''));
        delete patched.metadata.resourceVersion;
        return [200, rt.replace(def.plural, ns, name, patched)];
      }
      case 'DELETE': return [200, rt.remove(def.plural, ns, name)];
      default: throw ApiError.methodNotAllowed();
    }
  }
}

function parseRoute(p: string): Route | undefined {
  let m = p.match(/^\/api\/v1\/(.*)$/);
  let group: '' | 'apps' = '';
  if (!m) { m = p.match(/^\/apis\/apps\/v1\/(.*)$/); group = 'apps'; }
  if (!m) return undefined;
  const seg = m[1]!.split('/').map(decodeURIComponent);
  const get = (plural: string | undefined): ResourceDef | undefined => (plural ? resourceByPlural(group, plural) : undefined);
  if (seg[0] === 'namespaces' && seg.length >= 3) {
    const def = get(seg[2]);
    if (!def || !def.namespaced || seg.length > 5) return undefined;
    return { def, ns: seg[1], name: seg[3], sub: seg[4] };
  }
  const def = get(seg[0]);
  if (!def || seg.length > 3) return undefined;
  if (def.namespaced && seg.length > 1) return undefined;
  return { def, name: seg[1], sub: seg[2] };
}

/** JSON patch (RFC 6902: add/replace/remove/test), JSON merge patch, or strategic merge patch (kubectl's). */
function applyPatch(target: KubeObject, patch: unknown, contentType: string): KubeObject {
  const ct = contentType.split(';')[0]!.trim();
  if (ct === 'application/json-patch+json') {
    const doc = structuredClone(target) as unknown as Record<string, unknown>;
    for (const op of patch as Array<{ op: string; path: string; value?: unknown }>) {
      const parts = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      const last = parts.pop();
      let node: Record<string, unknown> | unknown[] = doc;
      for (const k of parts) {
        const next: unknown = Array.isArray(node) ? node[Number(k)] : node[k];
        if (typeof next !== 'object' || next === null) throw ApiError.invalid(target.kind, target.metadata.name, op.path, 'path does not exist');
        node = next as Record<string, unknown> | unknown[];
      }
      if (last === undefined) throw ApiError.badRequest('the whole document cannot be patched');
      if (Array.isArray(node)) {
        // An array's member is an index, or "-" (past the end) to append.
        const i = last === '-' ? node.length : Number(last);
        const bound = op.op === 'add' ? node.length : node.length - 1;
        if (!/^(0|[1-9]\d*|-)$/.test(last) || i > bound || (last === '-' && op.op !== 'add')) throw ApiError.invalid(target.kind, target.metadata.name, op.path, 'index out of range');
        if (op.op === 'add') node.splice(i, 0, op.value);
        else if (op.op === 'replace') node[i] = op.value;
        else if (op.op === 'remove') node.splice(i, 1);
        else if (op.op === 'test') { if (JSON.stringify(node[i]) !== JSON.stringify(op.value)) throw new ApiError(statusBody(422, 'Invalid', `the test operation failed at ${op.path}`)); }
        else throw ApiError.badRequest(`unsupported JSON patch operation ${op.op}`);
        continue;
      }
      if (op.op === 'remove') delete node[last];
      else if (op.op === 'add' || op.op === 'replace') node[last] = op.value;
      else if (op.op === 'test') { if (JSON.stringify(node[last]) !== JSON.stringify(op.value)) throw new ApiError(statusBody(422, 'Invalid', `the test operation failed at ${op.path}`)); }
      else throw ApiError.badRequest(`unsupported JSON patch operation ${op.op}`);
    }
    return doc as unknown as KubeObject;
  }
  if (ct === 'application/merge-patch+json') return mergePatch(structuredClone(target), patch, false) as KubeObject;
  if (ct === 'application/strategic-merge-patch+json') return mergePatch(structuredClone(target), patch, true) as KubeObject;
  throw new ApiError(statusBody(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`));
}

/**
 * The merge keys of the lists a strategic merge patch merges item by item (the core types' patch
 * strategy, for the fields kubectl set, edit and apply touch); other lists are replaced whole.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name', initContainers: 'name', ephemeralContainers: 'name', volumes: 'name', env: 'name',
  imagePullSecrets: 'name', volumeMounts: 'mountPath', volumeDevices: 'devicePath', ports: 'containerPort',
  volumeClaimTemplates: 'metadata.name',
};

const keyOf = (item: unknown, key: string): unknown =>
  key.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), item);

/**
 * RFC 7386 merge; with `strategic`, lists with a merge key merge item by item (an item with
 * `$patch: delete` removes its match) and kubectl's directives (`$setElementOrder/...`,
 * `$retainKeys`, `$deleteFromPrimitiveList/...`) are not stored.
 */
function mergePatch(target: unknown, patch: unknown, strategic: boolean, field = ''): unknown {
  if (strategic && Array.isArray(patch) && MERGE_KEYS[field]) {
    const key = MERGE_KEYS[field]!;
    const out = Array.isArray(target) ? [...target] : [];
    for (const item of patch) {
      const at = out.findIndex((x) => keyOf(x, key) === keyOf(item, key));
      const del = typeof item === 'object' && item !== null && (item as Record<string, unknown>).$patch === 'delete';
      if (del) { if (at >= 0) out.splice(at, 1); continue; }
      if (at >= 0) out[at] = mergePatch(out[at], item, true);
      else out.push(mergePatch(undefined, item, true));
    }
    return out;
  }
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (strategic && k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, strategic, k);
  }
  return out;
}
