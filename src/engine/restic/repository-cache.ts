// What restic says about a repository (snapshot listings, statistics), cached per repository for
// the whole process: every ResticRepository of the same location shares one entry, and our own
// writes invalidate it. A load started before an invalidation is never stored, so a write is
// always visible to the next query; concurrent queries share one restic run.

export type CachedKind = 'snapshots' | 'stats';

interface Slot {
  value?: unknown;
  inflight?: { generation: number; promise: Promise<unknown> };
}

interface Entry {
  generation: number;
  slots: Map<CachedKind, Slot>;
}

const entries = new Map<string, Entry>();

function entry(key: string): Entry {
  let e = entries.get(key);
  if (!e) {
    e = { generation: 0, slots: new Map() };
    entries.set(key, e);
  }
  return e;
}

function slot(e: Entry, kind: CachedKind): Slot {
  let s = e.slots.get(kind);
  if (!s) {
    s = {};
    e.slots.set(kind, s);
  }
  return s;
}

export const repositoryCache = {
  /** The cached value, or undefined when there is none. */
  get<T>(key: string, kind: CachedKind): T | undefined {
    return entries.get(key)?.slots.get(kind)?.value as T | undefined;
  },

  /**
   * Loads through `load` unless a load of the current generation is under way (then shares it);
   * stores the result only if nothing invalidated the entry meanwhile.
   */
  load<T>(key: string, kind: CachedKind, load: () => Promise<T>): Promise<T> {
    const e = entry(key);
    const s = slot(e, kind);
    if (s.inflight && s.inflight.generation === e.generation) return s.inflight.promise as Promise<T>;
    const generation = e.generation;
    const promise = load().then((value) => {
      if (e.generation === generation) s.value = value;
      return value;
    });
    const inflight = { generation, promise };
    s.inflight = inflight;
    const clear = () => {
      if (s.inflight === inflight) s.inflight = undefined;
    };
    promise.then(clear, clear);
    return promise;
  },

  /**
   * The snapshots changed and a new listing is on its way: loads started before now are not stored
   * (nor shared with the new one), but the last listing keeps answering until the new one lands.
   * Statistics are forgotten.
   */
  supersede(key: string): void {
    const e = entry(key);
    e.generation += 1;
    for (const [kind, s] of e.slots) if (kind !== 'snapshots') s.value = undefined;
  },

  /**
   * Our own write changed what is cached in a way we know: the cached value is replaced by
   * `update(value)` at once, and loads started before now are not stored (as in supersede). False,
   * and nothing changed, when nothing is cached: the next query loads.
   */
  update<T>(key: string, kind: CachedKind, update: (value: T) => T): boolean {
    const value = repositoryCache.get<T>(key, kind);
    if (value === undefined) return false;
    repositoryCache.supersede(key);
    slot(entry(key), kind).value = update(value);
    return true;
  },

  /** Forgets everything cached for the repository (its snapshots or data changed). */
  invalidate(key: string): void {
    repositoryCache.supersede(key);
    const snapshots = entry(key).slots.get('snapshots');
    if (snapshots) snapshots.value = undefined;
  },
};
