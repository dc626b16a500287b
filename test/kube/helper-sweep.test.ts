// Helper pods left behind by a server that died (SIGKILL) are deleted when the server starts again,
// before its start-up recovery runs (which makes new helper pods for the same volumes: on a
// ReadWriteOnce volume the orphan would keep it attached for a day). Helper pods of the current run
// and those of another Wild Central are never touched, and a cluster that does not answer at
// start-up neither holds the start nor escapes the sweep: it is swept once it answers.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import {
  createHelperPod, deleteHelperPod, deleteOrphanHelperPods, helperPodOwner, kubeClientFor, listWorkloads, scaleAndWait,
  HELPER_LABEL, HELPER_RUN_LABEL, HELPER_SERVER_LABEL, type KubeClient,
} from '../../src/kube/index.js';
import { buildApp, type WildBackupApp } from '../../src/server.js';
import { startSimCluster, type SimCluster } from '../../src/sim/fixture.js';
import { observeLogLines } from '../../src/util/log.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from '../helpers/app.js';
import { registerSimSecrets } from '../helpers/sim-app.js';
import { scanDataDir } from '../helpers/leaks.js';
import { gqlAt, killServer, spawnServer } from '../helpers/server-process.js';
import { pauseResticOnce } from '../helpers/faults.js';

const NS = 'website';
const PVC = 'website-content';
const env = { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN };

let sim: SimCluster;
let client: KubeClient;
let child: ChildProcess | undefined;
let url = '';
let app: WildBackupApp | undefined;

async function startServerProcess(): Promise<void> {
  ({ child, url } = await spawnServer(sim.dataDir));
}

function kill(): Promise<void> {
  const c = child!;
  child = undefined;
  return killServer(c);
}

const gql = <T>(query: string, variables?: Record<string, unknown>): Promise<T> => gqlAt<T>(url, query, variables);

/** Waits until the operation's phase names `what` with bytes moved, or until it has `status`. */
async function waitForOperation(opId: string, o: { phase?: string; status?: string }): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const d = await gql<{ operation: { status: string; progress: { phase: string; bytesDone: number } } }>(`query($id: ID!) { operation(id: $id) { status progress { phase bytesDone } } }`, { id: opId });
    if (o.phase && d.operation.progress.phase.includes(o.phase) && d.operation.progress.bytesDone > 0) return;
    if (o.status && d.operation.status === o.status) return;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(d.operation.status)) throw new Error(`operation ended ${d.operation.status} first`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`operation never reached ${JSON.stringify(o)}`);
}

/** The helper pods in the app's namespace, as the cluster has them once deletions have gone through. */
async function helperPods(): Promise<V1Pod[]> {
  await sim.kube.runtime.settle();
  const list = await client.call((c) => client.core.listNamespacedPod({ namespace: NS, labelSelector: `${HELPER_LABEL}=true` }, c));
  return list.items;
}
const names = (pods: V1Pod[]): string[] => pods.map((p) => p.metadata!.name!).sort();

/** A helper pod made by hand with these owner labels (another server's, or an earlier run's). */
async function labelledHelperPod(name: string, labels: Record<string, string>): Promise<string> {
  await client.call((c) => client.core.createNamespacedPod({
    namespace: NS,
    body: {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: NS, labels: { [HELPER_LABEL]: 'true', ...labels } },
      spec: {
        restartPolicy: 'Never', terminationGracePeriodSeconds: 0,
        containers: [{ name: 'helper', image: 'docker.io/library/alpine:3.20', command: ['sleep', '86400'], volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: PVC, readOnly: true } }],
      },
    },
  }, c));
  return name;
}

const serverIdOnDisk = (): string => readFileSync(path.join(sim.dataDir, 'wild-backup', 'server-id'), 'utf8').trim();

beforeAll(async () => {
  sim = await startSimCluster({ apps: ['website'] });
  registerSimSecrets(sim);
  client = kubeClientFor(sim.kubeconfigPath);
  // Enough bytes for the kill to land mid-stream; the app scaled down, so a helper pod mounts the volume.
  await writeFile(path.join(sim.pvcDir(NS, PVC), 'large.bin'), Buffer.alloc(64 << 20, 7));
  for (const w of await listWorkloads(client, NS)) await scaleAndWait(client, w, 0, { timeoutMs: 30_000 });
  await startServerProcess();
  const init = await gql<{ initRepository: { operation: { operationId: string } } }>(`mutation { initRepository(input: { instance: "test" }) { ... on OperationPayload { operation { operationId } } } }`);
  await waitForOperation(init.initRepository.operation.operationId, { status: 'SUCCEEDED' });
}, 180_000);

afterAll(async () => {
  if (child) await kill();
  await app?.stop();
  if (sim) scanDataDir(sim.dataDir);
  await sim?.stop();
});

describe('helper pods left by an earlier run of the server', () => {
  let orphan = '';
  let orphanRun = '';
  const foreign = 'wild-backup-helper-foreign1';

  it('are deleted when the server starts again, before its start-up recovery; another server\'s are left alone', async () => {
    const b = await gql<{ backupApp: { operation: { operationId: string } } }>(`mutation { backupApp(input: { instance: "test", app: "website" }) { ... on OperationPayload { operation { operationId } } } }`);
    const opId = b.backupApp.operation.operationId;
    const holding = pauseResticOnce(['backup', `${NS}/pvc-${PVC}.tar`], 'rchar', 1 << 20, { parent: child!.pid });
    holding.catch(() => undefined);
    await waitForOperation(opId, { phase: 'pvc' });
    const held = await holding;

    // The backup streams through a helper pod labelled with the server's id (kept in the data
    // directory) and the run of the server process.
    const during = await helperPods();
    expect(during).toHaveLength(1);
    orphan = during[0]!.metadata!.name!;
    const labels = during[0]!.metadata!.labels!;
    expect(labels[HELPER_SERVER_LABEL]).toBe(serverIdOnDisk());
    orphanRun = labels[HELPER_RUN_LABEL]!;
    expect(orphanRun).toMatch(/^[0-9a-f]{16}$/);

    await kill();
    held.resume();
    for (let i = 0; i < 300 && existsSync(`/proc/${held.pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    // Nobody deleted it: the process that would have is gone.
    expect(names(await helperPods())).toEqual([orphan]);
    // Another Wild Central's helper pod in the same cluster (say a second data directory).
    await labelledHelperPod(foreign, { [HELPER_SERVER_LABEL]: 'f0f0f0f0f0f0f0f0', [HELPER_RUN_LABEL]: orphanRun });

    // Start again, in this process, watching the order of what happens at start-up.
    const events: string[] = [];
    let sweptAt: number | undefined;
    let orphanAliveAtRecovery: boolean | undefined;
    const stopObserving = observeLogLines((line) => {
      const l = JSON.parse(line) as { msg: string; pod?: string; operation?: string };
      if (l.msg === 'deleted a helper pod left by an earlier run of the server') {
        events.push(`swept ${l.pod}`);
        if (l.pod === `${NS}/${orphan}`) sweptAt = Date.now();
      }
      if (l.msg === 'operation interrupted by a restart' && l.operation === opId) {
        events.push('recovered');
        // Read synchronously as the recovery of the interrupted backup is logged: gone or terminating.
        const pod = sim.kube.runtime.store.get('pods', NS, orphan);
        orphanAliveAtRecovery = pod !== undefined && pod.metadata.deletionTimestamp === undefined;
      }
    });
    try {
      app = await buildApp({ dataDir: sim.dataDir, port: 0, env });
    } finally {
      stopObserving();
    }

    const rec = app.services.engine.get(opId)!;
    expect(rec.error?.code).toBe('INTERRUPTED');
    // The orphan was deleted, and before the start-up recovery began (it marks the record first).
    expect(events).toEqual([`swept ${NS}/${orphan}`, 'recovered']);
    expect(sweptAt).toBeDefined();
    expect(sweptAt!).toBeLessThanOrEqual(Date.parse(rec.finishedAt!));
    expect(orphanAliveAtRecovery).toBe(false);
    expect(names(await helperPods())).toEqual([foreign]);
    // Same Wild Central, new run.
    expect(helperPodOwner()?.server).toBe(serverIdOnDisk());
    expect(helperPodOwner()?.server).toBe(labels[HELPER_SERVER_LABEL]);
    expect(helperPodOwner()?.run).not.toBe(orphanRun);
  }, 180_000);

  it('a sweep while the server runs deletes an earlier run\'s pods only, never the current run\'s', async () => {
    const owner = helperPodOwner()!;
    const current = await createHelperPod(client, { namespace: NS, pvc: PVC, readOnly: true });
    const stale = await labelledHelperPod('wild-backup-helper-stale01', { [HELPER_SERVER_LABEL]: owner.server, [HELPER_RUN_LABEL]: orphanRun });
    const created = (await helperPods()).find((p) => p.metadata!.name === current.name)!;
    expect(created.metadata!.labels).toMatchObject({ [HELPER_SERVER_LABEL]: owner.server, [HELPER_RUN_LABEL]: owner.run });

    const deleted = await deleteOrphanHelperPods(client, { ...owner, timeoutMs: 10_000 });
    expect(deleted).toContain(`${NS}/${stale}`);
    expect(deleted).not.toContain(`${NS}/${current.name}`);
    expect(deleted).not.toContain(`${NS}/${foreign}`);
    const left = names(await helperPods());
    expect(left).toEqual(expect.arrayContaining([current.name, foreign]));
    expect(left).not.toContain(stale);
    await deleteHelperPod(client, current);
  });

  it('a cluster that does not answer at start-up holds the start for the sweep\'s bound only, and is swept once it answers', async () => {
    await app!.stop();
    app = undefined;
    const server = serverIdOnDisk();
    const earlier = await labelledHelperPod('wild-backup-helper-earlier', { [HELPER_SERVER_LABEL]: server, [HELPER_RUN_LABEL]: orphanRun });
    const warnings: string[] = [];
    const stopObserving = observeLogLines((line) => {
      const l = JSON.parse(line) as { level: string; msg: string };
      if (l.level === 'warn' && l.msg.includes('helper pods left by an earlier run')) warnings.push(l.msg);
    });
    sim.kube.api.setHanging(true);
    try {
      const t0 = Date.now();
      app = await buildApp({ dataDir: sim.dataDir, port: 0, env, helperSweepTimeoutMs: 1_000, helperSweepRetryMs: 300 });
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(warnings).toHaveLength(1);
      expect(sim.kube.runtime.store.get('pods', NS, earlier)?.metadata.deletionTimestamp).toBeUndefined();
    } finally {
      sim.kube.api.setHanging(false);
      stopObserving();
    }
    // Retried in the background until it gets through.
    for (let i = 0; i < 200 && sim.kube.runtime.store.get('pods', NS, earlier) !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(names(await helperPods())).toEqual([foreign]);
    await deleteHelperPod(client, { namespace: NS, name: foreign });
  }, 60_000);
});
