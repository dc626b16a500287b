// Helper pods: a short-lived pod that mounts a PVC so its data can be streamed with tar while no
// app pod mounts it (app scaled down, or a restore into a fresh volume). Always deleted afterwards,
// on failure and on cancel too. If this process dies first, the next start of the server deletes it
// (`deleteOrphanHelperPods`: each pod is labelled with the server's id and run); failing that,
// `activeDeadlineSeconds` bounds it.
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { CallOptions, KubeClient } from './client.js';
import { podInfo, mountOf } from './discovery.js';
import { KubeAbortedError, KubeApiError, KubeNotFoundError, KubeTimeoutError } from './errors.js';
import { sleep } from './workloads.js';
import { logger } from '../util/log.js';

const log = logger('kube.helper');

/** Default image; it needs `sh` and `tar` (busybox's are enough). */
export const DEFAULT_HELPER_IMAGE = 'docker.io/library/alpine:3.20';

export interface HelperPodOptions extends CallOptions {
  namespace: string;
  pvc: string;
  image?: string;
  /** Requested mount path (default /data); the path to use is the one the API reports back. */
  mountPath?: string;
  readOnly?: boolean;
  /** How long to wait for it to run (default 3 min). */
  startTimeoutMs?: number;
  /** The node to run on: beside an app's running pod, whose ReadWriteOnce volume only that node can mount. */
  nodeName?: string;
  /** Extra labels, e.g. the operation id. */
  labels?: Record<string, string>;
}

export interface HelperPod {
  name: string;
  namespace: string;
  container: string;
  /** Where the PVC is mounted in the helper, as reported by the API server. */
  mountPath: string;
}

export const HELPER_LABEL = 'wild-backup/helper';
/** The id of the Wild Central (its data directory) whose server made the pod. */
export const HELPER_SERVER_LABEL = 'wild-backup/server';
/** The run (one start of that server) that made the pod. */
export const HELPER_RUN_LABEL = 'wild-backup/run';

/** Who makes helper pods in this process: the server's id and its current run. */
export interface HelperPodOwner {
  server: string;
  run: string;
}

let owner: HelperPodOwner | undefined;

/**
 * Sets (or, with undefined, clears) the server id and run id every helper pod made from now on is
 * labelled with (server.ts sets them at start-up). Unset, the pods carry neither label.
 */
export function setHelperPodOwner(o: HelperPodOwner | undefined): void {
  owner = o ? { ...o } : undefined;
}

export function helperPodOwner(): HelperPodOwner | undefined {
  return owner ? { ...owner } : undefined;
}

function ownerLabels(): Record<string, string> {
  return owner ? { [HELPER_SERVER_LABEL]: owner.server, [HELPER_RUN_LABEL]: owner.run } : {};
}

export async function createHelperPod(client: KubeClient, o: HelperPodOptions): Promise<HelperPod> {
  const name = `wild-backup-helper-${randomBytes(4).toString('hex')}`;
  const body: V1Pod = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: o.namespace, labels: { 'app.kubernetes.io/managed-by': 'wild-backup', [HELPER_LABEL]: 'true', ...o.labels, ...ownerLabels() } },
    spec: {
      restartPolicy: 'Never',
      ...(o.nodeName ? { nodeName: o.nodeName } : {}),
      terminationGracePeriodSeconds: 0,
      activeDeadlineSeconds: 24 * 3600,
      containers: [{
        name: 'helper', image: o.image ?? DEFAULT_HELPER_IMAGE,
        command: ['sleep', '86400'],
        securityContext: { runAsUser: 0 },
        volumeMounts: [{ name: 'data', mountPath: o.mountPath ?? '/data', readOnly: o.readOnly ?? false }],
      }],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: o.pvc, readOnly: o.readOnly ?? false } }],
    },
  };
  try {
    await client.call((c) => client.core.createNamespacedPod({ namespace: o.namespace, body }, c), o);
  } catch (err) {
    // No answer does not mean no pod: the API server may still carry out the create once it
    // answers again. Make sure a pod of that name does not outlive us.
    if (!(err instanceof KubeApiError)) reapLateHelperPod(client, { name, namespace: o.namespace });
    throw err;
  }
  return { name, namespace: o.namespace, container: 'helper', mountPath: o.mountPath ?? '/data' };
}

/** Waits until the pod runs; returns it with the mount path the API reports. */
export async function waitForHelperPod(client: KubeClient, h: HelperPod, o: HelperPodOptions): Promise<HelperPod> {
  const deadline = Date.now() + (o.startTimeoutMs ?? 180_000);
  let why = 'not scheduled yet';
  for (;;) {
    if (o.signal?.aborted) throw new KubeAbortedError(`starting helper pod ${h.namespace}/${h.name}`, o.signal.reason);
    const pod = await client.call((c) => client.core.readNamespacedPod({ namespace: h.namespace, name: h.name }, c), o, { kind: 'pod', namespace: h.namespace, name: h.name });
    const info = podInfo(pod);
    if (info.ready) {
      const mount = mountOf([pod], o.pvc);
      return { ...h, mountPath: mount?.mountPath ?? h.mountPath };
    }
    if (info.phase === 'Failed' || info.phase === 'Succeeded') throw new KubeTimeoutError(`helper pod ${h.namespace}/${h.name} ended (${info.phase}) before it ran: ${pod.status?.message ?? ''}`);
    why = pod.status?.conditions?.find((c) => c.status === 'False')?.message ?? pod.status?.containerStatuses?.[0]?.state?.waiting?.reason ?? info.phase;
    if (Date.now() > deadline) throw new KubeTimeoutError(`helper pod ${h.namespace}/${h.name} did not start in time: ${why}`);
    await sleep(200, o.signal);
  }
}

/** How long a helper pod whose delete failed (the API server did not answer) is retried in the background. */
const DELETE_RETRY_MS = 10 * 60_000;
const DELETE_RETRY_INTERVAL_MS = 3_000;

async function deleteOnce(client: KubeClient, h: Pick<HelperPod, 'name' | 'namespace'>, o: CallOptions = { timeoutMs: 15_000 }): Promise<void> {
  try {
    await client.call((c) => client.core.deleteNamespacedPod({ namespace: h.namespace, name: h.name, gracePeriodSeconds: 0 }, c), o, { kind: 'pod', namespace: h.namespace, name: h.name });
  } catch (err) {
    if (!(err instanceof KubeNotFoundError)) throw err;
  }
}

/**
 * Deletes the pod (grace 0); a pod already gone is fine. Uses its own timeout, not the caller's
 * signal. When the API server does not answer, the error is thrown as before and the delete is
 * retried in the background (every few seconds, for up to ten minutes), so a short outage does
 * not leave the pod running for the day that activeDeadlineSeconds allows.
 */
export async function deleteHelperPod(client: KubeClient, h: Pick<HelperPod, 'name' | 'namespace'>, opts: { retryForMs?: number; intervalMs?: number } = {}): Promise<void> {
  try {
    await deleteOnce(client, h);
  } catch (err) {
    const pod = `${h.namespace}/${h.name}`;
    log.warn('helper pod not deleted yet; retrying in the background', { pod, error: String(err) });
    const deadline = Date.now() + (opts.retryForMs ?? DELETE_RETRY_MS);
    const retry = (): void => {
      setTimeout(() => {
        deleteOnce(client, h).then(
          () => log.info('helper pod deleted', { pod }),
          (e: unknown) => {
            if (Date.now() < deadline) retry();
            else log.warn('helper pod not deleted; its activeDeadlineSeconds ends it', { pod, error: String(e) });
          },
        );
      }, opts.intervalMs ?? DELETE_RETRY_INTERVAL_MS).unref();
    };
    retry();
    throw err;
  }
}

/**
 * After a create that got no answer: deletes the pod if it appears, until the API server has said
 * "not found" for a while (the create was lost or refused) or ten minutes have passed.
 */
function reapLateHelperPod(client: KubeClient, h: Pick<HelperPod, 'name' | 'namespace'>): void {
  const deadline = Date.now() + DELETE_RETRY_MS;
  let absentSince: number | undefined;
  const tick = (): void => {
    setTimeout(() => {
      client.call((c) => client.core.deleteNamespacedPod({ namespace: h.namespace, name: h.name, gracePeriodSeconds: 0 }, c), { timeoutMs: 15_000 }, { kind: 'pod', namespace: h.namespace, name: h.name }).then(
        () => { log.info('deleted a helper pod whose create had timed out', { pod: `${h.namespace}/${h.name}` }); },
        (err: unknown) => {
          if (err instanceof KubeNotFoundError) absentSince ??= Date.now();
          else absentSince = undefined;
          if (Date.now() < deadline && (absentSince === undefined || Date.now() - absentSince < 30_000)) tick();
        },
      );
    }, DELETE_RETRY_INTERVAL_MS).unref();
  };
  tick();
}

/**
 * Deletes (grace 0) the helper pods, in every namespace, that an earlier run of this server left
 * behind: those labelled with `o.server` whose run is not `o.run` (a process killed before its
 * clean-up). Pods of the current run are never touched, so this is safe while operations run, and
 * so are those of another server (another Wild Central using the same cluster). A failed list or
 * delete throws (the caller tries again later); returns the pods deleted (`namespace/name`).
 */
export async function deleteOrphanHelperPods(client: KubeClient, o: HelperPodOwner & CallOptions): Promise<string[]> {
  const selector = `${HELPER_LABEL}=true,${HELPER_SERVER_LABEL}=${o.server}`;
  const list = await client.call((c) => client.core.listPodForAllNamespaces({ labelSelector: selector }, c), o);
  const deleted: string[] = [];
  for (const pod of list.items ?? []) {
    const labels = pod.metadata?.labels ?? {};
    const name = pod.metadata?.name;
    const namespace = pod.metadata?.namespace;
    // The selector is the API server's; checked again here, as what is deleted must be ours.
    if (!name || !namespace || labels[HELPER_LABEL] !== 'true' || labels[HELPER_SERVER_LABEL] !== o.server) continue;
    if (labels[HELPER_RUN_LABEL] === o.run) continue;
    await deleteOnce(client, { name, namespace }, o);
    deleted.push(`${namespace}/${name}`);
    log.info('deleted a helper pod left by an earlier run of the server', { pod: `${namespace}/${name}`, run: labels[HELPER_RUN_LABEL] ?? null });
  }
  return deleted;
}

/** Runs `fn` with a running helper pod mounting the PVC; the pod is deleted whatever happens. */
export async function withHelperPod<T>(client: KubeClient, o: HelperPodOptions, fn: (pod: HelperPod) => Promise<T>): Promise<T> {
  const created = await createHelperPod(client, o);
  try {
    const running = await waitForHelperPod(client, created, o);
    return await fn(running);
  } finally {
    // A failed delete must not hide the original error; it goes on in the background.
    await deleteHelperPod(client, created).catch((err: unknown) => log.warn('helper pod not deleted', { pod: `${created.namespace}/${created.name}`, error: String(err) }));
  }
}
