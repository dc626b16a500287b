// An instance whose cluster cannot be reached: Instance.cluster says so within the timeout, and
// the rest of the graph (apps, databases, operations) still answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  // A kubeconfig whose API server is a port nothing listens on.
  await t.data.write('instances/home/kubeconfig', [
    'apiVersion: v1', 'kind: Config', 'current-context: dead',
    'clusters: [{ name: dead, cluster: { server: "https://127.0.0.1:9", insecure-skip-tls-verify: true } }]',
    'users: [{ name: dead, user: { token: not-a-real-token-0000 } }]',
    'contexts: [{ name: dead, context: { cluster: dead, user: dead } }]', '',
  ].join('\n'), 0o600);
});
afterAll(async () => { await t.close(); });

describe('an unreachable cluster', () => {
  it('is reported quickly, and apps and databases still answer', async () => {
    const started = Date.now();
    const res = await t.gql<{ instance: { cluster: { reachable: boolean; error: string }; apps: Array<{ name: string; databases: unknown[]; volumes: unknown[] }> } }>(
      `{ instance(name: "home") { cluster { reachable version error } apps { name databases { engine } volumes { name } } } }`);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(res.errors).toBeUndefined();
    expect(res.data!.instance.cluster.reachable).toBe(false);
    expect(res.data!.instance.cluster.error).toBeTruthy();
    const gitea = res.data!.instance.apps.find((a) => a.name === 'gitea')!;
    expect(gitea.databases).toHaveLength(1);
    expect(gitea.volumes).toEqual([]);
  });

  it('an instance without a kubeconfig says so', async () => {
    await t.data.write('instances/other/config.yaml', 'cloud: {}\n');
    const res = await t.gql<{ instance: { cluster: { reachable: boolean; error: string } } }>(`{ instance(name: "other") { cluster { reachable error } } }`);
    expect(res.data!.instance.cluster).toEqual({ reachable: false, error: 'no kubeconfig for this instance' });
  });
});
