// Where an engine's server runs (ARCHITECTURE.md §1 conventions), overridable per instance in
// config.yaml: cloud.backup.engines.<engine>: { namespace, selector, secretName, secretKey }.
import { findReadyPod, readSecretKey, type KubeClient } from '../../kube/index.js';
import { processSecrets } from '../../util/log.js';
import type { InstanceInfo } from '../../wild/store.js';
import type { PodTarget } from '../exec-source.js';

export interface EngineServer {
  namespace: string;
  selector: string;
  secretName?: string;
  secretKey?: string;
}

export const ENGINE_DEFAULTS: Record<string, EngineServer> = {
  postgres: { namespace: 'postgres', selector: 'app=postgres', secretName: 'postgres-secrets', secretKey: 'password' },
  mysql: { namespace: 'mysql', selector: 'app=mysql', secretName: 'mysql-secret', secretKey: 'password' },
  redis: { namespace: 'redis', selector: 'app=redis' },
};

export function engineServer(inst: InstanceInfo, engine: string): EngineServer {
  const backup = inst.config.cloud?.backup as { engines?: Record<string, Partial<EngineServer>> } | null | undefined;
  const override = backup?.engines?.[engine] ?? {};
  const base = ENGINE_DEFAULTS[engine] ?? { namespace: engine, selector: `app=${engine}` };
  return {
    namespace: typeof override.namespace === 'string' ? override.namespace : base.namespace,
    selector: typeof override.selector === 'string' ? override.selector : base.selector,
    secretName: typeof override.secretName === 'string' ? override.secretName : base.secretName,
    secretKey: typeof override.secretKey === 'string' ? override.secretKey : base.secretKey,
  };
}

export class ServerNotFoundError extends Error {
  readonly code = 'DATABASE_SERVER_NOT_FOUND';
  override name = 'ServerNotFoundError';
}

/** The ready pod of the engine's server. */
export async function serverPod(client: KubeClient, server: EngineServer, engine: string, signal?: AbortSignal): Promise<PodTarget> {
  const pod = await findReadyPod(client, server.namespace, server.selector, { signal, timeoutMs: 15_000 });
  if (!pod) throw new ServerNotFoundError(`no ready ${engine} pod in namespace ${server.namespace} with labels ${server.selector}`);
  return { namespace: server.namespace, pod: pod.name };
}

/** The admin password from the engine's secret, registered with the log scrubber at once. */
export async function adminPassword(client: KubeClient, server: EngineServer, signal?: AbortSignal): Promise<string> {
  if (!server.secretName || !server.secretKey) throw new Error('no admin secret configured for this engine');
  const pw = await readSecretKey(client, server.namespace, server.secretName, server.secretKey, { signal, timeoutMs: 15_000 });
  processSecrets.add(pw);
  return pw;
}

/** Database names become argv values and quoted identifiers: only ordinary names get through. */
export const SAFE_DB_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$/;

export function checkDatabaseName(name: string): string {
  if (!SAFE_DB_NAME.test(name)) throw new Error(`database name "${name.slice(0, 70)}" is not an ordinary name (letters, digits, _ and -)`);
  return name;
}
