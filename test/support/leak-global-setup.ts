// Global setup of the secret-leak harness (see test/helpers/leaks.ts): a run directory shared with
// the workers, and the argv sampler for the whole run. The verdict (every leak any channel saw)
// is given by the summary reporter at the end of the run, or here at teardown without it.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LEAK_RUN_ENV, formatFindings, readJsonLines, runFile, type LeakFinding, type SamplerStatus } from './leak-run.js';

export interface LeakRun {
  dir: string;
  /** Stops the sampler (once) and answers every finding of the run. */
  verdict(): Promise<{ findings: LeakFinding[]; sampler: SamplerStatus | null }>;
  reported: boolean;
}

const KEY = Symbol.for('wild-backup.leak-run');
type WithRun = typeof globalThis & { [KEY]?: LeakRun };

export function currentLeakRun(): LeakRun | undefined {
  return (globalThis as WithRun)[KEY];
}

function startSampler(dir: string): ChildProcess {
  const file = fileURLToPath(new URL('./leak-sampler.ts', import.meta.url));
  const child = fork(file, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, [LEAK_RUN_ENV]: dir }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.unref();
  child.channel?.unref();
  return child;
}

export default function setup(): () => Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wild-leaks-'));
  process.env[LEAK_RUN_ENV] = dir;
  const sampler = startSampler(dir);
  let result: Promise<{ findings: LeakFinding[]; sampler: SamplerStatus | null }> | undefined;

  const stopSampler = () =>
    new Promise<SamplerStatus | null>((resolve) => {
      if (sampler.exitCode !== null || !sampler.connected) return resolve(null);
      const timer = setTimeout(() => { sampler.kill(); resolve(null); }, 5_000);
      sampler.once('message', (m: { type: string; status: SamplerStatus }) => { clearTimeout(timer); resolve(m.status); });
      sampler.send({ type: 'stop' });
    });

  const run: LeakRun = {
    dir,
    reported: false,
    verdict: () =>
      (result ??= stopSampler().then((status) => ({ findings: readJsonLines<LeakFinding>(runFile(dir, 'findings.jsonl')), sampler: status }))),
  };
  (globalThis as WithRun)[KEY] = run;

  return async () => {
    const { findings, sampler: status } = await run.verdict();
    if (!run.reported) {
      run.reported = true;
      if (findings.length) {
        process.stderr.write(`\n${formatFindings(findings)}\n`);
        process.exitCode = 1;
      }
    }
    if (status === null) process.stderr.write('secret-leak harness: the argv sampler did not answer at the end of the run\n');
    delete (globalThis as WithRun)[KEY];
    // The registry holds the (test) secrets themselves: nothing of it stays on disk.
    rmSync(dir, { recursive: true, force: true });
  };
}
