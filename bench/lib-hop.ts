// The set-up shared by the exec-hop benchmarks (exec-hop.ts, exec-feed.ts): a file of random bytes
// a pod reads, a fresh local restic repository per measurement, and a bare simulated cluster in its
// own process (bench/sim-serve.ts) with a client of ours (dist/kube) that reaches its one pod.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { writeRandomFile } from '../src/sim/random.js';
import { run } from './lib-proc.js';

type Kube = typeof import('../src/kube/index.js');

export interface HopBench {
  kube: Kube;
  client: import('../src/kube/index.js').KubeClient;
  target: { kubeconfig: string; namespace: string; pod: string };
  sim: ChildProcess;
  work: string;
  /** The random file, in the pod's view too (the simulated pod shares this machine's files). */
  file: string;
  /** restic's environment: password, repository and cache in the work directory. */
  env: NodeJS.ProcessEnv;
  /** An empty repository again (and an empty cache). */
  fresh(): Promise<void>;
  /** Stops the simulated cluster and removes the work directory. */
  close(): void;
}

export async function startHopBench(name: string, size: number): Promise<HopBench> {
  const kube = (await import(pathToFileURL(path.resolve('dist/kube/index.js')).href)) as Kube;
  const work = mkdtempSync(path.join(os.tmpdir(), `wild-bench-${name}-`));
  const file = path.join(work, 'random.bin');
  writeRandomFile(file, size, Buffer.alloc(1 << 20));
  const env = { ...process.env, RESTIC_PASSWORD: `bench-${name}-password`, RESTIC_REPOSITORY: path.join(work, 'repo'), RESTIC_CACHE_DIR: path.join(work, 'cache'), RESTIC_PROGRESS_FPS: '2' };
  // With the server's heap floor (src/util/heap.ts): stream chunks would otherwise cost full
  // collections (docs/DESIGN.md, "The server's heap").
  const sim = spawn(process.execPath, ['--initial-old-space-size=128', '--import', 'tsx', 'bench/sim-serve.ts'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const target = JSON.parse(await new Promise<string>((r) => createInterface({ input: sim.stdout! }).once('line', r))) as HopBench['target'];
  const client = kube.kubeClientFor(target.kubeconfig);
  await kube.execText(client, { namespace: target.namespace, pod: target.pod, command: ['true'] });
  return {
    kube, client, target, sim, work, file, env,
    async fresh() {
      rmSync(env.RESTIC_REPOSITORY, { recursive: true, force: true });
      rmSync(env.RESTIC_CACHE_DIR, { recursive: true, force: true });
      await run('restic', ['init'], { env });
    },
    close() {
      sim.kill('SIGTERM');
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** What the pod runs to write the file: cat (128 KiB writes), or dd in writes of `block` bytes (pg_dump writes 4 KiB, tar 10 KiB). */
export function readerCommand(file: string, block?: string | number): string[] {
  return block ? ['dd', `if=${file}`, `bs=${block}`, 'status=none'] : ['cat', file];
}
