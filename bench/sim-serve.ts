// Runs a bare simulated cluster with one app pod in its own process (so a benchmark measures only
// the client), prints {"kubeconfig", "namespace", "pod"} as one JSON line, stops on SIGTERM/SIGINT.
import { startSimKube } from '../src/sim/index.js';

const sim = await startSimKube();
const labels = { app: 'bench' };
sim.apply([
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench', labels } },
  {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'bench', namespace: 'bench', labels },
    spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'busybox' }] } } },
  },
]);
await sim.waitForPods();
const pod = sim.runtime.store.list('pods', 'bench')[0]!.metadata.name;
process.stdout.write(JSON.stringify({ kubeconfig: sim.kubeconfigPath, namespace: 'bench', pod }) + '\n');
const stop = async (): Promise<void> => { await sim.stop(); process.exit(0); };
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
