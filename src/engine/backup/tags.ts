// How a backup is written into restic (ARCHITECTURE.md §4): one snapshot per artifact, all
// sharing `backup:<id>`, plus a `backup.json` manifest snapshot written last.
import { randomBytes } from 'node:crypto';

export const TAG_ROOT = 'wild-backup';
export const MANIFEST_ARTIFACT = 'manifest';
export const CLUSTER_TAG = 'scope:cluster';

/** `20261126T191500Z-ab12`: sortable, unique, and a valid restic tag and file name. */
export function newBackupId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

export const BACKUP_ID = /^\d{8}T\d{6}Z-[0-9a-f]{4,8}$/;

export interface ArtifactRef {
  /** postgres, mysql, redis, pvc, config, cluster-config, etcd, manifest */
  kind: string;
  /** database or PVC name; for config and manifest the app's name */
  name: string;
}

export interface BackupTagInput {
  instance: string;
  /** null for a cluster backup. */
  app: string | null;
  backupId: string;
  artifact: ArtifactRef;
}

export function tagsFor(b: BackupTagInput): string[] {
  const tags = [TAG_ROOT, `instance:${b.instance}`, `backup:${b.backupId}`];
  tags.push(b.app ? `app:${b.app}` : CLUSTER_TAG);
  tags.push(b.artifact.kind === MANIFEST_ARTIFACT ? `artifact:${MANIFEST_ARTIFACT}` : `artifact:${b.artifact.kind}:${b.artifact.name}`);
  return tags;
}

export interface ParsedTags {
  instance: string;
  app: string | null;
  backupId: string;
  cluster: boolean;
  artifact: ArtifactRef;
}

/** The Wild Backup meaning of a snapshot's tags, or null for a snapshot that is not ours. */
export function parseTags(tags: readonly string[]): ParsedTags | null {
  if (!tags.includes(TAG_ROOT)) return null;
  const value = (prefix: string) => tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);
  const instance = value('instance:');
  const backupId = value('backup:');
  const artifact = value('artifact:');
  if (!instance || !backupId || !artifact) return null;
  let ref: ArtifactRef;
  if (artifact === MANIFEST_ARTIFACT) ref = { kind: MANIFEST_ARTIFACT, name: '' };
  else {
    const i = artifact.indexOf(':');
    if (i <= 0) return null;
    ref = { kind: artifact.slice(0, i), name: artifact.slice(i + 1) };
  }
  return { instance, app: value('app:') ?? null, backupId, cluster: tags.includes(CLUSTER_TAG), artifact: ref };
}

/** Path of an artifact inside its snapshot (restic stores it with a leading "/"). */
export function artifactFilename(scope: string, artifact: ArtifactRef, extension: string): string {
  if (artifact.kind === MANIFEST_ARTIFACT) return `${scope}/backup.json`;
  return `${scope}/${artifact.kind}-${artifact.name}${extension}`;
}
