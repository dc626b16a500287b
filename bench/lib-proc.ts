// Process helpers of the backup benchmark: timed shell pipelines, `du -sb`, and a sampler of a
// process's memory (VmRSS / VmHWM from /proc once a second, and the peak of its restic children).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface RunResult { code: number; stdout: string; stderr: string; ms: number }

/** Runs argv (no shell), collects output; rejects on a non-zero exit unless `allowFail`. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; allowFail?: boolean } = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) => {
      const r = { code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - t0 };
      if (r.code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ').slice(0, 300)} exited ${r.code}: ${r.stderr.slice(-2000)}`));
      else resolve(r);
    });
  });
}

/** Runs a bash script with `set -euo pipefail` (the direct pipelines); resolves with its wall time. */
export function sh(script: string, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return run('bash', ['-c', `set -euo pipefail\n${script}`], { env });
}

/** Single-quotes a value for a bash script. */
export const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export async function duBytes(dir: string): Promise<number> {
  const r = await run('du', ['-sb', dir]);
  return Number(r.stdout.split(/\s+/)[0]);
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Children of `pid` whose command name is `comm` (this kernel has no /proc/<pid>/task/<tid>/children). */
export function childrenNamed(pid: number, comm: string): number[] {
  const found: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === pid && name === comm) found.push(Number(e));
    } catch { /* gone */ }
  }
  return found;
}

export interface MemoryPeak {
  /** Highest VmRSS seen by the sampler, KiB. */
  sampledPeakKiB: number;
  /** The kernel's high-water mark (VmHWM) at the last sample, KiB: the true peak since the process started. */
  vmHwmKiB: number;
  /** VmRSS at the first sample (before the work started), KiB. */
  startKiB: number;
  /** The highest VmHWM of any restic child seen, KiB (restic's own memory, not the server's). */
  resticPeakKiB: number;
  samples: number;
}

/**
 * Samples a process's memory every `everyMs` until stop(). The process's peak needs no sampling
 * (VmHWM, read at the stop, is the kernel's own); the ticks are for restic children, whose peak
 * must be read before they exit. A tick scans /proc (1.3 ms of CPU with ~80 processes): at
 * 100 ms with a scan every 3rd tick that was 0.24 CPU-s per 20 s (measured alone), spent in the
 * benchmark process on the machine's two busy cores while ours ran, and never while direct ran
 * (until 2026-11-28). Once a second it is ~0.03; a restic that lives less than a second (the
 * small artifacts') may go unseen, and it is not the one with the peak. Without `resticChildren`
 * a tick reads one small file twice.
 */
export function sampleMemory(pid: number, everyMs = 1000, resticChildren = true): { stop(): MemoryPeak } {
  const peak: MemoryPeak = { sampledPeakKiB: 0, vmHwmKiB: 0, startKiB: statusKiB(pid, 'VmRSS') ?? 0, resticPeakKiB: 0, samples: 0 };
  const sample = (): void => {
    const rss = statusKiB(pid, 'VmRSS');
    const hwm = statusKiB(pid, 'VmHWM');
    if (rss !== null) peak.sampledPeakKiB = Math.max(peak.sampledPeakKiB, rss);
    if (hwm !== null) peak.vmHwmKiB = Math.max(peak.vmHwmKiB, hwm);
    peak.samples++;
    if (resticChildren) for (const c of childrenNamed(pid, 'restic')) peak.resticPeakKiB = Math.max(peak.resticPeakKiB, statusKiB(c, 'VmHWM') ?? 0);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      sample();
      clearInterval(timer);
      return { ...peak };
    },
  };
}

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64

/** CPU seconds of a process: its own (utime + stime) and those of its children it has reaped (cutime + cstime). */
export function cpuTimes(pid: number): { self: number; children: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // Fields 14-17 of proc(5) (utime stime cutime cstime) are at 11-14 once pid and comm are cut off.
    return { self: (f[11]! + f[12]!) / CLK_TCK, children: (f[13]! + f[14]!) / CLK_TCK };
  } catch {
    return { self: 0, children: 0 };
  }
}

/** CPU seconds the whole machine has been busy (all cores; /proc/stat: all but idle and iowait). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / CLK_TCK;
}

/** The 1-minute load average. */
export const loadAverage = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

export function vmRssKiB(pid: number): number {
  return statusKiB(pid, 'VmRSS') ?? 0;
}

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size "${s}" (examples: 64M, 1G, 4G)`);
  return Math.round(Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 } as Record<string, number>)[m[2]!.toUpperCase()]!);
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : v < 10 ? 2 : 1)} ${units[i]}`;
}

export const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
