// The kubeconfig of an instance, read with `yaml` (not client-node's KubeConfig, whose module graph
// costs ~80 MiB of RSS: docs/design/kube-sim.md "Memory"). One context is resolved to what a request
// needs: the server URL, TLS material and the credentials.
//
// Supported (what kubectl does with them):
//   current-context (or an explicit context); contexts[].context.{cluster, user, namespace}
//   clusters[].cluster: server (https: or http:), certificate-authority-data | certificate-authority (file),
//                       insecure-skip-tls-verify, tls-server-name
//   users[].user:       client-certificate-data | client-certificate (file), client-key-data | client-key (file),
//                       token | tokenFile (re-read on every request, so a rotated token is picked up),
//                       username + password (basic auth)
// Not supported (rejected with a clear error rather than silently ignored): users with `exec` or
// `auth-provider` (cloud/OIDC plugins), clusters with `proxy-url`. Relative file paths are resolved
// against the kubeconfig's directory, as kubectl does. Several files in KUBECONFIG are not merged:
// Wild Central keeps one kubeconfig per instance.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import YAML from 'yaml';
import { clientCiphers } from './ciphers.js';
import { KubeconfigError } from './errors.js';

/** TLS and header fields shared by https.RequestOptions, https.AgentOptions and ws ClientOptions. */
export interface TlsRequestOptions {
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  cert?: string | Buffer | Array<string | Buffer> | undefined;
  key?: string | Buffer | Array<string | Buffer | { pem: string | Buffer; passphrase?: string | undefined }> | undefined;
  rejectUnauthorized?: boolean | undefined;
  servername?: string | undefined;
  secureContext?: SecureContext | undefined;
  headers?: Record<string, unknown> | undefined;
}

type Named<T> = { name?: unknown } & T;

/** One context of a kubeconfig, ready to use. */
export class Kubeconfig {
  private constructor(
    readonly file: string,
    readonly context: string,
    readonly server: string,
    /** The context's default namespace (informational: every call names its namespace). */
    readonly namespace: string | undefined,
    private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: false; servername?: string },
    private readonly auth: { token?: string; tokenFile?: string; basic?: string },
  ) {}

  private tlsContext: SecureContext | undefined;

  /** Reads `file` and resolves `context` (default: its current-context). Throws KubeconfigError. */
  static load(file: string, context?: string): Kubeconfig {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (err) { throw new KubeconfigError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`); }
    return Kubeconfig.parse(text, file, context);
  }

  /** Parses kubeconfig text; `file` names it in errors and anchors relative paths. */
  static parse(text: string, file: string, context?: string): Kubeconfig {
    let doc: unknown;
    try { doc = YAML.parse(text); } catch (err) { throw new KubeconfigError(file, `is not valid YAML (${(err as Error).message.split('\n')[0]})`); }
    if (!doc || typeof doc !== 'object') throw new KubeconfigError(file, 'is empty');
    const d = doc as Record<string, unknown>;
    const dir = path.dirname(path.resolve(file));
    const ctxName = context ?? str(d['current-context']);
    if (!ctxName) throw new KubeconfigError(file, 'names no current context');
    const ctx = find<{ context?: Record<string, unknown> }>(d.contexts, ctxName)?.context;
    if (!ctx) throw new KubeconfigError(file, `has no context "${ctxName}"`);
    const clusterName = str(ctx.cluster);
    const cluster = clusterName ? find<{ cluster?: Record<string, unknown> }>(d.clusters, clusterName)?.cluster : undefined;
    if (!cluster) throw new KubeconfigError(file, `context "${ctxName}" names no known cluster`);
    const userName = str(ctx.user);
    const user = userName ? find<{ user?: Record<string, unknown> }>(d.users, userName)?.user ?? {} : {};

    const server = str(cluster.server);
    if (!server || !/^https?:\/\//.test(server)) throw new KubeconfigError(file, `cluster "${clusterName}" has no http(s) server URL`);
    if (cluster['proxy-url']) throw new KubeconfigError(file, `cluster "${clusterName}" uses proxy-url, which is not supported`);
    if (user.exec) throw new KubeconfigError(file, `user "${userName}" uses exec credentials, which are not supported (use a client certificate or a token)`);
    if (user['auth-provider']) throw new KubeconfigError(file, `user "${userName}" uses an auth-provider, which is not supported (use a client certificate or a token)`);

    const blob = (where: Record<string, unknown>, key: string): Buffer | undefined => {
      const data = str(where[`${key}-data`]);
      if (data) return Buffer.from(data, 'base64');
      const p = str(where[key]);
      if (!p) return undefined;
      try { return readFileSync(path.resolve(dir, p)); } catch (err) { throw new KubeconfigError(file, `${key} ${p} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`); }
    };
    const tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: false; servername?: string } = {};
    const ca = blob(cluster, 'certificate-authority');
    if (ca) tls.ca = ca;
    if (cluster['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;
    const sni = str(cluster['tls-server-name']);
    if (sni) tls.servername = sni;
    const cert = blob(user, 'client-certificate');
    const key = blob(user, 'client-key');
    if (Boolean(cert) !== Boolean(key)) throw new KubeconfigError(file, `user "${userName}" has a client certificate without its key (or the reverse)`);
    if (cert && key) { tls.cert = cert; tls.key = key; }

    const auth: { token?: string; tokenFile?: string; basic?: string } = {};
    const token = str(user.token);
    const tokenFile = str(user.tokenFile);
    if (token) auth.token = token;
    else if (tokenFile) auth.tokenFile = path.resolve(dir, tokenFile);
    const username = str(user.username);
    if (!token && !tokenFile && username) auth.basic = Buffer.from(`${username}:${str(user.password) ?? ''}`).toString('base64');
    return new Kubeconfig(file, ctxName, server.replace(/\/+$/, ''), str(ctx.namespace), tls, auth);
  }

  /** The Authorization header value, if the user has one (a token file is read now). */
  authorization(): string | undefined {
    if (this.auth.token) return `Bearer ${this.auth.token}`;
    if (this.auth.tokenFile) {
      try { return `Bearer ${readFileSync(this.auth.tokenFile, 'utf8').trim()}`; } catch (err) { throw new KubeconfigError(this.file, `tokenFile cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`); }
    }
    if (this.auth.basic) return `Basic ${this.auth.basic}`;
    return undefined;
  }

  /** TLS options for an https.Agent (no headers), with the suites this machine runs fastest first (ciphers.ts). */
  tlsOptions(): { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: false; servername?: string; ciphers: string } {
    return { ...this.tls, ciphers: clientCiphers() };
  }

  /**
   * Adds TLS material and the Authorization header to request options (https.request, ws), like
   * client-node's `KubeConfig.applyToHTTPSOptions` (async for the same reason: a credential may be read).
   */
  async applyToHTTPSOptions(opts: TlsRequestOptions): Promise<void> {
    // One TLS context for every connection (each exec is its own): building one parses the CA,
    // certificate and key again, a few ms of CPU per exec.
    const { ca, cert, key, ...rest } = this.tls;
    this.tlsContext ??= createSecureContext({ ca, cert, key, ciphers: clientCiphers() });
    Object.assign(opts, rest, { secureContext: this.tlsContext });
    const authz = this.authorization();
    if (authz) opts.headers = { ...opts.headers, Authorization: authz };
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function find<T>(list: unknown, name: string): Named<T> | undefined {
  if (!Array.isArray(list)) return undefined;
  return (list as Array<Named<T>>).find((e) => e && typeof e === 'object' && e.name === name);
}
