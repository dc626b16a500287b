// Prints the closing line CI reads: "tests: N passed, N failed, N skipped" alone on a line.
import type { Reporter, TestModule } from 'vitest/node';
import { currentLeakRun } from './leak-global-setup.js';
import { formatFindings, formatStats, readJsonLines, runFile, type FileStats } from './leak-run.js';

export default class SummaryReporter implements Reporter {
  async onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): Promise<void> {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      // A file that failed to load (syntax error, failing beforeAll) counts as a failure.
      if (mod.state() === 'failed' && [...mod.children.allTests()].every((t) => t.result().state !== 'failed')) failed++;
    }
    failed += unhandledErrors.length;
    // The secret-leak watch: a leak a test file saw failed that file already; one seen in a
    // process of no test file (the argv sampler) fails the run here.
    const leaks = currentLeakRun();
    if (leaks && !leaks.reported) {
      leaks.reported = true;
      const { findings, sampler } = await leaks.verdict();
      process.stdout.write(`\n${formatStats(readJsonLines<FileStats>(runFile(leaks.dir, 'stats.jsonl')), sampler)}\n`);
      if (findings.length) {
        process.stdout.write(`\n${formatFindings(findings)}\n`);
        process.exitCode = 1;
      }
      if (findings.some((f) => f.workerPid === undefined)) failed++;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
