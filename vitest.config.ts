import { defineConfig } from 'vitest/config';

// Integration tests start real servers (PostgreSQL, MariaDB, sshd, s3rver, ...) on free
// ports, so files run in separate processes, in parallel, with generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: ['default'],
  },
});
