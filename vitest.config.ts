import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// Integration tests start real servers (PostgreSQL, MariaDB, sshd, s3rver, ...) on free
// ports, so files run in separate processes, in parallel, with generous timeouts.
export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (main) and ESM (module) without an exports map: Node (and so Pothos,
    // Yoga) load the CJS build, Vite would load the ESM one. One realm: the one Node uses.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Most files wait on restic, databases and servers rather than on the CPU: run several at once.
    maxWorkers: 4,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // The secret-leak watch over the whole suite (test/helpers/leaks.ts): a run directory and the
    // argv sampler for the run, and in every worker the hooks on each channel a secret could leave by.
    globalSetup: ['./test/support/leak-global-setup.ts'],
    setupFiles: ['./test/support/leak-setup.ts'],
    // Servers under test log warnings and errors only; tests that read logs set their own sink.
    env: { WILD_BACKUP_LOG_LEVEL: 'warn' },
  },
});
