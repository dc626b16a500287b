// The simulated cluster's behaviour behind the API: admission, pod lifecycle, PVC host directories,
// the processes that back database pods, and the exec sessions that run inside pods.
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { logger } from '../util/log.js';
import {
  ApiError, DNS1123_LABEL, DNS1123_SUBDOMAIN, clone, nowIso, podSpec, randomSuffix,
  type Container, type KubeObject,
} from './objects.js';
import { ObjectStore } from './store.js';
import { translatePodPaths } from './paths.js';
import { WorkloadController, type WorkloadPlural } from './workloads.js';

const log = logger('sim');
export const NODE_NAME = 'wild-sim-node-1';
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A local server that stands for the container of matching pods (PostgreSQL, MariaDB, Redis). */
export interface PodBacking {
  readonly name: string;
  /** True if this pod is one of the backed workload's pods (namespace + labels). */
  matches(pod: KubeObject): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Environment a command exec'd in the pod sees on top of the container's own env. */
  execEnv(): Record<string, string>;
}

/** A running exec; the runtime ends it when its pod goes away or the sim stops. */
export interface ExecSession {
  podGone(): void;
}

export interface ExecTarget {
  pod: KubeObject;
  container: Container;
  env: Record<string, string>;
  cwd: string;
  podKey: string;
}

export interface RuntimeOptions {
  stateDir: string;
  /** Delay between a pod's creation and it running (default 30 ms), so clients really wait. */
  podStartDelayMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const podKey = (ns: string, name: string): string => `${ns}/${name}`;

export class SimRuntime {
  readonly store = new ObjectStore();
  readonly stateDir: string;
  readonly workloads: WorkloadController;
  private readonly startDelay: number;
  private readonly backings: PodBacking[] = [];
  private readonly backingUsers = new Map<PodBacking, Set<string>>();
  private readonly backingChain = new Map<PodBacking, Promise<void>>();
  private readonly execSessions = new Map<string, Set<ExecSession>>();
  private readonly inflight = new Set<Promise<unknown>>();
  private stopped = false;
  /**
   * Tests: consulted before an exec'd command starts; a promise returned holds the command back
   * until it settles (the exec socket is open meanwhile, as when a container is slow to start it).
   */
  execGate: ((command: readonly string[]) => Promise<void> | undefined) | undefined;

  constructor(opts: RuntimeOptions) {
    this.stateDir = opts.stateDir;
    this.startDelay = opts.podStartDelayMs ?? 30;
    mkdirSync(path.join(this.stateDir, 'pvcs'), { recursive: true });
    mkdirSync(path.join(this.stateDir, 'pods'), { recursive: true });
    this.workloads = new WorkloadController(this);
    for (const ns of ['default', 'kube-system', 'kube-public']) this.create('namespaces', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  }

  pvcDir(ns: string, claim: string): string {
    return path.join(this.stateDir, 'pvcs', ns, claim);
  }

  podDir(ns: string, pod: string): string {
    return path.join(this.stateDir, 'pods', ns, pod);
  }

  addBacking(b: PodBacking): void {
    this.backings.push(b);
    this.backingUsers.set(b, new Set());
  }

  /** Runs async work that stop() and settle() wait for. */
  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.catch(() => undefined).finally(() => this.inflight.delete(p));
    return p;
  }

  /** Resolves once no pod is starting or terminating. */
  async settle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  // ---- create / replace / delete, as the API server calls them ----

  create(plural: string, ns: string | undefined, body: KubeObject): KubeObject {
    const def = this.store.def(plural);
    if (this.stopped) throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'the server is shutting down', reason: 'ServiceUnavailable', code: 503 });
    const obj = clone(body);
    obj.metadata = obj.metadata ?? { name: '' };
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = obj.metadata.generateName + randomSuffix(5);
    const name = obj.metadata.name;
    if (!name) throw ApiError.invalid(def.kind, '', 'metadata.name', 'Required value: name or generateName is required');
    const nameOk = plural === 'namespaces' || plural === 'services' ? DNS1123_LABEL.test(name) && name.length <= 63 : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
    if (!nameOk) throw ApiError.invalid(def.kind, name, 'metadata.name', `Invalid value: "${name}": a lowercase RFC 1123 name must consist of lower case alphanumeric characters or '-'`);
    if (def.namespaced) {
      const targetNs = ns ?? obj.metadata.namespace ?? 'default';
      if (obj.metadata.namespace && obj.metadata.namespace !== targetNs) throw ApiError.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      obj.metadata.namespace = targetNs;
      const nsObj = this.store.peek('namespaces', undefined, targetNs);
      if (!nsObj) throw ApiError.notFound('namespaces', targetNs);
      if (nsObj.metadata.deletionTimestamp) throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `${plural} "${name}" is forbidden: unable to create new content in namespace ${targetNs} because it is being terminated`, reason: 'Forbidden', code: 403 });
    } else {
      delete obj.metadata.namespace;
    }
    switch (plural) {
      case 'namespaces': obj.spec = { finalizers: ['kubernetes'] }; obj.status = { phase: 'Active' }; obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': name }; break;
      case 'secrets': admitSecret(obj); break;
      case 'persistentvolumeclaims': this.admitPvc(obj); break;
      case 'services': obj.spec = { type: 'ClusterIP', clusterIP: `10.43.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`, ...obj.spec }; obj.status = { loadBalancer: {} }; break;
      case 'pods': this.admitPod(obj); break;
      case 'deployments': case 'statefulsets': this.workloads.admit(plural, obj); obj.spec = { replicas: 1, ...obj.spec }; obj.status = {}; break;
    }
    const stored = this.store.insert(plural, obj);
    const sns = stored.metadata.namespace ?? '';
    if (plural === 'persistentvolumeclaims') {
      mkdirSync(this.pvcDir(sns, name), { recursive: true });
      this.store.mutate(plural, sns, name, (o) => { o.spec = { ...o.spec, volumeName: `pvc-${o.metadata.uid}` }; });
    }
    if (plural === 'pods') this.track(this.runPod(sns, name));
    if (plural === 'deployments' || plural === 'statefulsets') this.workloads.reconcile(plural, sns, name);
    return this.store.get(plural, stored.metadata.namespace, name)!;
  }

  replace(plural: string, ns: string | undefined, name: string, body: KubeObject): KubeObject {
    const def = this.store.def(plural);
    const old = this.store.getOrThrow(plural, ns, name);
    if (body.metadata?.name && body.metadata.name !== name) throw ApiError.badRequest('the name of the object does not match the name on the URL');
    if (body.metadata?.resourceVersion && body.metadata.resourceVersion !== old.metadata.resourceVersion) {
      throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `Operation cannot be fulfilled on ${plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`, reason: 'Conflict', details: { name, kind: plural }, code: 409 });
    }
    const obj = clone(body);
    obj.metadata = { ...obj.metadata, name, ...(def.namespaced ? { namespace: ns } : {}) };
    if (plural === 'pods' || plural === 'persistentvolumeclaims') {
      // Their specs are immutable once created; only metadata changes through PUT.
      obj.spec = old.spec;
      obj.status = old.status;
    }
    if (plural === 'secrets') admitSecret(obj);
    if (plural === 'deployments' || plural === 'statefulsets') {
      this.workloads.admit(plural, obj);
      obj.status = old.status;
      obj.metadata.generation = (old.metadata.generation ?? 1) + (JSON.stringify(old.spec) !== JSON.stringify(obj.spec) ? 1 : 0);
    }
    const stored = this.store.update(plural, obj);
    if (plural === 'deployments' || plural === 'statefulsets') {
      this.workloads.templateChanged(plural, old, stored);
      this.workloads.reconcile(plural, ns ?? '', name);
    }
    return this.store.get(plural, ns, name) ?? stored;
  }

  /** Deletes an object the way the API server does: pods terminate, workloads and namespaces cascade. */
  remove(plural: string, ns: string | undefined, name: string): KubeObject {
    const obj = this.store.getOrThrow(plural, ns, name);
    switch (plural) {
      case 'pods': return this.terminatePod(ns ?? '', name);
      case 'deployments': case 'statefulsets': {
        this.store.remove(plural, ns, name);
        for (const p of this.workloads.podsOf(plural, obj)) this.terminatePod(ns ?? '', p.metadata.name);
        return obj;
      }
      case 'persistentvolumeclaims': {
        const out = this.store.mutate(plural, ns, name, (o) => { o.metadata.deletionTimestamp ??= nowIso(); })!;
        this.finalizePvcs(ns ?? '');
        return out;
      }
      case 'namespaces': return this.terminateNamespace(name);
      default:
        this.store.remove(plural, ns, name);
        return obj;
    }
  }

  // ---- scale subresource ----

  getScale(plural: WorkloadPlural, ns: string, name: string): KubeObject {
    return this.workloads.scaleOf(plural, this.store.getOrThrow(plural, ns, name));
  }

  setScale(plural: WorkloadPlural, ns: string, name: string, replicas: number): KubeObject {
    if (!Number.isInteger(replicas) || replicas < 0) throw ApiError.invalid('Scale', name, 'spec.replicas', `Invalid value: ${replicas}: must be greater than or equal to 0`);
    const obj = this.store.getOrThrow(plural, ns, name);
    if (obj.spec?.replicas !== replicas) {
      this.store.mutate(plural, ns, name, (o) => {
        o.spec = { ...o.spec, replicas };
        o.metadata.generation = (o.metadata.generation ?? 1) + 1;
      });
      this.workloads.reconcile(plural, ns, name);
    }
    return this.getScale(plural, ns, name);
  }

  // ---- pods ----

  private admitPvc(obj: KubeObject): void {
    const spec = (obj.spec ?? {}) as { resources?: { requests?: { storage?: string } }; accessModes?: string[]; storageClassName?: string };
    const storage = spec.resources?.requests?.storage;
    if (!storage) throw ApiError.invalid('PersistentVolumeClaim', obj.metadata.name, 'spec.resources[storage]', 'Required value');
    obj.spec = { storageClassName: 'longhorn', volumeMode: 'Filesystem', accessModes: ['ReadWriteOnce'], ...spec };
    obj.status = { phase: 'Bound', accessModes: (obj.spec as { accessModes: string[] }).accessModes, capacity: { storage } };
  }

  private admitPod(pod: KubeObject): void {
    const spec = podSpec(pod);
    if (!Array.isArray(spec.containers) || spec.containers.length === 0) throw ApiError.invalid('Pod', pod.metadata.name, 'spec.containers', 'Required value');
    for (const c of spec.containers) if (!c.name || !c.image) throw ApiError.invalid('Pod', pod.metadata.name, 'spec.containers[0]', 'Required value: name and image');
    pod.spec = {
      restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', serviceAccountName: 'default',
      schedulerName: 'default-scheduler', ...pod.spec, nodeName: NODE_NAME,
    };
    translatePodPaths({ stateDir: this.stateDir, pvcDir: (n, c) => this.pvcDir(n, c), podDir: (n, p) => this.podDir(n, p) }, pod);
    pod.status = { phase: 'Pending', qosClass: 'BestEffort', conditions: [] };
  }

  private setPodStatus(ns: string, name: string, status: Record<string, unknown>): void {
    this.store.mutate('pods', ns, name, (o) => { o.status = status; });
    this.workloads.podChanged(ns, name);
  }

  private async runPod(ns: string, name: string): Promise<void> {
    await sleep(this.startDelay);
    const claims = (podSpec(this.store.peek('pods', ns, name) ?? { apiVersion: '', kind: '', metadata: { name } }).volumes ?? [])
      .flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
    for (;;) {
      const pod = this.store.peek('pods', ns, name);
      if (!pod || pod.metadata.deletionTimestamp || this.stopped) return;
      const missing = claims.find((c) => { const pvc = this.store.peek('persistentvolumeclaims', ns, c); return !pvc || pvc.metadata.deletionTimestamp; });
      if (!missing) break;
      this.setPodStatus(ns, name, {
        phase: 'Pending', qosClass: 'BestEffort',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', lastTransitionTime: nowIso(), message: `0/1 nodes are available: persistentvolumeclaim "${missing}" not found.` }],
      });
      await sleep(200);
    }
    const pod = this.store.peek('pods', ns, name)!;
    mkdirSync(this.podDir(ns, name), { recursive: true });
    // A subPath of a PVC is created on first mount, as the kubelet does (other volumes' subPaths are files we do not materialise).
    const claimOf = new Map((podSpec(pod).volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [[v.name, v.persistentVolumeClaim.claimName] as const] : [])));
    for (const c of podSpec(pod).containers) {
      for (const m of c.volumeMounts ?? []) {
        const claim = claimOf.get(m.name);
        if (claim && m.subPath) mkdirSync(path.join(this.pvcDir(ns, claim), m.subPath), { recursive: true });
      }
    }
    const startedAt = nowIso();
    this.setPodStatus(ns, name, {
      phase: 'Pending', qosClass: 'BestEffort', hostIP: '127.0.0.1', startTime: startedAt,
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: startedAt }],
      containerStatuses: podSpec(pod).containers.map((c) => ({ name: c.name, image: c.image, imageID: '', ready: false, started: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } })),
    });
    const backing = this.backings.find((b) => b.matches(pod));
    if (backing) {
      const users = this.backingUsers.get(backing)!;
      users.add(podKey(ns, name));
      try {
        await this.serialize(backing, () => backing.start());
      } catch (err) {
        log.error('backing server failed to start', { backing: backing.name, error: String(err) });
        this.setPodStatus(ns, name, { phase: 'Failed', reason: 'Error', message: `container failed to start: ${String(err)}`, qosClass: 'BestEffort' });
        return;
      }
    }
    const cur = this.store.peek('pods', ns, name);
    if (!cur || cur.metadata.deletionTimestamp) return;
    const t = nowIso();
    this.setPodStatus(ns, name, {
      phase: 'Running', qosClass: 'BestEffort', hostIP: '127.0.0.1', podIP: '127.0.0.1', podIPs: [{ ip: '127.0.0.1' }], startTime: startedAt,
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: t })),
      containerStatuses: podSpec(cur).containers.map((c) => ({
        name: c.name, image: c.image, imageID: `${c.image ?? ''}@sha256:sim`, containerID: `containerd://${name}-${c.name}`,
        ready: true, started: true, restartCount: 0, state: { running: { startedAt: t } },
      })),
    });
  }

  private serialize(b: PodBacking, fn: () => Promise<void>): Promise<void> {
    const next = (this.backingChain.get(b) ?? Promise.resolve()).catch(() => undefined).then(fn);
    this.backingChain.set(b, next);
    return next;
  }

  private terminatePod(ns: string, name: string): KubeObject {
    const pod = this.store.getOrThrow('pods', ns, name);
    if (pod.metadata.deletionTimestamp) return pod;
    const out = this.store.mutate('pods', ns, name, (o) => {
      o.metadata.deletionTimestamp = nowIso();
      o.metadata.deletionGracePeriodSeconds = 30;
    })!;
    this.workloads.podChanged(ns, name);
    const key = podKey(ns, name);
    for (const s of this.execSessions.get(key) ?? []) s.podGone();
    this.track((async () => {
      for (const [b, users] of this.backingUsers) {
        if (users.delete(key) && users.size === 0) {
          await this.serialize(b, () => b.stop()).catch((err) => log.error('backing server failed to stop', { backing: b.name, error: String(err) }));
        }
      }
      rmSync(this.podDir(ns, name), { recursive: true, force: true });
      this.store.remove('pods', ns, name);
      this.workloads.podRemoved(ns, name);
      this.finalizePvcs(ns);
      this.finalizeNamespace(ns);
    })());
    return out;
  }

  /** PVCs marked for deletion go once no pod uses them (the pvc-protection finalizer); their data with them. */
  private finalizePvcs(ns: string): void {
    const inUse = new Set<string>();
    for (const p of this.store.list('pods', ns)) for (const v of podSpec(p).volumes ?? []) if (v.persistentVolumeClaim) inUse.add(v.persistentVolumeClaim.claimName);
    for (const pvc of this.store.list('persistentvolumeclaims', ns)) {
      if (pvc.metadata.deletionTimestamp && !inUse.has(pvc.metadata.name)) {
        this.store.remove('persistentvolumeclaims', ns, pvc.metadata.name);
        rmSync(this.pvcDir(ns, pvc.metadata.name), { recursive: true, force: true });
      }
    }
  }

  private terminateNamespace(name: string): KubeObject {
    if (['default', 'kube-system', 'kube-public'].includes(name)) {
      throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `namespaces "${name}" is forbidden: this namespace may not be deleted`, reason: 'Forbidden', code: 403 });
    }
    const out = this.store.mutate('namespaces', undefined, name, (o) => { o.metadata.deletionTimestamp ??= nowIso(); o.status = { phase: 'Terminating' }; })!;
    for (const plural of ['deployments', 'statefulsets', 'services', 'secrets', 'configmaps', 'persistentvolumeclaims', 'pods']) {
      for (const o of this.store.list(plural, name)) this.remove(plural, name, o.metadata.name);
    }
    this.finalizeNamespace(name);
    return out;
  }

  private finalizeNamespace(name: string): void {
    const ns = this.store.peek('namespaces', undefined, name);
    if (!ns?.metadata.deletionTimestamp) return;
    if (this.store.list('pods', name).length || this.store.list('persistentvolumeclaims', name).length) return;
    this.store.remove('namespaces', undefined, name);
    rmSync(path.join(this.stateDir, 'pvcs', name), { recursive: true, force: true });
  }

  // ---- exec ----

  /** What an exec into the pod runs with, or the ApiError a real API server would answer. */
  execTarget(ns: string, name: string, containerName?: string): ExecTarget {
    const pod = this.store.get('pods', ns, name);
    if (!pod) throw ApiError.notFound('pods', name);
    const phase = String(pod.status?.phase ?? 'Pending');
    if (phase === 'Succeeded' || phase === 'Failed') throw ApiError.badRequest(`cannot exec into a container in a completed pod; current phase is ${phase}`);
    const spec = podSpec(pod);
    const container = containerName ? spec.containers.find((c) => c.name === containerName) : spec.containers[0];
    if (!container) throw ApiError.badRequest(`container ${containerName ?? ''} is not valid for pod ${name}`);
    if (phase !== 'Running' || pod.metadata.deletionTimestamp) throw ApiError.badRequest(`unable to upgrade connection: container not found ("${container.name}")`);
    const env: Record<string, string> = {
      PATH: DEFAULT_PATH, HOSTNAME: name, HOME: this.podDir(ns, name), LANG: 'C.UTF-8',
      KUBERNETES_SERVICE_HOST: '10.43.0.1', KUBERNETES_SERVICE_PORT: '443',
    };
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.secretKeyRef) {
        const s = this.store.peek('secrets', ns, e.valueFrom.secretKeyRef.name);
        const v = (s?.data as Record<string, string> | undefined)?.[e.valueFrom.secretKeyRef.key];
        if (v !== undefined) env[e.name] = Buffer.from(v, 'base64').toString('utf8');
      } else if (e.valueFrom?.configMapKeyRef) {
        const cm = this.store.peek('configmaps', ns, e.valueFrom.configMapKeyRef.name);
        const v = (cm?.data as Record<string, string> | undefined)?.[e.valueFrom.configMapKeyRef.key];
        if (v !== undefined) env[e.name] = v;
      }
    }
    const backing = this.backings.find((b) => b.matches(pod));
    if (backing) Object.assign(env, backing.execEnv());
    return { pod, container, env, cwd: this.podDir(ns, name), podKey: podKey(ns, name) };
  }

  /** Registers a running exec; returns the function that unregisters it. */
  registerExec(key: string, s: ExecSession): () => void {
    let set = this.execSessions.get(key);
    if (!set) { set = new Set(); this.execSessions.set(key, set); }
    set.add(s);
    return () => { set.delete(s); if (!set.size) this.execSessions.delete(key); };
  }

  /** How many execs are running now (tests check that none is left behind). */
  activeExecs(): number {
    let n = 0;
    for (const s of this.execSessions.values()) n += s.size;
    return n;
  }

  /** Ends every exec and stops every backing server. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const set of this.execSessions.values()) for (const s of set) s.podGone();
    await this.settle();
    for (const b of this.backings) {
      await this.serialize(b, () => b.stop()).catch((err) => log.error('backing server failed to stop', { backing: b.name, error: String(err) }));
    }
  }
}

function admitSecret(obj: KubeObject): void {
  const data: Record<string, string> = { ...(obj.data as Record<string, string> | undefined) };
  for (const [k, v] of Object.entries((obj.stringData as Record<string, string> | undefined) ?? {})) data[k] = Buffer.from(v, 'utf8').toString('base64');
  delete obj.stringData;
  obj.data = data;
  obj.type = obj.type ?? 'Opaque';
}
