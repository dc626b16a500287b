// Starts Wild Backup on a temp data dir, in process, with known tokens.
import { buildApp, type WildBackupApp } from '../../src/server.js';
import { tempDataDir, type TempDataDir } from './data-dir.js';
import { registerDataDirSecrets, scanDataDir, watchApp } from './leaks.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const READONLY_TOKEN = 'test-readonly-token-0123456789abcdef';

export interface TestApp {
  app: WildBackupApp;
  data: TempDataDir;
  /** Runs a GraphQL request through yoga.fetch (no port). */
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<{ status: number; data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>;
  close(): Promise<void>;
}

export async function startTestApp(opts: { data?: TempDataDir; concurrency?: number; maxDepth?: number; maxCost?: number; repositoryTimeoutMs?: number } = {}): Promise<TestApp> {
  const data = opts.data ?? (await tempDataDir());
  registerDataDirSecrets(data.dir);
  const app = await buildApp({
    dataDir: data.dir,
    port: 0,
    concurrency: opts.concurrency,
    maxDepth: opts.maxDepth,
    maxCost: opts.maxCost,
    repositoryTimeoutMs: opts.repositoryTimeoutMs,
    env: { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN },
  });
  // Every answer of app.yoga.fetch is scanned for registered secrets (test/helpers/leaks.ts).
  watchApp(app);
  return {
    app,
    data,
    async gql(query, variables, token = ADMIN_TOKEN) {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const res = await app.yoga.fetch('http://localhost/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const body = (await res.json()) as { data?: never; errors?: never };
      return { status: res.status, ...body };
    },
    async close() {
      await app.stop();
      // Also scanned by cleanup(); a caller's data dir is scanned here, as it may outlive this app.
      if (!opts.data) await data.cleanup();
      else scanDataDir(data.dir);
    },
  };
}
