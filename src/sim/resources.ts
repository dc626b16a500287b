// The resource types the simulated API server serves, as its discovery documents describe them.

export interface SubresourceDef { name: string; kind: string; group?: string; version?: string; verbs: string[] }

export interface ResourceDef {
  group: '' | 'apps';
  version: 'v1';
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  verbs: string[];
  subresources?: SubresourceDef[];
}

const CRUD = ['create', 'delete', 'get', 'list', 'patch', 'update'];

export const RESOURCES: readonly ResourceDef[] = [
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'] },
  {
    group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], verbs: CRUD,
    subresources: [{ name: 'exec', kind: 'PodExecOptions', verbs: ['create', 'get'] }],
  },
  { group: '', version: 'v1', plural: 'persistentvolumeclaims', singular: 'persistentvolumeclaim', kind: 'PersistentVolumeClaim', namespaced: true, shortNames: ['pvc'], verbs: CRUD },
  { group: '', version: 'v1', plural: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true, verbs: CRUD },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'], verbs: CRUD },
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'], verbs: CRUD },
  {
    group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], verbs: CRUD,
    subresources: [{ name: 'scale', kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] }],
  },
  {
    group: 'apps', version: 'v1', plural: 'statefulsets', singular: 'statefulset', kind: 'StatefulSet', namespaced: true, shortNames: ['sts'], verbs: CRUD,
    subresources: [{ name: 'scale', kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] }],
  },
];

export function resourceByPlural(group: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.plural === plural);
}

export function resourceByKind(kind: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.kind === kind);
}

export function apiVersionOf(def: ResourceDef): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

/** GET /api/v1 or /apis/apps/v1: an APIResourceList. */
export function resourceList(group: '' | 'apps'): Record<string, unknown> {
  const resources: Array<Record<string, unknown>> = [];
  for (const r of RESOURCES.filter((x) => x.group === group)) {
    resources.push({
      name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs,
      ...(r.shortNames ? { shortNames: r.shortNames } : {}),
      ...(group === 'apps' ? { categories: ['all'] } : r.plural === 'pods' || r.plural === 'services' ? { categories: ['all'] } : {}),
    });
    for (const s of r.subresources ?? []) {
      resources.push({
        name: `${r.plural}/${s.name}`, singularName: '', namespaced: r.namespaced, kind: s.kind, verbs: s.verbs,
        ...(s.group ? { group: s.group, version: s.version } : {}),
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/v1` : 'v1', resources };
}

export function apiGroupList(): Record<string, unknown> {
  const gv = { groupVersion: 'apps/v1', version: 'v1' };
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [{ name: 'apps', versions: [gv], preferredVersion: gv }] };
}
