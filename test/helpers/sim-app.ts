// A simulated cluster with Wild Backup serving its data directory, for end-to-end tests.
import { startSimCluster, type SimCluster, type SimClusterOptions } from '../../src/sim/fixture.js';
import { buildApp, type AppOptions, type WildBackupApp } from '../../src/server.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from './app.js';
import type { OperationRecord } from '../../src/engine/operations/index.js';
import { afterAll, beforeAll, expect } from 'vitest';
import { registerDataDirSecrets, registerSecret, scanDataDir, watchApp } from './leaks.js';

export interface SimApp {
  sim: SimCluster;
  app: WildBackupApp;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string): Promise<{ data?: T; errors?: Array<{ message: string }> }>;
  /** Runs a mutation that answers OperationPayload and waits for the operation to finish. */
  runOperation(mutation: string, variables?: Record<string, unknown>): Promise<OperationRecord>;
  close(): Promise<void>;
}

export async function startSimApp(simOpts: SimClusterOptions = {}, appOpts: Partial<AppOptions> = {}): Promise<SimApp> {
  const sim = await startSimCluster(simOpts);
  registerSimSecrets(sim);
  let app: WildBackupApp;
  try {
    app = await buildApp({ dataDir: sim.dataDir, port: 0, env: { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN }, ...appOpts });
  } catch (err) {
    await sim.stop();
    throw err;
  }
  // Tests may replace `app` (a restart): requests always go to the current one.
  const gql: SimApp['gql'] = async (query, variables, token = ADMIN_TOKEN) => {
    const res = await watchApp(self.app).yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as never;
  };
  const self: SimApp = {
    sim, app: watchApp(app), gql,
    async runOperation(mutation, variables) {
      const res = await gql<Record<string, { __typename: string; operation?: { operationId: string }; message?: string }>>(mutation, variables);
      const payload = Object.values(res.data ?? {})[0];
      if (!payload?.operation) throw new Error(`no operation: ${JSON.stringify(res)}`);
      return self.app.services.engine.waitFor(payload.operation.operationId);
    },
    async close() {
      await self.app.stop();
      scanDataDir(sim.dataDir);
      await sim.stop();
    },
  };
  return self;
}

export const OP_FIELDS = `__typename ... on OperationPayload { operation { operationId status } } ... on Error { code message }`;

/** The simulated cluster's secrets (database and app passwords, its API token, secrets.yaml): never to be seen. */
export function registerSimSecrets(sim: SimCluster): void {
  for (const app of Object.values(sim.secrets)) registerSecret(...Object.values(app));
  registerSecret(sim.token);
  registerDataDirSecrets(sim.dataDir);
}

/** Backs up `app` of instance "test" through GraphQL (it must succeed); its latest backup's node id and backup id. */
/** Initialises the test instance's repository through GraphQL, as a user does first. */
export async function initRepository(s: SimApp): Promise<void> {
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status, JSON.stringify(init.error)).toBe('SUCCEEDED');
}

export async function backupLatest(s: SimApp, app: string): Promise<{ id: string; backupId: string }> {
  const rec = await s.runOperation(`mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  const res = await s.gql<{ instance: { app: { latestBackup: { id: string; backupId: string } } } }>(
    `query($app: String!) { instance(name: "test") { app(name: $app) { latestBackup { id backupId } } } }`, { app });
  return res.data!.instance.app.latestBackup;
}

/**
 * The suite's simulated cluster with these apps and Wild Backup, its repository initialized:
 * started before the suite's tests and stopped after them, with an exec gate a test left set
 * lifted first. Call the answer inside a test.
 */
export function useSimApp(apps: NonNullable<SimClusterOptions['apps']>): () => SimApp {
  let s: SimApp | undefined;
  beforeAll(async () => {
    s = await startSimApp({ apps });
    await initRepository(s);
  }, 180_000);
  afterAll(async () => {
    if (s) s.sim.kube.runtime.execGate = undefined;
    await s?.close();
  });
  return () => s!;
}

/**
 * Holds the cluster's exec commands that `match` picks, before they start, until `release()`,
 * which also lifts the gate (call it in a finally too; a second call does nothing more).
 */
export function holdExecs(s: SimApp, match: (command: readonly string[]) => boolean): { release(): void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  s.sim.kube.runtime.execGate = (command) => (match(command) ? gate : undefined);
  return {
    release() {
      s.sim.kube.runtime.execGate = undefined;
      open();
    },
  };
}

/** Resolves once the operation runs. */
export async function untilRunning(s: SimApp, operationId: string): Promise<void> {
  await expect.poll(() => s.app.services.engine.get(operationId)?.status, { timeout: 10_000, interval: 50 }).toBe('RUNNING');
}
