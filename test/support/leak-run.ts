// The files a secret-leak run shares between vitest's main process (global setup, the argv sampler,
// the reporter) and its forked workers: one directory (0700) named by WILD_LEAK_RUN_DIR.
//   secrets.jsonl           every registered value, one JSON line {v, k} (appended by workers)
//   findings.jsonl          every leak seen (never the value: a hint and a redacted excerpt)
//   sightings.jsonl         canaries seen by the argv sampler (proof that it runs and matches)
//   sampler.json            the sampler's heartbeat and counters
//   stats.jsonl             per test file: secrets registered, texts scanned on each channel
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecretKind } from './leak-detector.js';

export const LEAK_RUN_ENV = 'WILD_LEAK_RUN_DIR';

export type LeakChannel = 'response' | 'subscription' | 'log' | 'operation-record' | 'data-dir' | 'argv';

export interface LeakFinding {
  channel: LeakChannel;
  /** Where it was seen: the test file and test, or the process. */
  where: string;
  /** The worker process that saw it, or whose descendant showed it (argv). */
  workerPid?: number;
  hint: string;
  excerpt: string;
}

export interface SamplerStatus {
  pid: number;
  ticks: number;
  processesChecked: number;
  cmdlinesScanned: number;
  secrets: number;
  updatedAt: number;
}

export function leakRunDir(): string | undefined {
  return process.env[LEAK_RUN_ENV] || undefined;
}

export const runFile = (dir: string, name: 'secrets.jsonl' | 'findings.jsonl' | 'sightings.jsonl' | 'sampler.json' | 'stats.jsonl') => join(dir, name);

export interface FileStats { file: string; secrets: number; observed: Record<LeakChannel, number> }

/** One line on what the watch did over the run: how much each channel scanned. */
export function formatStats(files: FileStats[], sampler: SamplerStatus | null): string {
  const total: Record<string, number> = {};
  for (const f of files) for (const [k, n] of Object.entries(f.observed)) total[k] = (total[k] ?? 0) + n;
  const channels = Object.entries(total).map(([k, n]) => `${k} ${n}`).join(', ');
  const argv = sampler ? `; argv sampler: ${sampler.ticks} looks, ${sampler.cmdlinesScanned} command lines, ${sampler.secrets} secrets` : '; argv sampler: no answer';
  return `secret-leak watch: ${files.length} files, ${Math.max(0, ...files.map((f) => f.secrets))} secrets in the largest file registry; scanned ${channels}${argv}`;
}

/** `plain`: a value a test showed to be ordinary data; it is forgotten. */
export function appendRegistration(dir: string, value: string, kind: SecretKind | 'plain'): void {
  appendFileSync(runFile(dir, 'secrets.jsonl'), JSON.stringify({ v: value, k: kind }) + '\n', { mode: 0o600 });
}

export function appendFinding(dir: string, finding: LeakFinding): void {
  appendFileSync(runFile(dir, 'findings.jsonl'), JSON.stringify(finding) + '\n', { mode: 0o600 });
}

export function readJsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as T];
    } catch {
      return []; // a line being written right now
    }
  });
}

/** A readable report of findings, grouped by channel; it quotes hints and redacted excerpts only. */
export function formatFindings(findings: LeakFinding[]): string {
  const lines = [`SECRET LEAK: ${findings.length} registered secret value(s) seen where no secret may appear:`];
  for (const f of findings) lines.push(`  [${f.channel}] ${f.where}\n      secret ${f.hint}\n      … ${f.excerpt} …`);
  return lines.join('\n');
}
