// Kubernetes object shapes as the simulated API server stores and serves them (plain JSON),
// with the small helpers every part of the sim needs: metadata, Status bodies, label selectors.
import { randomBytes, randomUUID } from 'node:crypto';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }>;
  generateName?: string;
  [key: string]: unknown;
}

/** A stored object: the fields the sim reads are typed, the rest passes through untouched. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface VolumeMount { name: string; mountPath: string; subPath?: string; readOnly?: boolean }
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}
export interface Container { name: string; image?: string; command?: string[]; args?: string[]; env?: EnvVar[]; volumeMounts?: VolumeMount[] }
export interface Volume { name: string; persistentVolumeClaim?: { claimName: string }; [key: string]: unknown }
export interface PodSpec { containers: Container[]; initContainers?: Container[]; volumes?: Volume[]; nodeName?: string; [key: string]: unknown }

export function podSpec(obj: KubeObject): PodSpec {
  return (obj.spec ?? { containers: [] }) as unknown as PodSpec;
}

export const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
export const newUid = (): string => randomUUID();
/** Lowercase alphanumerics like the suffixes Kubernetes generates (no vowels, as it does). */
export function randomSuffix(n: number): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const bytes = randomBytes(n);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The metav1.Status body a real API server sends with every error. */
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; causes?: Array<{ reason: string; message: string; field?: string }> };
  code: number;
}

export function statusBody(code: number, reason: string, message: string, details?: StatusBody['details']): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

export class ApiError extends Error {
  constructor(readonly status: StatusBody) {
    super(status.message);
    this.name = 'ApiError';
  }
  static notFound(resource: string, name: string, group = ''): ApiError {
    const what = group ? `${resource}.${group}` : resource;
    return new ApiError(statusBody(404, 'NotFound', `${what} "${name}" not found`, { name, ...(group ? { group } : {}), kind: resource }));
  }
  static alreadyExists(resource: string, name: string, group = ''): ApiError {
    const what = group ? `${resource}.${group}` : resource;
    return new ApiError(statusBody(409, 'AlreadyExists', `${what} "${name}" already exists`, { name, ...(group ? { group } : {}), kind: resource }));
  }
  static badRequest(message: string): ApiError {
    return new ApiError(statusBody(400, 'BadRequest', message));
  }
  static invalid(kind: string, name: string, field: string, message: string): ApiError {
    return new ApiError(statusBody(422, 'Invalid', `${kind} "${name}" is invalid: ${field}: ${message}`, {
      name, kind, causes: [{ reason: 'FieldValueInvalid', message, field }],
    }));
  }
  static methodNotAllowed(): ApiError {
    return new ApiError(statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
  }
}

// ---- label selectors (equality- and set-based, as in `kubectl get -l`) ----

type Requirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'doesnotexist' };

export type LabelSelector = Requirement[];

/** Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`; throws ApiError 400 on bad syntax. */
export function parseLabelSelector(text: string | null | undefined): LabelSelector {
  const out: LabelSelector = [];
  if (!text || !text.trim()) return out;
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { parts.push(cur); cur = ''; } else cur += ch;
  }
  parts.push(cur);
  const keyRe = /^([a-z0-9A-Z][-a-z0-9A-Z_./]*)$/;
  for (const raw of parts) {
    const p = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = p.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      out.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()).filter(Boolean) });
    } else if ((m = p.match(/^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/))) {
      out.push({ key: m[1]!, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] });
    } else if ((m = p.match(/^!\s*(\S+)$/)) && keyRe.test(m[1]!)) {
      out.push({ key: m[1]!, op: 'doesnotexist' });
    } else if (keyRe.test(p)) {
      out.push({ key: p, op: 'exists' });
    } else {
      throw ApiError.badRequest(`unable to parse requirement: found '${p}', expected: identifier`);
    }
  }
  return out;
}

export function matchesLabels(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return selector.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists': return has;
      case 'doesnotexist': return !has;
      case 'in': return has && r.values.includes(l[r.key]!);
      case 'notin': return !has || !r.values.includes(l[r.key]!);
    }
  });
}

/** Field selectors: the few fields clients use (`metadata.name`, `metadata.namespace`, `status.phase`, `spec.nodeName`). */
export function matchesFields(text: string | null | undefined, obj: KubeObject): boolean {
  if (!text) return true;
  for (const part of text.split(',')) {
    const m = part.trim().match(/^([a-zA-Z.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw ApiError.badRequest(`invalid field selector: '${part}'`);
    const [, field, op, want] = m as unknown as [string, string, string, string];
    let actual: unknown;
    switch (field) {
      case 'metadata.name': actual = obj.metadata.name; break;
      case 'metadata.namespace': actual = obj.metadata.namespace; break;
      case 'status.phase': actual = obj.status?.phase; break;
      case 'spec.nodeName': actual = obj.spec?.nodeName; break;
      default: throw ApiError.badRequest(`field label not supported: ${field}`);
    }
    const eq = String(actual ?? '') === want;
    if (op === '!=' ? eq : !eq) return false;
  }
  return true;
}

/** A selector object (`matchLabels` + `matchExpressions`) as a selector string. */
export function selectorToString(sel: { matchLabels?: Record<string, string>; matchExpressions?: Array<{ key: string; operator: string; values?: string[] }> } | undefined): string {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const op = e.operator.toLowerCase();
    if (op === 'in' || op === 'notin') parts.push(`${e.key} ${op} (${(e.values ?? []).join(',')})`);
    else if (op === 'exists') parts.push(e.key);
    else if (op === 'doesnotexist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}
