// The backups of an instance, read from its restic snapshots: grouped by backup id, COMPLETE when
// the manifest snapshot exists. Manifests are immutable, so each is read from restic once and
// then kept on disk (<state>/manifests/<snapshot id>.json): listings never wait on `restic dump`
// for a manifest they have seen before.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ResticRepository, Snapshot, SnapshotListing } from '../restic/index.js';
import { writeFileAtomic } from '../../wild/writer.js';
import { logger, scrub } from '../../util/log.js';
import { artifactWarnings, backupManifestSchema, manifestBytes, MAX_MANIFEST_BYTES, type ArtifactRecord, type BackupManifest } from './manifest.js';
import { MANIFEST_ARTIFACT, parseTags, type ParsedTags } from './tags.js';

const log = logger('catalog');

export interface BackupArtifactView {
  kind: string;
  name: string;
  snapshot: Snapshot;
  sizeBytes: number;
  /** What its source recorded as worth knowing (files that changed while read); empty for most. */
  warnings?: string[];
}

export interface BackupView {
  instance: string;
  backupId: string;
  kind: 'APP' | 'CLUSTER';
  status: 'COMPLETE' | 'INCOMPLETE';
  appName: string | null;
  createdAt: string;
  sizeBytes: number;
  addedBytes: number | null;
  artifacts: BackupArtifactView[];
  manifest: BackupManifest | null;
  /** Every snapshot of the backup, the manifest's included. */
  snapshots: Snapshot[];
  /**
   * Why the status may be wrong: the manifest snapshot is there but could not be read this time
   * (restic failed, the repository was away). Such a backup is listed INCOMPLETE, and may well be
   * complete: nothing may remove it on that ground (BackupService.listToRemoveFrom).
   */
  problem: string | null;
}

/**
 * How long a manifest whose read failed is not read again (unless the snapshot listing changes),
 * counted from the end of the listing's last read.
 */
const UNREAD_RETRY_MS = 30_000;
/** The longest a read of one manifest through restic may take. */
const MANIFEST_READ_TIMEOUT_MS = 60_000;

export async function readAll(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    n += b.length;
    if (n > limit) throw new Error(`larger than ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Whether `snap` is the manifest snapshot of `backupId` that restic reported by the short id `shortId`. */
function isManifestOf(snap: Snapshot, backupId: string, shortId: string): boolean {
  const tags = parseTags(snap.tags);
  return tags?.backupId === backupId && tags.artifact.kind === MANIFEST_ARTIFACT && snap.id.startsWith(shortId);
}

export class BackupCatalog {
  private readonly memory = new Map<string, BackupManifest>();
  /** Manifests just written, by backup id, with the short snapshot id restic reported, until a listing gives the full one. */
  private readonly expected = new Map<string, { shortId: string; manifest: BackupManifest }>();
  /** The listings after backups still under way (they outlive their operations; close() stops them). */
  private readonly relists = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  /** The backups built from one snapshot listing, per instance (gone with the listing). */
  private readonly views = new WeakMap<readonly Snapshot[], Map<string, readonly BackupView[]>>();
  /** Manifests being read through restic, by snapshot id: the listings that need one share its read. */
  private readonly reading = new Map<string, Promise<BackupManifest>>();
  /**
   * Manifests whose read failed, by snapshot id, with when (monotonic ms) and in which snapshot
   * listing: every query would otherwise run restic for each of them again. Tried again after
   * `unreadRetryMs`, or at once from a new listing (the repository may answer now).
   */
  private readonly failed = new Map<string, { at: number; error: Error; listing: readonly Snapshot[] | undefined }>();
  private readonly unreadRetryMs: number;

  constructor(private readonly manifestDir: string, opts: { unreadRetryMs?: number } = {}) {
    this.unreadRetryMs = opts.unreadRetryMs ?? UNREAD_RETRY_MS;
  }

  private file(snapshotId: string): string {
    return path.join(this.manifestDir, `${snapshotId.replace(/[^0-9a-f]/g, '')}.json`);
  }

  /**
   * The manifest stored in a manifest snapshot (memory, then disk, then restic). Throws when it
   * cannot be read: a manifest that is there but unread is not a backup without one.
   */
  async manifest(repo: ResticRepository, snap: Snapshot, listing?: readonly Snapshot[]): Promise<BackupManifest> {
    const hit = this.memory.get(snap.id);
    if (hit) return hit;
    const just = this.expected.get(parseTags(snap.tags)?.backupId ?? '');
    if (just && isManifestOf(snap, just.manifest.backupId, just.shortId)) {
      if (!this.closing.signal.aborted) await this.remember(snap.id, just.manifest);
      return just.manifest;
    }
    let manifest: BackupManifest;
    try {
      manifest = backupManifestSchema.parse(JSON.parse(await readFile(this.file(snap.id), 'utf8')));
    } catch {
      const failed = this.failed.get(snap.id);
      if (failed && failed.listing === listing && performance.now() - failed.at < this.unreadRetryMs) throw failed.error;
      let reading = this.reading.get(snap.id);
      if (!reading) {
        reading = this.readThroughRestic(repo, snap, listing);
        this.reading.set(snap.id, reading);
        const done = reading;
        void done.catch(() => undefined).finally(() => { if (this.reading.get(snap.id) === done) this.reading.delete(snap.id); });
      }
      manifest = await reading;
    }
    this.memory.set(snap.id, manifest);
    return manifest;
  }

  /** One `restic dump` of a manifest, kept on disk once read; a failure is remembered for a while. */
  private async readThroughRestic(repo: ResticRepository, snap: Snapshot, listing: readonly Snapshot[] | undefined): Promise<BackupManifest> {
    try {
      const filePath = snap.paths[0];
      if (!filePath) throw new Error('the snapshot holds no file');
      // Stopped by close() or its own time limit: a repository that hangs holds no later read.
      const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(MANIFEST_READ_TIMEOUT_MS)]);
      const text = await readAll(repo.dump(snap.id, filePath, { signal }), MAX_MANIFEST_BYTES);
      const manifest = backupManifestSchema.parse(JSON.parse(text.toString('utf8')));
      await mkdir(this.manifestDir, { recursive: true });
      await writeFileAtomic(this.file(snap.id), JSON.stringify(manifest), 0o600);
      this.failed.delete(snap.id);
      return manifest;
    } catch (err) {
      const message = scrub(err instanceof Error ? err.message : String(err));
      log.warn('unreadable backup manifest', { snapshot: snap.shortId, error: message });
      const error = new Error(message, { cause: err });
      if (!this.closing.signal.aborted) this.failed.set(snap.id, { at: performance.now(), error, listing });
      throw error;
    }
  }

  /**
   * After a backup's manifest, as its operation ends: lists the snapshots again and keeps the
   * manifest under its full snapshot id (until then it is known by restic's short id). Queries
   * keep the listing cached from before the backup meanwhile.
   *
   * Settles once a query would see the backup: at once when `written`, the backup's snapshots with
   * their full ids (the manifest's among them), joined the cached listing, or when no listing is
   * cached (a query then joins this listing, begun after the backup was written); otherwise when
   * the listing has landed. The listing goes on either way. This never rejects: nothing written
   * depends on the listing, and when it fails the next query lists again.
   */
  relistAfter(repo: ResticRepository, backupId: string, shortId: string, manifest: BackupManifest, timeoutMs: number, written?: readonly Snapshot[]): Promise<void> {
    this.expected.set(backupId, { shortId, manifest });
    // Before the listing starts: a listing started earlier than the change is never stored.
    const seen = !repo.hasCachedListing() || (written !== undefined && written.some((s) => isManifestOf(s, backupId, shortId)) && repo.addToListing(written));
    const listing = repo.refresh({ timeoutMs, signal: this.closing.signal }).then(async (listed) => {
      const snap = listed.find((s) => isManifestOf(s, backupId, shortId));
      if (snap) await this.remember(snap.id, manifest);
      else log.warn('the manifest restic saved is not listed', { backupId, snapshot: shortId });
    }).catch((err: unknown) => {
      if (!this.closing.signal.aborted) log.warn('could not list the snapshots after a backup', { backupId, error: scrub((err as Error).message) });
    });
    this.relists.add(listing);
    void listing.finally(() => this.relists.delete(listing));
    return seen ? Promise.resolve() : listing;
  }

  /** Stops the listings still under way after backups and waits for them (the server is stopping). */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all([...this.relists]);
  }

  /** Remembers a manifest we just wrote, so the next listing needs no dump. */
  async remember(snapshotId: string, manifest: BackupManifest): Promise<void> {
    this.memory.set(snapshotId, manifest);
    if (this.expected.get(manifest.backupId)?.manifest === manifest) this.expected.delete(manifest.backupId);
    await mkdir(this.manifestDir, { recursive: true });
    await writeFileAtomic(this.file(snapshotId), JSON.stringify(manifest), 0o600);
  }

  /**
   * Every backup of an instance, newest first. Built once per snapshot listing (the listing is the
   * same array until it is refreshed) and shared by every query until then: the list is frozen.
   * `listing`: the snapshot listing to build from, when the caller holds it already.
   */
  async list(repo: ResticRepository, instance: string, listing?: SnapshotListing): Promise<readonly BackupView[]> {
    const all = listing ?? await repo.allSnapshots();
    const kept = this.views.get(all)?.get(instance);
    if (kept) return kept;
    const { views, settled } = await this.build(repo, instance, all);
    const list = Object.freeze(views);
    // A manifest that could not be read this time (restic busy, repository away) is tried again.
    if (settled) {
      const byInstance = this.views.get(all) ?? new Map<string, readonly BackupView[]>();
      byInstance.set(instance, list);
      this.views.set(all, byInstance);
    }
    return list;
  }

  private async build(repo: ResticRepository, instance: string, all: readonly Snapshot[]): Promise<{ views: BackupView[]; settled: boolean }> {
    const groups = new Map<string, Array<{ snap: Snapshot; tags: ParsedTags }>>();
    for (const snap of all) {
      if (!snap.tags.includes('wild-backup')) continue;
      const tags = parseTags(snap.tags);
      if (!tags || tags.instance !== instance) continue;
      const g = groups.get(tags.backupId) ?? [];
      g.push({ snap, tags });
      groups.set(tags.backupId, g);
    }
    const started = performance.now();
    const views = await Promise.all([...groups].map(([id, members]) => this.view(repo, instance, id, members, all)));
    // The reads that failed in this build wait from now, when its last read has ended: counted from
    // each failure, reads that take long (a busy machine, a repository that answers slowly) outlast
    // one another's wait, and every query would run restic again for some of them. Failures whose
    // wait has run out are forgotten.
    const now = performance.now();
    for (const [id, f] of this.failed) {
      if (f.listing === all && f.at >= started) f.at = now;
      else if (now - f.at >= this.unreadRetryMs) this.failed.delete(id);
    }
    const settled = [...groups.values()].every((members) => {
      const m = members.find((x) => x.tags.artifact.kind === MANIFEST_ARTIFACT);
      return !m || this.memory.has(m.snap.id);
    });
    views.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.backupId < b.backupId ? 1 : -1));
    return { views, settled };
  }

  private async view(
    repo: ResticRepository, instance: string, backupId: string,
    members: Array<{ snap: Snapshot; tags: ParsedTags }>, listing: readonly Snapshot[],
  ): Promise<BackupView> {
    const manifestSnap = members.find((m) => m.tags.artifact.kind === MANIFEST_ARTIFACT)?.snap;
    let manifest: BackupManifest | null = null;
    let problem: string | null = null;
    if (manifestSnap) {
      try {
        manifest = await this.manifest(repo, manifestSnap, listing);
      } catch (err) {
        problem = `its manifest (snapshot ${manifestSnap.shortId}) could not be read: ${(err as Error).message}; the backup may be complete (its manifest is read again within ${this.unreadRetryMs / 1000} s, or with the next snapshot listing)`;
      }
    }
    const first = members[0]!.tags;
    // A manifest names each artifact's snapshot as restic reported it (short on restic 0.14): the
    // snapshot of this backup whose id starts with it, of the same artifact.
    const snapOf = (a: ArtifactRecord): Snapshot | undefined => members.find((m) =>
      m.snap.id.startsWith(a.snapshotId) && m.tags.artifact.kind === a.kind && m.tags.artifact.name === a.name)?.snap;
    const artifacts: BackupArtifactView[] = [];
    let resolved: BackupManifest | null = null;
    // Complete only when the manifest is there and every artifact it lists still exists.
    let complete = manifest !== null;
    if (manifest) {
      const records: ArtifactRecord[] = [];
      for (const a of manifest.artifacts) {
        const snap = snapOf(a);
        if (!snap) { complete = false; records.push(a); continue; }
        records.push({ ...a, snapshotId: snap.id });
        const warnings = artifactWarnings(a);
        artifacts.push({ kind: a.kind, name: a.name, snapshot: snap, sizeBytes: a.sizeBytes, ...(warnings.length > 0 ? { warnings } : {}) });
      }
      resolved = { ...manifest, artifacts: records };
      if (manifestSnap) artifacts.push({ kind: MANIFEST_ARTIFACT, name: 'backup.json', snapshot: manifestSnap, sizeBytes: manifestBytes(manifest).length });
    } else {
      for (const m of members) artifacts.push({ kind: m.tags.artifact.kind, name: m.tags.artifact.name, snapshot: m.snap, sizeBytes: 0 });
    }
    const times = members.map((m) => m.snap.time).sort();
    return {
      instance,
      backupId,
      kind: first.cluster ? 'CLUSTER' : 'APP',
      status: complete ? 'COMPLETE' : 'INCOMPLETE',
      appName: manifest?.app ?? first.app,
      createdAt: manifest?.createdAt ?? new Date(times[0]!).toISOString(),
      sizeBytes: manifest ? manifest.artifacts.reduce((n, a) => n + a.sizeBytes, 0) : 0,
      addedBytes: manifest ? manifest.artifacts.reduce((n, a) => n + (a.addedBytes ?? 0), 0) : null,
      artifacts,
      /** With every artifact's full snapshot id. */
      manifest: resolved,
      snapshots: members.map((m) => m.snap),
      problem,
    };
  }
}
