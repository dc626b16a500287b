// Demo Wild Cloud apps for the sim, shaped like the real ones (shared/reference/wild-cloud-apps):
// kustomize labels on everything, one namespace per app, the database servers as apps themselves.
import type { DatabaseEngine } from './databases.js';
import type { KubeObject } from './objects.js';

export type DemoAppName = 'postgres' | 'mysql' | 'redis' | 'gitea' | 'immich' | 'ghost' | 'website' | 'whoami';
export const DEMO_APPS: readonly DemoAppName[] = ['postgres', 'mysql', 'redis', 'gitea', 'immich', 'ghost', 'website', 'whoami'];

export interface DemoApp {
  name: DemoAppName;
  /** The engine this app *is* (postgres, mysql, redis), if any. */
  server?: DatabaseEngine;
  /** Engines it uses (its manifest's `requires`). */
  requires: DatabaseEngine[];
  manifest: Record<string, unknown>;
  /** apps.<name> of config.yaml */
  config: Record<string, unknown>;
  /** apps.<name> of secrets.yaml */
  secrets: Record<string, string>;
  /** Compiled Kubernetes objects, by the file they live in under apps/<name>/. */
  files: Record<string, KubeObject[]>;
}

export interface AppContext {
  domain: string;
  /** Secret values by app and key (generated once per fixture). */
  secret(app: string, key: string): string;
}

const labelsOf = (app: string): Record<string, string> => ({ app, managedBy: 'kustomize', partOf: 'wild-cloud' });

function ns(app: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: app, labels: labelsOf(app) } };
}

function pvc(app: string, name: string, storage: string): KubeObject {
  return {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: app, labels: labelsOf(app) },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'longhorn', resources: { requests: { storage } } },
  };
}

function secret(app: string, name: string, data: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: app, labels: labelsOf(app) }, type: 'Opaque', stringData: data };
}

function service(app: string, name: string, ports: Array<{ name: string; port: number }>, selector: Record<string, string>, headless = false): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: app, labels: labelsOf(app) },
    spec: { ...(headless ? { clusterIP: 'None' } : {}), selector, ports: ports.map((p) => ({ ...p, targetPort: p.port, protocol: 'TCP' })) },
  };
}

interface WorkloadSpec {
  kind?: 'Deployment' | 'StatefulSet';
  name: string;
  extraLabels?: Record<string, string>;
  podSpec: Record<string, unknown>;
  serviceName?: string;
  volumeClaimTemplates?: Array<{ name: string; storage: string }>;
}

function workload(app: string, w: WorkloadSpec): KubeObject {
  // kustomize's includeSelectors puts the app labels into the selector and the template too.
  const labels = { ...labelsOf(app), ...w.extraLabels };
  return {
    apiVersion: 'apps/v1', kind: w.kind ?? 'Deployment', metadata: { name: w.name, namespace: app, labels: labelsOf(app) },
    spec: {
      replicas: 1, selector: { matchLabels: labels },
      ...(w.serviceName ? { serviceName: w.serviceName } : {}),
      ...(w.kind === 'Deployment' || !w.kind ? { strategy: { type: 'Recreate' } } : {}),
      template: { metadata: { labels }, spec: w.podSpec },
      ...(w.volumeClaimTemplates ? {
        volumeClaimTemplates: w.volumeClaimTemplates.map((t) => ({ metadata: { name: t.name }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: t.storage } } } })),
      } : {}),
    },
  };
}

const secretEnv = (name: string, secretName: string, key: string): Record<string, unknown> => ({ name, valueFrom: { secretKeyRef: { name: secretName, key } } });

/** Every demo app, defined against the instance's domain and secrets. */
export function demoApps(ctx: AppContext): Record<DemoAppName, DemoApp> {
  const d = ctx.domain;
  const s = ctx.secret;
  return {
    postgres: {
      name: 'postgres', server: 'postgres', requires: [],
      manifest: { name: 'postgres', install: true, description: 'PostgreSQL is a powerful, open source object-relational database system.', version: '1.0.0', defaultConfig: { image: 'pgvector/pgvector:pg15', database: 'postgres', user: 'postgres', storage: '10Gi' }, requiredSecrets: ['apps.postgres.password'] },
      config: { image: 'pgvector/pgvector:pg15', database: 'postgres', user: 'postgres', storage: '10Gi', host: 'postgres.postgres.svc.cluster.local', port: 5432 },
      secrets: { password: s('postgres', 'password') },
      files: {
        'namespace.yaml': [ns('postgres')],
        'pvc.yaml': [pvc('postgres', 'postgres-pvc', '10Gi')],
        'secret.yaml': [secret('postgres', 'postgres-secrets', { password: s('postgres', 'password') })],
        'service.yaml': [service('postgres', 'postgres', [{ name: 'postgres', port: 5432 }], labelsOf('postgres'))],
        'deployment.yaml': [workload('postgres', {
          name: 'postgres-deployment',
          podSpec: {
            containers: [{
              name: 'postgres', image: 'pgvector/pgvector:pg15', ports: [{ containerPort: 5432 }],
              env: [{ name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' }, { name: 'POSTGRES_DB', value: 'postgres' }, { name: 'POSTGRES_USER', value: 'postgres' }, secretEnv('POSTGRES_PASSWORD', 'postgres-secrets', 'password')],
              volumeMounts: [{ name: 'postgres-data', mountPath: '/var/lib/postgresql/data' }],
            }],
            volumes: [{ name: 'postgres-data', persistentVolumeClaim: { claimName: 'postgres-pvc' } }],
          },
        })],
      },
    },
    mysql: {
      name: 'mysql', server: 'mysql', requires: [],
      manifest: { name: 'mysql', install: true, description: 'MySQL-compatible database server (MariaDB) shared by Wild Cloud apps.', version: '1.0.0', defaultConfig: { image: 'mariadb:10.11', port: 3306, storage: '8Gi' }, requiredSecrets: ['apps.mysql.rootPassword'] },
      config: { image: 'mariadb:10.11', port: 3306, storage: '8Gi', host: 'mysql.mysql.svc.cluster.local' },
      secrets: { rootPassword: s('mysql', 'rootPassword') },
      files: {
        'namespace.yaml': [ns('mysql')],
        'secret.yaml': [secret('mysql', 'mysql-secret', { password: s('mysql', 'rootPassword') })],
        'service.yaml': [service('mysql', 'mysql', [{ name: 'mysql', port: 3306 }], labelsOf('mysql')), service('mysql', 'mysql-headless', [{ name: 'mysql', port: 3306 }], labelsOf('mysql'), true)],
        'statefulset.yaml': [workload('mysql', {
          kind: 'StatefulSet', name: 'mysql', serviceName: 'mysql-headless', volumeClaimTemplates: [{ name: 'data', storage: '8Gi' }],
          podSpec: {
            containers: [{
              name: 'mysql', image: 'mariadb:10.11', ports: [{ containerPort: 3306 }],
              env: [secretEnv('MARIADB_ROOT_PASSWORD', 'mysql-secret', 'password'), secretEnv('MYSQL_ROOT_PASSWORD', 'mysql-secret', 'password')],
              volumeMounts: [{ name: 'data', mountPath: '/var/lib/mysql' }],
            }],
          },
        })],
      },
    },
    redis: {
      name: 'redis', server: 'redis', requires: [],
      manifest: { name: 'redis', install: true, description: 'Redis is an open source, in-memory data structure store, used as a database, cache and message broker.', version: '1.0.0', defaultConfig: { image: 'redis:7.2-alpine', port: 6379, storage: '1Gi' } },
      config: { image: 'redis:7.2-alpine', port: 6379, storage: '1Gi', host: 'redis.redis.svc.cluster.local' },
      secrets: {},
      files: {
        'namespace.yaml': [ns('redis')],
        'pvc.yaml': [pvc('redis', 'redis-pvc', '1Gi')],
        'service.yaml': [service('redis', 'redis', [{ name: 'redis', port: 6379 }], labelsOf('redis'))],
        'deployment.yaml': [workload('redis', {
          name: 'redis',
          podSpec: { containers: [{ name: 'redis', image: 'redis:7.2-alpine', ports: [{ containerPort: 6379 }], volumeMounts: [{ name: 'redis-data', mountPath: '/data' }] }], volumes: [{ name: 'redis-data', persistentVolumeClaim: { claimName: 'redis-pvc' } }] },
        })],
      },
    },
    gitea: {
      name: 'gitea', requires: ['postgres'],
      manifest: {
        name: 'gitea', description: 'Gitea is a painless self-hosted Git service written in Go', version: '1.0.0', requires: [{ name: 'postgres' }],
        defaultConfig: { image: 'gitea/gitea:1.22.0', domain: 'gitea.{{ .cloud.domain }}', port: 3000, sshPort: 22, storage: '10Gi', dbName: 'gitea', dbUser: 'gitea', dbHost: 'postgres.postgres.svc.cluster.local', dbPort: 5432, timezone: 'UTC', adminUser: 'admin', adminEmail: 'admin@{{ .cloud.domain }}', appName: 'Gitea', runMode: 'prod' },
        requiredSecrets: ['apps.gitea.adminPassword', 'apps.gitea.dbPassword', 'apps.gitea.secretKey', 'apps.gitea.jwtSecret'],
      },
      config: { image: 'gitea/gitea:1.22.0', domain: `gitea.${d}`, port: 3000, sshPort: 22, storage: '10Gi', dbName: 'gitea', dbUser: 'gitea', dbHost: 'postgres.postgres.svc.cluster.local', dbPort: 5432, timezone: 'UTC', adminUser: 'admin', adminEmail: `admin@${d}`, appName: 'Gitea', runMode: 'prod' },
      secrets: { adminPassword: s('gitea', 'adminPassword'), dbPassword: s('gitea', 'dbPassword'), secretKey: s('gitea', 'secretKey'), jwtSecret: s('gitea', 'jwtSecret') },
      files: {
        'namespace.yaml': [ns('gitea')],
        'pvc.yaml': [pvc('gitea', 'gitea-data', '10Gi')],
        'secret.yaml': [secret('gitea', 'gitea-secrets', { dbPassword: s('gitea', 'dbPassword'), adminPassword: s('gitea', 'adminPassword'), secretKey: s('gitea', 'secretKey'), jwtSecret: s('gitea', 'jwtSecret') })],
        'configmap.yaml': [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'gitea-config', namespace: 'gitea', labels: labelsOf('gitea') }, data: { 'app.ini': giteaIni(d) } }],
        'service.yaml': [service('gitea', 'gitea-http', [{ name: 'http', port: 3000 }], { ...labelsOf('gitea'), component: 'web' }), service('gitea', 'gitea-ssh', [{ name: 'ssh', port: 22 }], { ...labelsOf('gitea'), component: 'web' })],
        'deployment.yaml': [workload('gitea', {
          name: 'gitea', extraLabels: { component: 'web' },
          podSpec: {
            securityContext: { fsGroup: 1000 },
            initContainers: [{ name: 'init-directories', image: 'gitea/gitea:1.22.0', command: ['/usr/sbin/init_directory_structure.sh'], volumeMounts: [{ name: 'init', mountPath: '/usr/sbin' }, { name: 'temp', mountPath: '/tmp' }, { name: 'data', mountPath: '/data' }] }],
            containers: [{
              name: 'gitea', image: 'gitea/gitea:1.22.0', ports: [{ containerPort: 3000 }, { containerPort: 22 }],
              env: [{ name: 'GITEA__database__DB_TYPE', value: 'postgres' }, { name: 'GITEA__database__HOST', value: 'postgres.postgres.svc.cluster.local:5432' }, { name: 'GITEA__database__NAME', value: 'gitea' }, { name: 'GITEA__database__USER', value: 'gitea' }, secretEnv('GITEA__database__PASSWD', 'gitea-secrets', 'dbPassword')],
              volumeMounts: [{ name: 'temp', mountPath: '/tmp' }, { name: 'data', mountPath: '/data' }, { name: 'config', mountPath: '/data/gitea/conf/app.ini', subPath: 'app.ini' }],
            }],
            volumes: [{ name: 'init', configMap: { name: 'gitea-config', defaultMode: 0o110 } }, { name: 'config', configMap: { name: 'gitea-config' } }, { name: 'temp', emptyDir: {} }, { name: 'data', persistentVolumeClaim: { claimName: 'gitea-data' } }],
          },
        })],
      },
    },
    immich: {
      name: 'immich', requires: ['redis', 'postgres'],
      manifest: {
        name: 'immich', install: true, description: 'Immich is a self-hosted photo and video backup solution that allows you to store, manage, and share your media files securely.', version: '1.0.0', requires: [{ name: 'redis' }, { name: 'postgres' }],
        defaultConfig: { serverImage: 'ghcr.io/immich-app/immich-server:release', mlImage: 'ghcr.io/immich-app/immich-machine-learning:release', timezone: 'UTC', serverPort: 2283, mlPort: 3003, storage: '250Gi', cacheStorage: '10Gi', redisHostname: 'redis.redis.svc.cluster.local', dbHostname: 'postgres.postgres.svc.cluster.local', dbUsername: 'immich', domain: 'immich.{{ .cloud.domain }}' },
        requiredSecrets: ['apps.immich.dbPassword', 'apps.postgres.password'],
      },
      config: { serverImage: 'ghcr.io/immich-app/immich-server:release', mlImage: 'ghcr.io/immich-app/immich-machine-learning:release', timezone: 'UTC', serverPort: 2283, mlPort: 3003, storage: '250Gi', cacheStorage: '10Gi', redisHostname: 'redis.redis.svc.cluster.local', dbHostname: 'postgres.postgres.svc.cluster.local', dbUsername: 'immich', dbName: 'immich', domain: `immich.${d}` },
      secrets: { dbPassword: s('immich', 'dbPassword') },
      files: {
        'namespace.yaml': [ns('immich')],
        'pvc.yaml': [pvc('immich', 'immich-pvc', '250Gi'), pvc('immich', 'immich-cache-pvc', '10Gi')],
        'secret.yaml': [secret('immich', 'immich-secrets', { dbPassword: s('immich', 'dbPassword') })],
        'service.yaml': [service('immich', 'immich-server', [{ name: 'http', port: 2283 }], { ...labelsOf('immich'), component: 'server' }), service('immich', 'immich-machine-learning', [{ name: 'http', port: 3003 }], { ...labelsOf('immich'), component: 'machine-learning' })],
        'deployment-server.yaml': [workload('immich', {
          name: 'immich-server', extraLabels: { component: 'server' },
          podSpec: {
            containers: [{
              name: 'immich-server', image: 'ghcr.io/immich-app/immich-server:release',
              env: [{ name: 'REDIS_HOSTNAME', value: 'redis.redis.svc.cluster.local' }, { name: 'DB_HOSTNAME', value: 'postgres.postgres.svc.cluster.local' }, { name: 'DB_USERNAME', value: 'immich' }, { name: 'DB_DATABASE_NAME', value: 'immich' }, secretEnv('DB_PASSWORD', 'immich-secrets', 'dbPassword')],
              volumeMounts: [{ mountPath: '/usr/src/app/upload', name: 'immich-storage' }],
            }],
            volumes: [{ name: 'immich-storage', persistentVolumeClaim: { claimName: 'immich-pvc' } }],
          },
        })],
        'deployment-machine-learning.yaml': [workload('immich', {
          name: 'immich-machine-learning', extraLabels: { component: 'machine-learning' },
          podSpec: {
            containers: [{ name: 'immich-machine-learning', image: 'ghcr.io/immich-app/immich-machine-learning:release', volumeMounts: [{ mountPath: '/cache', name: 'cache' }] }],
            volumes: [{ name: 'cache', persistentVolumeClaim: { claimName: 'immich-cache-pvc' } }],
          },
        })],
      },
    },
    ghost: {
      name: 'ghost', requires: ['mysql'],
      manifest: {
        name: 'ghost', install: true, description: 'Ghost is a powerful app for new-media creators to publish, share, and grow a business around their content.', version: '1.0.0', requires: [{ name: 'mysql' }],
        defaultConfig: { image: 'ghost:5.87-alpine', domain: 'ghost.{{ .cloud.domain }}', port: 2368, storage: '10Gi', dbHost: 'mysql.mysql.svc.cluster.local', dbPort: 3306, dbName: 'ghost', dbUser: 'ghost' },
        requiredSecrets: ['apps.ghost.dbPassword', 'apps.ghost.adminPassword'],
      },
      config: { image: 'ghost:5.87-alpine', domain: `ghost.${d}`, port: 2368, storage: '10Gi', dbHost: 'mysql.mysql.svc.cluster.local', dbPort: 3306, dbName: 'ghost', dbUser: 'ghost' },
      secrets: { dbPassword: s('ghost', 'dbPassword'), adminPassword: s('ghost', 'adminPassword') },
      files: {
        'namespace.yaml': [ns('ghost')],
        'pvc.yaml': [pvc('ghost', 'ghost-content', '10Gi')],
        'secret.yaml': [secret('ghost', 'ghost-secrets', { dbPassword: s('ghost', 'dbPassword'), adminPassword: s('ghost', 'adminPassword') })],
        'service.yaml': [service('ghost', 'ghost', [{ name: 'http', port: 2368 }], { ...labelsOf('ghost'), component: 'web' })],
        'deployment.yaml': [workload('ghost', {
          name: 'ghost', extraLabels: { component: 'web' },
          podSpec: {
            containers: [{
              name: 'ghost', image: 'ghost:5.87-alpine', ports: [{ containerPort: 2368 }],
              env: [{ name: 'url', value: `https://ghost.${d}` }, { name: 'database__client', value: 'mysql' }, { name: 'database__connection__host', value: 'mysql.mysql.svc.cluster.local' }, { name: 'database__connection__user', value: 'ghost' }, { name: 'database__connection__database', value: 'ghost' }, secretEnv('database__connection__password', 'ghost-secrets', 'dbPassword')],
              volumeMounts: [{ name: 'content', mountPath: '/var/lib/ghost/content' }],
            }],
            volumes: [{ name: 'content', persistentVolumeClaim: { claimName: 'ghost-content' } }],
          },
        })],
      },
    },
    website: {
      name: 'website', requires: [],
      manifest: { name: 'website', install: true, description: 'A static website served by nginx from a volume.', version: '1.0.0', defaultConfig: { image: 'nginx:1.27-alpine', domain: 'www.{{ .cloud.domain }}', storage: '1Gi' } },
      config: { image: 'nginx:1.27-alpine', domain: `www.${d}`, storage: '1Gi' },
      secrets: {},
      files: {
        'namespace.yaml': [ns('website')],
        'pvc.yaml': [pvc('website', 'website-content', '1Gi')],
        'service.yaml': [service('website', 'website', [{ name: 'http', port: 80 }], labelsOf('website'))],
        'deployment.yaml': [workload('website', {
          name: 'website',
          podSpec: { containers: [{ name: 'nginx', image: 'nginx:1.27-alpine', ports: [{ containerPort: 80 }], volumeMounts: [{ name: 'content', mountPath: '/usr/share/nginx/html', readOnly: true }] }], volumes: [{ name: 'content', persistentVolumeClaim: { claimName: 'website-content' } }] },
        })],
      },
    },
    whoami: {
      name: 'whoami', requires: [],
      manifest: { name: 'whoami', install: true, description: 'Tiny web service that echoes request information; keeps no data.', version: '1.0.0', defaultConfig: { image: 'traefik/whoami:v1.10', domain: 'whoami.{{ .cloud.domain }}' } },
      config: { image: 'traefik/whoami:v1.10', domain: `whoami.${d}` },
      secrets: {},
      files: {
        'namespace.yaml': [ns('whoami')],
        'service.yaml': [service('whoami', 'whoami', [{ name: 'http', port: 80 }], labelsOf('whoami'))],
        'deployment.yaml': [workload('whoami', { name: 'whoami', podSpec: { containers: [{ name: 'whoami', image: 'traefik/whoami:v1.10', ports: [{ containerPort: 80 }] }] } })],
      },
    },
  };
}

function giteaIni(domain: string): string {
  return `APP_NAME = Gitea\nRUN_MODE = prod\n\n[server]\nDOMAIN = gitea.${domain}\nROOT_URL = https://gitea.${domain}/\nHTTP_PORT = 3000\n\n[database]\nDB_TYPE = postgres\nHOST = postgres.postgres.svc.cluster.local:5432\nNAME = gitea\nUSER = gitea\n\n[repository]\nROOT = /data/git/repositories\n`;
}
