// The artifacts of a cluster backup: the instance's own files (config.yaml, secrets.yaml,
// kubeconfig, talosconfig) and, where talosctl is installed and configured, an etcd snapshot.
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { ArtifactSource } from '../../engine/backup/source.js';
import type { InstanceInfo, WildStore } from '../../wild/store.js';
import type { TarEntry } from './tar.js';
import { tarStream } from './tar.js';

async function instanceFiles(store: WildStore, inst: InstanceInfo): Promise<TarEntry[]> {
  const files: Array<[string, string]> = [
    ['config.yaml', store.paths.configFile(inst.name)],
    ['secrets.yaml', store.paths.secretsFile(inst.name)],
    ['kubeconfig', store.paths.kubeconfigFile(inst.name)],
    ['talos/generated/talosconfig', store.paths.talosconfigFile(inst.name)],
  ];
  const out: TarEntry[] = [];
  for (const [name, file] of files) {
    const content = await readFile(file).catch(() => null);
    if (content) out.push({ name, content, mode: 0o600 });
  }
  return out;
}

export function clusterConfigSource(store: WildStore, inst: InstanceInfo): ArtifactSource {
  return {
    artifact: { kind: 'cluster-config', name: inst.name },
    extension: '.tar',
    async estimate() {
      return (await instanceFiles(store, inst)).reduce((n, e) => n + 512 + Math.ceil(Buffer.byteLength(e.content) / 512) * 512, 1024);
    },
    async open() {
      const entries = await instanceFiles(store, inst);
      return { stream: tarStream(entries), finished: Promise.resolve({ files: entries.map((e) => e.name) }) };
    },
  };
}

/** Why an etcd snapshot cannot be taken here, or null when talosctl and a talosconfig are present. */
export function etcdUnavailableReason(inst: InstanceInfo): string | null {
  if (!inst.talosconfigPath) return 'no talos/generated/talosconfig for this instance';
  const probe = spawnSync('talosctl', ['version', '--client'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) return 'talosctl is not installed on this machine';
  return null;
}

/** `talosctl etcd snapshot /dev/stdout` streamed as the `etcd` artifact. */
export function etcdSnapshotSource(inst: InstanceInfo): ArtifactSource {
  return {
    artifact: { kind: 'etcd', name: inst.name },
    extension: '.db',
    estimate: async () => null,
    async open(signal) {
      const child = spawn('talosctl', ['--talosconfig', inst.talosconfigPath!, 'etcd', 'snapshot', '/dev/stdout'], { stdio: ['ignore', 'pipe', 'pipe'], signal });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4096); });
      const finished = new Promise<Record<string, unknown>>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve({}) : reject(new Error(`talosctl exited with code ${code}: ${stderr.trim()}`))));
      });
      return { stream: child.stdout, finished };
    },
  };
}
