// The simulated Wild Cloud cluster (ARCHITECTURE §6): public face for tests, benchmarks and the demo.
export { startSimCluster, type SimCluster, type SimClusterOptions, type SimPvc, type SimSizes } from './fixture.js';
export { startSimKube, kubeconfigYaml, type SimKube, type SimKubeOptions } from './kube.js';
export { DEMO_APPS, demoApps, type DemoApp, type DemoAppName } from './apps.js';
export { PostgresServer, MariadbServer, RedisServer, postgresBinDir, type DatabaseEngine } from './databases.js';
export { SimApiServer, SIM_VERSION } from './apiserver.js';
export { SimRuntime, type PodBacking } from './runtime.js';
export { EXEC_PROTOCOLS, type ExecProtocol } from './exec.js';
export type { KubeObject, ObjectMeta } from './objects.js';
