// What the backup and restore benchmarks share: facts about the machine for the report, finding a
// sim pod, the phases of an operation, and small formatters.
import { execFileSync } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import type { SimCluster } from '../src/sim/fixture.js';
import { fmtBytes } from './lib-proc.js';
import type { OperationDone } from './lib-server.js';

export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
/** KiB (as /proc reports) to MB (10^6 bytes). */
export const MB = (kib: number): number => (kib * 1024) / 1e6;
export const pass = (ok: boolean): string => (ok ? '**met**' : '**MISSED**');
export const list = (xs: number[], fmt: (n: number) => string): string => xs.map(fmt).join(', ');

const git = (args: string[]): string => {
  try { return execFileSync('git', args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return ''; }
};

/** The machine, the commit (marked when the tree has uncommitted changes) and each tool's version line. */
export function facts(tools: Record<string, string[]>): Record<string, string> {
  const cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  const osName = /PRETTY_NAME="(.+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '?';
  const fsType = execFileSync('stat', ['-f', '-c', '%T', os.tmpdir()]).toString().trim();
  const free = statfsSync(os.tmpdir());
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) ? ' (with uncommitted changes)' : '';
  const out: Record<string, string> = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit: (git(['rev-parse', '--short', 'HEAD']) || '?') + dirty,
    os: `${osName}, Linux ${os.release()}`,
    cpu: `${os.cpus().length} × ${cpu}`,
    memory: fmtBytes(os.totalmem()),
    tmp: `${os.tmpdir()} (${fsType}, ${fmtBytes(free.bavail * free.bsize)} free at start)`,
    node: process.version,
  };
  for (const [name, [cmd, ...args]] of Object.entries(tools)) out[name] = execFileSync(cmd!, args).toString().split('\n')[0]!.trim();
  return out;
}

export interface PodRef { pod: string; container: string; mountPath?: string }

interface SimPod { metadata: { name: string }; status?: { phase?: string }; spec?: { containers?: Array<{ name: string; volumeMounts?: Array<{ name: string; mountPath: string }> }>; volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> } }

/** The running pod of `ns` (that mounts `claim`, if given), its container and the mount path, from the sim's store. */
export function findPod(sim: SimCluster, ns: string, claim?: string): PodRef {
  const pods = (sim.kube.runtime.store.list('pods', ns) as unknown as SimPod[]).filter((p) => p.status?.phase === 'Running');
  for (const p of pods) {
    const containers = p.spec?.containers ?? [];
    if (!claim) return { pod: p.metadata.name, container: containers[0]!.name };
    const vol = p.spec?.volumes?.find((v) => v.persistentVolumeClaim?.claimName === claim);
    if (!vol) continue;
    for (const c of containers) {
      const m = c.volumeMounts?.find((x) => x.name === vol.name);
      if (m) return { pod: p.metadata.name, container: c.name, mountPath: m.mountPath };
    }
  }
  throw new Error(`no running pod in ${ns}${claim ? ` mounting ${claim}` : ''}`);
}

/** How long each polled phase lasted, ms (100 ms resolution). */
export function phaseDurations(op: OperationDone): Record<string, number> {
  const out: Record<string, number> = {};
  op.phases.forEach((p, i) => {
    const end = i + 1 < op.phases.length ? op.phases[i + 1]!.atMs : op.clientMs;
    out[p.phase] = (out[p.phase] ?? 0) + end - p.atMs;
  });
  return out;
}
