// The simulated cluster's object storage: one map per resource, resourceVersions from one counter.
import { ApiError, clone, newUid, nowIso, type KubeObject } from './objects.js';
import { apiVersionOf, resourceByPlural, type ResourceDef } from './resources.js';

const key = (ns: string | undefined, name: string): string => `${ns ?? ''}/${name}`;

export class ObjectStore {
  private rv = 1000;
  private readonly maps = new Map<string, Map<string, KubeObject>>();

  private map(plural: string): Map<string, KubeObject> {
    let m = this.maps.get(plural);
    if (!m) { m = new Map(); this.maps.set(plural, m); }
    return m;
  }

  nextResourceVersion(): string {
    return String(++this.rv);
  }

  currentResourceVersion(): string {
    return String(this.rv);
  }

  def(plural: string): ResourceDef {
    const d = resourceByPlural('', plural) ?? resourceByPlural('apps', plural);
    if (!d) throw new Error(`unknown resource ${plural}`);
    return d;
  }

  /** A copy of the stored object, or undefined. */
  get(plural: string, ns: string | undefined, name: string): KubeObject | undefined {
    const o = this.map(plural).get(key(ns, name));
    return o ? clone(o) : undefined;
  }

  /** The stored object itself, for the sim's own controllers (never hand it to a client). */
  peek(plural: string, ns: string | undefined, name: string): KubeObject | undefined {
    return this.map(plural).get(key(ns, name));
  }

  getOrThrow(plural: string, ns: string | undefined, name: string): KubeObject {
    const o = this.get(plural, ns, name);
    if (!o) throw ApiError.notFound(plural, name, this.def(plural).group);
    return o;
  }

  /** Live objects of a resource, in a namespace or across all of them, sorted as a server sorts (ns, name). */
  list(plural: string, ns?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const o of this.map(plural).values()) if (ns === undefined || o.metadata.namespace === ns) out.push(o);
    return out.sort((a, b) => key(a.metadata.namespace, a.metadata.name).localeCompare(key(b.metadata.namespace, b.metadata.name)));
  }

  insert(plural: string, obj: KubeObject): KubeObject {
    const def = this.def(plural);
    const m = this.map(plural);
    const k = key(obj.metadata.namespace, obj.metadata.name);
    if (m.has(k)) throw ApiError.alreadyExists(plural, obj.metadata.name, def.group);
    const stored = clone(obj);
    stored.apiVersion = apiVersionOf(def);
    stored.kind = def.kind;
    stored.metadata.uid = newUid();
    stored.metadata.resourceVersion = this.nextResourceVersion();
    stored.metadata.creationTimestamp = nowIso();
    if (def.group === 'apps') stored.metadata.generation = 1;
    m.set(k, stored);
    return clone(stored);
  }

  /** Replaces an object in place (keeps identity fields), bumping its resourceVersion. */
  update(plural: string, obj: KubeObject): KubeObject {
    const m = this.map(plural);
    const k = key(obj.metadata.namespace, obj.metadata.name);
    const old = m.get(k);
    if (!old) throw ApiError.notFound(plural, obj.metadata.name, this.def(plural).group);
    const stored = clone(obj);
    stored.apiVersion = old.apiVersion;
    stored.kind = old.kind;
    stored.metadata.uid = old.metadata.uid;
    stored.metadata.creationTimestamp = old.metadata.creationTimestamp;
    stored.metadata.resourceVersion = this.nextResourceVersion();
    m.set(k, stored);
    return clone(stored);
  }

  /** Applies a mutation to the stored object (used by controllers for status updates). */
  mutate(plural: string, ns: string | undefined, name: string, fn: (o: KubeObject) => void): KubeObject | undefined {
    const o = this.map(plural).get(key(ns, name));
    if (!o) return undefined;
    fn(o);
    o.metadata.resourceVersion = this.nextResourceVersion();
    return clone(o);
  }

  remove(plural: string, ns: string | undefined, name: string): KubeObject | undefined {
    const m = this.map(plural);
    const k = key(ns, name);
    const o = m.get(k);
    if (o) m.delete(k);
    return o;
  }
}
