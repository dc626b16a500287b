// Deployment and StatefulSet controllers of the sim: keep `spec.replicas` pods (new names on the
// way up, as a ReplicaSet does; ordinals and claim templates for a StatefulSet) and their status.
import { createHash } from 'node:crypto';
import { ApiError, clone, matchesLabels, parseLabelSelector, randomSuffix, selectorToString, type KubeObject, type PodSpec } from './objects.js';
import type { SimRuntime } from './runtime.js';

export type WorkloadPlural = 'deployments' | 'statefulsets';

interface Owner { plural: WorkloadPlural; ns: string; name: string; uid: string }

interface TemplateSpec {
  replicas?: number;
  selector?: { matchLabels?: Record<string, string> };
  serviceName?: string;
  template?: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: PodSpec };
  volumeClaimTemplates?: Array<{ metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> }>;
}

const tmpl = (o: KubeObject): TemplateSpec => (o.spec ?? {}) as TemplateSpec;

export class WorkloadController {
  private readonly owners = new Map<string, Owner>();

  constructor(private readonly rt: SimRuntime) {}

  admit(plural: WorkloadPlural, obj: KubeObject): void {
    const spec = tmpl(obj);
    const kind = plural === 'deployments' ? 'Deployment' : 'StatefulSet';
    if (!spec.selector || !Object.keys(spec.selector.matchLabels ?? {}).length) throw ApiError.invalid(kind, obj.metadata.name, 'spec.selector', 'Required value');
    const sel = parseLabelSelector(selectorToString(spec.selector));
    if (!matchesLabels(sel, spec.template?.metadata?.labels)) throw ApiError.invalid(kind, obj.metadata.name, 'spec.template.metadata.labels', '`selector` does not match template `labels`');
    if (!spec.template?.spec?.containers?.length) throw ApiError.invalid(kind, obj.metadata.name, 'spec.template.spec.containers', 'Required value');
    spec.template.spec.containers.forEach((c, i) => {
      if (!c.name || !c.image) throw ApiError.invalid(kind, obj.metadata.name, `spec.template.spec.containers[${i}]`, 'Required value: name and image');
    });
  }

  /**
   * A changed pod template rolls the workload's pods, as its controller does: each pod of the old
   * template is replaced by one of the new (the reconcile after each removal creates it).
   */
  templateChanged(plural: WorkloadPlural, before: KubeObject, after: KubeObject): void {
    if (JSON.stringify(tmpl(before).template ?? {}) === JSON.stringify(tmpl(after).template ?? {})) return;
    for (const p of this.podsOf(plural, after).filter((x) => !x.metadata.deletionTimestamp)) this.rt.remove('pods', p.metadata.namespace, p.metadata.name);
  }

  /** The pods this workload owns (terminating ones included). */
  podsOf(plural: WorkloadPlural, obj: KubeObject): KubeObject[] {
    return this.rt.store.list('pods', obj.metadata.namespace).filter((p) => {
      const o = this.owners.get(`${p.metadata.namespace}/${p.metadata.name}`);
      return o?.plural === plural && o.uid === obj.metadata.uid;
    });
  }

  scaleOf(plural: WorkloadPlural, obj: KubeObject): KubeObject {
    const spec = tmpl(obj);
    return {
      kind: 'Scale', apiVersion: 'autoscaling/v1',
      metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid, resourceVersion: obj.metadata.resourceVersion, creationTimestamp: obj.metadata.creationTimestamp },
      spec: { replicas: spec.replicas ?? 1 },
      status: { replicas: Number(obj.status?.replicas ?? 0), selector: selectorToString(spec.selector) },
    };
  }

  reconcile(plural: WorkloadPlural, ns: string, name: string): void {
    const obj = this.rt.store.peek(plural, ns, name);
    if (!obj) return;
    const spec = tmpl(obj);
    const want = spec.replicas ?? 1;
    const live = this.podsOf(plural, obj).filter((p) => !p.metadata.deletionTimestamp);
    if (plural === 'deployments') {
      for (let i = live.length; i < want; i++) this.createPod(plural, obj, `${name}-${this.templateHash(obj)}-${randomSuffix(5)}`);
      // Scale down removes the newest pods first, as a ReplicaSet prefers.
      const extra = live.sort((a, b) => String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp))).slice(0, Math.max(0, live.length - want));
      for (const p of extra) this.rt.remove('pods', ns, p.metadata.name);
    } else {
      const all = this.podsOf(plural, obj);
      for (let i = 0; i < want; i++) {
        const podName = `${name}-${i}`;
        if (!all.some((p) => p.metadata.name === podName)) this.createPod(plural, obj, podName, i);
      }
      for (const p of live) {
        const ord = Number(p.metadata.name.slice(name.length + 1));
        if (ord >= want) this.rt.remove('pods', ns, p.metadata.name);
      }
    }
    this.updateStatus(plural, ns, name);
  }

  podChanged(ns: string, pod: string): void {
    const o = this.owners.get(`${ns}/${pod}`);
    if (o) this.updateStatus(o.plural, o.ns, o.name);
  }

  podRemoved(ns: string, pod: string): void {
    const key = `${ns}/${pod}`;
    const o = this.owners.get(key);
    this.owners.delete(key);
    // A pod that went away while its workload still wants it is replaced, as a controller does.
    if (o && this.rt.store.peek(o.plural, o.ns, o.name)?.metadata.uid === o.uid) this.reconcile(o.plural, o.ns, o.name);
  }

  private templateHash(obj: KubeObject): string {
    const h = createHash('sha256').update(JSON.stringify(tmpl(obj).template ?? {})).digest();
    const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
    let s = '';
    for (let i = 0; i < 10; i++) s += alphabet[h[i]! % alphabet.length];
    return s;
  }

  private createPod(plural: WorkloadPlural, obj: KubeObject, podName: string, ordinal?: number): void {
    const ns = obj.metadata.namespace!;
    const spec = tmpl(obj);
    const podSpecCopy = clone(spec.template?.spec ?? { containers: [] });
    const labels: Record<string, string> = { ...spec.template?.metadata?.labels };
    let owner: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean; blockOwnerDeletion: boolean };
    if (plural === 'deployments') {
      const hash = this.templateHash(obj);
      labels['pod-template-hash'] = hash;
      const rsUid = createHash('sha256').update(`${obj.metadata.uid}/${hash}`).digest('hex');
      owner = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${obj.metadata.name}-${hash}`, uid: `${rsUid.slice(0, 8)}-${rsUid.slice(8, 12)}-${rsUid.slice(12, 16)}-${rsUid.slice(16, 20)}-${rsUid.slice(20, 32)}`, controller: true, blockOwnerDeletion: true };
    } else {
      labels['statefulset.kubernetes.io/pod-name'] = podName;
      labels['apps.kubernetes.io/pod-index'] = String(ordinal);
      owner = { apiVersion: 'apps/v1', kind: 'StatefulSet', name: obj.metadata.name, uid: obj.metadata.uid!, controller: true, blockOwnerDeletion: true };
      podSpecCopy.hostname = podName;
      if (spec.serviceName) podSpecCopy.subdomain = spec.serviceName;
      for (const vct of spec.volumeClaimTemplates ?? []) {
        const claimName = `${vct.metadata.name}-${podName}`;
        if (!this.rt.store.peek('persistentvolumeclaims', ns, claimName)) {
          this.rt.create('persistentvolumeclaims', ns, {
            apiVersion: 'v1', kind: 'PersistentVolumeClaim',
            metadata: { name: claimName, namespace: ns, labels: { ...spec.selector?.matchLabels, ...vct.metadata.labels } },
            spec: clone(vct.spec),
          });
        }
        podSpecCopy.volumes = [...(podSpecCopy.volumes ?? []).filter((v) => v.name !== vct.metadata.name), { name: vct.metadata.name, persistentVolumeClaim: { claimName } }];
      }
    }
    this.owners.set(`${ns}/${podName}`, { plural, ns, name: obj.metadata.name, uid: obj.metadata.uid! });
    this.rt.create('pods', ns, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: podName, namespace: ns, labels, ...(spec.template?.metadata?.annotations ? { annotations: spec.template.metadata.annotations } : {}), ownerReferences: [owner] },
      spec: podSpecCopy as unknown as Record<string, unknown>,
    });
  }

  private updateStatus(plural: WorkloadPlural, ns: string, name: string): void {
    const obj = this.rt.store.peek(plural, ns, name);
    if (!obj) return;
    const pods = this.podsOf(plural, obj).filter((p) => !p.metadata.deletionTimestamp);
    const ready = pods.filter((p) => p.status?.phase === 'Running').length;
    const status: Record<string, unknown> = { observedGeneration: obj.metadata.generation ?? 1, replicas: pods.length };
    // Zero counts are omitted from a real status, as omitempty does.
    if (ready) status.readyReplicas = ready;
    if (plural === 'deployments') {
      status.updatedReplicas = pods.length;
      if (ready) status.availableReplicas = ready;
      const unavailable = Math.max(0, (tmpl(obj).replicas ?? 1) - ready);
      if (unavailable) status.unavailableReplicas = unavailable;
    } else {
      status.currentReplicas = pods.length;
      status.updatedReplicas = pods.length;
      if (ready) status.availableReplicas = ready;
    }
    if (JSON.stringify(obj.status) !== JSON.stringify(status)) this.rt.store.mutate(plural, ns, name, (o) => { o.status = status; });
  }
}
