// startSimCluster: a Wild Cloud instance whose database pods are real servers. Database tools run in
// pods as in the official images, and the Wild Central data directory is written as Wild Backup reads it.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CommandFailedError, execText, findReadyPod, kubeClientFor, listVolumes, listWorkloads, readSecretKey, scaleAndWait, type KubeClient,
} from '../../src/kube/index.js';
import { startSimCluster, type SimCluster } from '../../src/sim/index.js';
import { registerSimSecrets } from '../helpers/sim-app.js';

describe('startSimCluster with PostgreSQL, MariaDB and Redis', () => {
  let sim: SimCluster;
  let client: KubeClient;
  const exec = async (ns: string, command: string[]): Promise<string> => {
    const pod = await findReadyPod(client, ns, `app=${ns}`);
    return (await execText(client, { namespace: ns, pod: pod!.name, command })).stdout;
  };

  beforeAll(async () => {
    sim = await startSimCluster({ sizes: { dbRows: 120, photoFiles: 30, photoBytes: 3 << 20 } });
    registerSimSecrets(sim);
    client = kubeClientFor(sim.kubeconfigPath);
  });
  afterAll(async () => {
    const root = path.dirname(sim?.dataDir ?? '/nonexistent');
    await sim?.stop();
    // Every process the sim started is gone with it.
    const left = execFileSync('sh', ['-c', 'ps -eo args | grep -F -- "$1" | grep -v grep || true', 'sh', root], { encoding: 'utf8' });
    expect(left.trim()).toBe('');
  });

  it('writes the Wild Central data directory', () => {
    const dir = sim.instanceDir;
    const config = YAML.parse(readFileSync(path.join(dir, 'config.yaml'), 'utf8')) as { cloud: { domain: string; backup: object }; cluster: { name: string }; apps: Record<string, Record<string, unknown>> };
    expect(config.cloud).toMatchObject({ domain: 'example.wild', backup: {} });
    expect(config.cluster.name).toBe('test');
    expect(Object.keys(config.apps).sort()).toEqual(['ghost', 'gitea', 'immich', 'mysql', 'postgres', 'redis', 'website', 'whoami']);
    expect(config.apps.gitea).toMatchObject({ dbName: 'gitea', dbUser: 'gitea', dbHost: 'postgres.postgres.svc.cluster.local', storage: '10Gi' });
    expect(config.apps.immich).toMatchObject({ dbUsername: 'immich', redisHostname: 'redis.redis.svc.cluster.local' });
    const secretsPath = path.join(dir, 'secrets.yaml');
    expect(statSync(secretsPath).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'kubeconfig')).mode & 0o777).toBe(0o600);
    const secrets = YAML.parse(readFileSync(secretsPath, 'utf8')) as { apps: Record<string, Record<string, string>> };
    expect(secrets.apps.gitea!.dbPassword).toBe(sim.secrets.gitea!.dbPassword);
    expect(secrets.apps.mysql!.rootPassword).toBeTruthy();
    const manifest = YAML.parse(readFileSync(path.join(dir, 'apps', 'immich', 'manifest.yaml'), 'utf8')) as { requires: Array<{ name: string }> };
    expect(manifest.requires.map((r) => r.name)).toEqual(['redis', 'postgres']);
    expect(existsSync(path.join(dir, 'apps', 'gitea', 'deployment.yaml'))).toBe(true);
    expect(readFileSync(path.join(dir, 'apps', 'gitea', 'deployment.yaml'), 'utf8')).not.toContain(sim.secrets.gitea!.dbPassword!);
  });

  it('shapes apps like Wild Cloud: several workloads, two PVCs, database servers as apps', async () => {
    expect((await listWorkloads(client, 'immich')).map((w) => w.name)).toEqual(['immich-machine-learning', 'immich-server']);
    const vols = await listVolumes(client, 'immich');
    expect(vols.map((v) => [v.name, v.capacity, v.mount?.pod.split('-').slice(0, 2).join('-')])).toEqual([
      ['immich-cache-pvc', '10Gi', 'immich-machine'], ['immich-pvc', '250Gi', 'immich-server'],
    ]);
    expect(vols[1]!.mount!.mountPath).toBe(sim.pvcDir('immich', 'immich-pvc'));
    const gitea = await listVolumes(client, 'gitea');
    expect(gitea[0]!.mount!.mountPath).toBe(sim.pvcDir('gitea', 'gitea-data'));
    expect(existsSync(path.join(gitea[0]!.mount!.mountPath, 'gitea', 'conf', 'app.ini'))).toBe(true);
    expect((await listWorkloads(client, 'mysql'))[0]).toMatchObject({ kind: 'StatefulSet', name: 'mysql' });
    expect((await listVolumes(client, 'mysql'))[0]!.name).toBe('data-mysql-0');
    expect(await listVolumes(client, 'whoami')).toEqual([]);
    expect(await readSecretKey(client, 'postgres', 'postgres-secrets', 'password')).toBe(sim.secrets.postgres!.password);
  });

  it('runs pg_dump and psql in the postgres pod as the image does (superuser over the local socket)', async () => {
    expect(await exec('postgres', ['psql', '-U', 'postgres', '-Atc', 'SHOW port'])).toBe(`${sim.databases.postgres!.port}\n`);
    expect(await exec('postgres', ['psql', '-U', 'postgres', '-d', 'gitea', '-Atc', 'SELECT count(*) FROM issue'])).toBe('120\n');
    expect(await exec('postgres', ['psql', '-U', 'postgres', '-Atc', "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'immich'"])).toBe('immich\n');
    const dump = await exec('postgres', ['pg_dump', '-U', 'postgres', '--no-owner', 'gitea']);
    expect(dump).toContain('CREATE TABLE public.issue');
    expect(dump).toContain('COPY public.issue');
  });

  it('runs mysqldump and mariadb in the mysql pod with the root password from mysql-secret', async () => {
    const sh = ['sh', '-c', 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec "$@"', 'sh'];
    // The sim's server, never the machine's own MariaDB.
    expect(await exec('mysql', [...sh, 'mariadb', '-uroot', '-N', '-e', 'SELECT @@port'])).toBe(`${sim.databases.mysql!.port}\n`);
    expect(await exec('mysql', [...sh, 'mariadb', '-uroot', '-N', '-e', 'SELECT COUNT(*) FROM ghost.posts'])).toBe('120\n');
    const dump = await exec('mysql', [...sh, 'mysqldump', '-uroot', '--single-transaction', 'ghost']);
    expect(dump).toContain('CREATE TABLE `posts`');
    // Without the password root is refused, as in the image.
    const pod = await findReadyPod(client, 'mysql', 'app=mysql');
    const err = await execText(client, { namespace: 'mysql', pod: pod!.name, command: ['mariadb', '-uroot', '-e', 'SELECT 1'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    expect((err as CommandFailedError).stderrTail).toContain('Access denied');
  });

  it('runs redis-cli in the redis pod', async () => {
    expect(Number(await exec('redis', ['redis-cli', 'DBSIZE']))).toBeGreaterThan(0);
    expect(await exec('redis', ['redis-cli', 'CONFIG', 'GET', 'port'])).toBe(`port\n${sim.databases.redis!.port}\n`);
  });

  it('stops the server when its workload is scaled to 0 and starts it on the same data when scaled up', async () => {
    const [w] = await listWorkloads(client, 'postgres');
    await scaleAndWait(client, w!, 0, { waitTimeoutMs: 30_000 });
    expect(sim.databases.postgres!.running).toBe(false);
    await scaleAndWait(client, w!, 1, { waitTimeoutMs: 30_000 });
    expect(await exec('postgres', ['psql', '-U', 'postgres', '-d', 'gitea', '-Atc', 'SELECT count(*) FROM issue'])).toBe('120\n');
  });

  it('fills volumes with app-shaped files', () => {
    const lib = path.join(sim.pvcDir('immich', 'immich-pvc'), 'library');
    const files = execFileSync('find', [lib, '-name', '*.jpg'], { encoding: 'utf8' }).trim().split('\n');
    expect(files).toHaveLength(30);
    const total = files.reduce((n, f) => n + statSync(f).size, 0);
    expect(total).toBe(3 << 20);
    expect(existsSync(path.join(sim.pvcDir('postgres', 'postgres-pvc'), 'pgdata', 'PG_VERSION'))).toBe(true);
    expect(existsSync(path.join(sim.pvcDir('ghost', 'ghost-content'), 'settings', 'routes.yaml'))).toBe(true);
  });
});

describe('a simulated cluster that cannot start', () => {
  it('leaves no temporary directory behind (its API server\'s port taken)', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const instance = `gone-${process.pid}-${Date.now()}`;
    try {
      await expect(startSimCluster({ instance, port: (taken.address() as net.AddressInfo).port, apps: ['whoami'] })).rejects.toThrow(/EADDRINUSE/);
      const left = readdirSync(os.tmpdir()).filter((d) => d.startsWith('wild-sim-cluster-') && existsSync(path.join(os.tmpdir(), d, 'wild-central', 'instances', instance)));
      expect(left).toEqual([]);
    } finally {
      taken.close();
    }
  });
});
