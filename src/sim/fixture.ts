// startSimCluster: a simulated Wild Cloud instance for tests, benchmarks and the demo. It starts the
// sim's API server, the database servers asked for, applies the demo apps, seeds their databases
// and volumes, and writes a Wild Central data directory (config.yaml, secrets.yaml, kubeconfig, apps/).
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { DEMO_APPS, demoApps, type DemoApp, type DemoAppName } from './apps.js';
import { MariadbServer, PostgresServer, RedisServer, type DatabaseEngine } from './databases.js';
import type { ExecProtocol } from './exec.js';
import { startSimKube, type SimKube } from './kube.js';
import { seedDatabases, seedVolumes, type SimSizes } from './seed.js';

export type { SimSizes } from './seed.js';

export interface SimClusterOptions {
  /** Root for everything (Wild Central data dir in `wild-central/`, cluster state in `cluster/`); default a temp dir removed by stop(). */
  dir?: string;
  /** Instance name (default `test`). */
  instance?: string;
  /** cloud.domain (default `example.wild`). */
  domain?: string;
  /** Apps to install (default all demo apps); the database apps follow `databases`. */
  apps?: readonly DemoAppName[];
  /** Database servers to really start (default: those the chosen apps are or need). Apps needing one not started get no database. */
  databases?: readonly DatabaseEngine[];
  /** Data sizes (defaults are small, for quick tests). */
  sizes?: Partial<SimSizes>;
  /** cloud.backup of config.yaml (default `{}`: the embedded default repository). */
  backup?: Record<string, unknown>;
  /** cloud.backup of secrets.yaml. */
  backupSecrets?: Record<string, unknown>;
  /** API server port / token / exec subprotocols (defaults: free port, random token, v5+v4). */
  port?: number;
  token?: string;
  execProtocols?: readonly ExecProtocol[];
}

export interface SimPvc { namespace: string; name: string; dir: string }

export interface SimCluster {
  readonly kube: SimKube;
  readonly kubeconfigPath: string;
  readonly apiUrl: string;
  readonly token: string;
  /** The Wild Central data directory (WILD_CENTRAL_DATA). */
  readonly dataDir: string;
  readonly instance: string;
  /** `<dataDir>/instances/<instance>` */
  readonly instanceDir: string;
  readonly apps: readonly DemoAppName[];
  readonly databases: { postgres?: PostgresServer; mysql?: MariadbServer; redis?: RedisServer };
  /** Secret values by app and key, as in secrets.yaml (tests assert they never leak). */
  readonly secrets: Record<string, Record<string, string>>;
  /** Every PVC and its host directory (its mount path in pods). */
  pvcs(): SimPvc[];
  pvcDir(namespace: string, name: string): string;
  stop(): Promise<void>;
}

const DEFAULT_SIZES: SimSizes = { dbRows: 200, photoFiles: 40, photoBytes: 4 << 20, cacheBytes: 1 << 20, fileBytes: 64 << 10 };

export async function startSimCluster(opts: SimClusterOptions = {}): Promise<SimCluster> {
  const ownRoot = !opts.dir;
  const root = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'wild-sim-cluster-'));
  const instance = opts.instance ?? 'test';
  const domain = opts.domain ?? 'example.wild';
  const dataDir = path.join(root, 'wild-central');
  const instanceDir = path.join(dataDir, 'instances', instance);
  const stateDir = path.join(root, 'cluster');
  mkdirSync(instanceDir, { recursive: true });
  const sizes = { ...DEFAULT_SIZES, ...opts.sizes };

  const secretValues: Record<string, Record<string, string>> = {};
  const secret = (app: string, key: string): string => {
    const a = (secretValues[app] ??= {});
    return (a[key] ??= randomBytes(15).toString('base64url'));
  };
  const all = demoApps({ domain, secret });
  const chosen = new Set(opts.apps ?? DEMO_APPS);
  const wantedEngines = new Set<DatabaseEngine>(opts.databases ?? [...chosen].flatMap((a) => [...(all[a].server ? [all[a].server!] : []), ...all[a].requires]));
  const apps: DemoApp[] = DEMO_APPS.filter((a) => (all[a].server ? wantedEngines.has(all[a].server!) : chosen.has(a))).map((a) => all[a]);

  const kube = await startSimKube({
    stateDir, kubeconfigPath: path.join(instanceDir, 'kubeconfig'),
    ...(opts.port ? { port: opts.port } : {}), ...(opts.token ? { token: opts.token } : {}), ...(opts.execProtocols ? { execProtocols: opts.execProtocols } : {}),
  }).catch((err: unknown) => {
    // An API server that cannot start (its port taken) leaves no directory behind either.
    if (ownRoot) rmSync(root, { recursive: true, force: true });
    throw err;
  });
  const rt = kube.runtime;
  const run = path.join(stateDir, 'run');
  const databases: SimCluster['databases'] = {};
  try {
    if (wantedEngines.has('postgres')) {
      databases.postgres = new PostgresServer('postgres', 'postgres', path.join(rt.pvcDir('postgres', 'postgres-pvc'), 'pgdata'), path.join(run, 'postgres'), stateDir, secret('postgres', 'password'));
      rt.addBacking(databases.postgres);
    }
    if (wantedEngines.has('mysql')) {
      databases.mysql = new MariadbServer('mysql', 'mysql', rt.pvcDir('mysql', 'data-mysql-0'), path.join(run, 'mysql'), secret('mysql', 'rootPassword'));
      rt.addBacking(databases.mysql);
    }
    if (wantedEngines.has('redis')) {
      databases.redis = new RedisServer('redis', 'redis', rt.pvcDir('redis', 'redis-pvc'), path.join(run, 'redis'));
      rt.addBacking(databases.redis);
    }
    for (const app of apps) kube.apply(Object.values(app.files).flat());
    await kube.waitForPods(120_000);
    await seedDatabases(apps, databases, secretValues, sizes);
    await seedVolumes(apps, rt, sizes, domain);
    writeDataDir(instanceDir, instance, domain, apps, opts);
  } catch (err) {
    await kube.stop();
    if (ownRoot) rmSync(root, { recursive: true, force: true });
    throw err;
  }

  let stopped = false;
  return {
    kube, kubeconfigPath: kube.kubeconfigPath, apiUrl: kube.url, token: kube.token,
    dataDir, instance, instanceDir, apps: apps.map((a) => a.name), databases, secrets: secretValues,
    pvcs: () => rt.store.list('persistentvolumeclaims').map((p) => ({ namespace: p.metadata.namespace!, name: p.metadata.name, dir: rt.pvcDir(p.metadata.namespace!, p.metadata.name) })),
    pvcDir: (ns, name) => rt.pvcDir(ns, name),
    async stop() {
      if (stopped) return;
      stopped = true;
      await kube.stop();
      if (ownRoot) rmSync(root, { recursive: true, force: true });
    },
  };
}

function writeDataDir(instanceDir: string, instance: string, domain: string, apps: DemoApp[], opts: SimClusterOptions): void {
  const config = {
    cloud: { domain, baseDomain: domain, internalDomain: `internal.${domain}`, backup: opts.backup ?? {} },
    cluster: { name: instance, nodes: { talos: { version: 'v1.9.5' } } },
    apps: Object.fromEntries(apps.map((a) => [a.name, a.config])),
  };
  writeFileSync(path.join(instanceDir, 'config.yaml'), YAML.stringify(config));
  const secretsDoc: Record<string, unknown> = { apps: Object.fromEntries(apps.filter((a) => Object.keys(a.secrets).length).map((a) => [a.name, a.secrets])) };
  if (opts.backupSecrets) secretsDoc.cloud = { backup: opts.backupSecrets };
  const secretsPath = path.join(instanceDir, 'secrets.yaml');
  writeFileSync(secretsPath, YAML.stringify(secretsDoc), { mode: 0o600 });
  chmodSync(secretsPath, 0o600);
  for (const app of apps) {
    const dir = path.join(instanceDir, 'apps', app.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'manifest.yaml'), YAML.stringify(app.manifest));
    const resources: string[] = [];
    for (const [file, objs] of Object.entries(app.files)) {
      // Secrets come from secrets.yaml at deploy time; the compiled app does not carry their values.
      if (file === 'secret.yaml') continue;
      resources.push(file);
      writeFileSync(path.join(dir, file), objs.map((o) => YAML.stringify(o)).join('---\n'));
    }
    writeFileSync(path.join(dir, 'kustomization.yaml'), YAML.stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', namespace: app.name,
      labels: [{ includeSelectors: true, pairs: { app: app.name, managedBy: 'kustomize', partOf: 'wild-cloud' } }],
      resources,
    }));
  }
}
