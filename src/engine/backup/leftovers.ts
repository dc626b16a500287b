// Snapshots of a failed backup that could not be forgotten when it failed, because the repository
// itself was what failed (its server stopped, its disk is gone). They are remembered on disk
// (<state>/leftovers.json: instance and backup id, nothing secret) and forgotten as soon as the
// repository answers again: retried in the background, and before every backup of the instance.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ResticRepository } from '../restic/index.js';
import { writeFileAtomic } from '../../wild/writer.js';
import { logger } from '../../util/log.js';
import { BACKUP_ID } from './tags.js';

const log = logger('leftovers');

interface Leftover {
  instance: string;
  backupId: string;
  since: string;
}

/** The background retries back off, each one that removes nothing waiting twice as long, up to this many times retryMs. */
const MAX_BACKOFF = 64;

export class Leftovers {
  private pending: Leftover[] | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  /** The next background retry's wait: retryMs, doubled after each sweep that removed nothing. */
  private delayMs: number;

  /**
   * @param open the instance's repository, or null when the instance is gone.
   * @param remove forgets every snapshot of the backup; false when the repository did not answer.
   */
  constructor(
    private readonly file: string,
    private readonly open: (instance: string) => Promise<ResticRepository | null>,
    private readonly remove: (repo: ResticRepository, backupId: string) => Promise<boolean>,
    private readonly retryMs = 30_000,
  ) {
    this.delayMs = retryMs;
  }

  private async load(): Promise<Leftover[]> {
    if (this.pending) return this.pending;
    try {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as unknown;
      this.pending = Array.isArray(parsed)
        ? parsed.filter((l): l is Leftover => typeof l?.instance === 'string' && typeof l?.backupId === 'string' && BACKUP_ID.test(l.backupId))
        : [];
    } catch {
      this.pending = [];
    }
    return this.pending;
  }

  private async save(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, JSON.stringify(this.pending ?? [], null, 2), 0o600);
  }

  /** Backup ids still waiting to be removed (all instances, or one). */
  async list(instance?: string): Promise<string[]> {
    return (await this.load()).filter((l) => !instance || l.instance === instance).map((l) => l.backupId);
  }

  async add(instance: string, backupId: string): Promise<void> {
    const pending = await this.load();
    if (!pending.some((l) => l.instance === instance && l.backupId === backupId)) {
      pending.push({ instance, backupId, since: new Date().toISOString() });
      await this.save();
    }
    // A new failure: the repository may be back soon.
    this.delayMs = this.retryMs;
    this.schedule();
  }

  /** Tries every pending removal (of one instance, or all) once; what still fails stays. */
  sweep(instance?: string): Promise<void> {
    // One sweep at a time; a caller during a sweep waits for it, then sweeps again.
    const run = async (): Promise<void> => {
      const pending = await this.load();
      const before = pending.length;
      for (const l of [...pending]) {
        if (instance && l.instance !== instance) continue;
        let repo: ResticRepository | null;
        try {
          repo = await this.open(l.instance);
        } catch {
          continue; // not reachable now: the next sweep tries again
        }
        // An instance that no longer exists has nothing left to clean.
        const done = repo === null || await this.remove(repo, l.backupId);
        if (done) {
          pending.splice(pending.indexOf(l), 1);
          log.info('removed the snapshots of an incomplete backup', { instance: l.instance, backupId: l.backupId });
        }
      }
      // A repository down for hours is not asked every 30 s: the retries back off while they remove
      // nothing (a backup of the instance still sweeps first, whatever the wait).
      this.delayMs = pending.length < before ? this.retryMs : Math.min(this.delayMs * 2, this.retryMs * MAX_BACKOFF);
      try {
        await this.save();
      } finally {
        if (pending.length > 0) this.schedule(); // a state file that cannot be written now is retried too
      }
    };
    const next = (this.sweeping ?? Promise.resolve()).then(run, run);
    // The queue's own link never rejects: each caller sees its sweep's failure through `next`, and a
    // rejection nobody awaits (a full or read-only disk under the state file) would end the server.
    const link: Promise<void> = next.catch(() => undefined).then(() => { if (this.sweeping === link) this.sweeping = null; });
    this.sweeping = link;
    return next;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sweep().catch((err: unknown) => log.warn('leftover sweep failed', { error: (err as Error).message }));
    }, this.delayMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
