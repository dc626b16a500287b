// Repository configuration, status and statistics of each instance, and the INIT_REPOSITORY task.
// Resolvers ask this service; it alone turns config files into a restic repository.
import { createHash } from 'node:crypto';
import { access, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ResticError, ResticRepository, type ResticStats, type SnapshotListing, type UnreadableSnapshot } from '../restic/index.js';
import { StorageValidationError, displayRepositoryUri, findPluginForUri, validateRepositorySettings } from '../../plugins/storage/registry.js';
import { splitRestUserinfo } from '../../plugins/storage/rest.js';
import type { RepositorySettings, StorageCredentials } from '../../plugins/storage/settings.js';
import { RepositoryError, ValidationError, type Issue } from '../../errors.js';
import type { OperationEngine, OperationRecord } from '../operations/index.js';
import type { InstanceInfo, WildStore } from '../../wild/store.js';
import type { Retention } from '../../wild/schemas.js';
import { checkEditable, setPath, updateYamlFile, writeFileAtomic } from '../../wild/writer.js';
import { DEFAULT_PASSWORD_KEY, configuredCredentials, registerSecrets, resolveSettings, type ResolvedSettings } from './settings.js';

export interface BackupConfigView {
  /** Display URI (credentials stripped); null when the embedded default is used. */
  repository: string | null;
  /** Where the repository actually is (the default's path when none is configured). */
  effectiveRepository: string;
  backend: string;
  isDefault: boolean;
  retention: Retention;
  endpoint: string | null;
  region: string | null;
  port: number | null;
  cacert: string | null;
  hasPassword: boolean;
  configuredCredentials: string[];
}

export interface RepositoryStatusView {
  initialized: boolean;
  reachable: boolean;
  error: string | null;
  errorCode: string | null;
  lastBackupAt: string | null;
  snapshotCount: number;
  /** Snapshots restic could not read, left out of the listing (a damaged file; see SnapshotListing). */
  unreadableSnapshots?: readonly UnreadableSnapshot[];
}

/** What a status says of the snapshot listing. */
function snapshotFigures(snaps: SnapshotListing): Pick<RepositoryStatusView, 'lastBackupAt' | 'snapshotCount' | 'unreadableSnapshots'> {
  const lastBackupAt = snaps.reduce<string | null>((m, s) => (m === null || s.time > m ? s.time : m), null);
  return { lastBackupAt, snapshotCount: snaps.length, unreadableSnapshots: snaps.unreadable ?? [] };
}

export interface RepositoryStatsView extends ResticStats {
  logicalSize: number;
  snapshotCount: number;
  oldestSnapshotAt: string | null;
  latestSnapshotAt: string | null;
}

/** What updateBackupConfig and testRepository take (the contract's BackupConfigInput). */
export interface BackupConfigInput {
  repository: string;
  password?: string | null;
  retention?: Retention | null;
  endpoint?: string | null;
  region?: string | null;
  port?: number | null;
  cacert?: string | null;
  credentials?: StorageCredentials | null;
}

export interface RepositoryServiceOptions {
  /** Bound of a status check or testRepository. Default 20 s. */
  statusTimeoutMs?: number;
  /** How long a status answer is reused by queries. Default 15 s. */
  statusTtlMs?: number;
  resticBinary?: string;
}

const STATS_TTL_MS = 60_000;

function toRepositoryError(err: unknown): unknown {
  if (err instanceof StorageValidationError) return ValidationError.fromIssues(err.issues, 'invalid repository settings');
  if (err instanceof ResticError) return new RepositoryError(err.message, err.code);
  return err;
}

/** A digest of the settings an instance's repository is opened with (secrets included; never shown). */
async function settingsKey(store: WildStore, inst: InstanceInfo): Promise<string> {
  const r = await resolveSettings(store, inst).catch((err: unknown) => ({ error: String(err) }));
  return createHash('sha256').update(JSON.stringify(r)).digest('hex');
}

export class RepositoryService {
  /** `key`: the settings the status was found with (settingsKey): a hand edit of the files makes it stale at once. */
  private readonly statusCache = new Map<string, { at: number; key: string; value: Promise<RepositoryStatusView>; refreshing?: boolean }>();
  /** The status an instance had before our own last write dropped it (the repository opened then). */
  private readonly beforeWrite = new Map<string, { key: string; value: Promise<RepositoryStatusView> }>();
  private readonly statsCache = new Map<string, { at: number; value: Promise<RepositoryStatsView> }>();
  /** The embedded default repositories being created, by path (see createDefaultIfMissing). */
  private readonly creatingDefault = new Map<string, Promise<void>>();

  constructor(
    private readonly store: WildStore,
    private readonly engine: OperationEngine,
    private readonly opts: RepositoryServiceOptions = {},
  ) {}

  /** The restic repository of an instance (the embedded default gets its password on first use). */
  async open(inst: InstanceInfo, settings?: RepositorySettings): Promise<ResticRepository> {
    const s = settings ?? (await resolveSettings(this.store, inst, { ensurePassword: true })).settings;
    try {
      return new ResticRepository({
        settings: s,
        dataDir: this.store.paths.stateDir,
        binary: this.opts.resticBinary,
        statusTimeoutMs: this.opts.statusTimeoutMs,
      });
    } catch (err) {
      throw toRepositoryError(err);
    }
  }

  /** The embedded default repository's path when the instance backs up to it; null when a repository is configured. */
  defaultRepositoryPath(inst: InstanceInfo): string | null {
    return inst.config.cloud?.backup?.repository ? null : this.store.paths.defaultRepository(inst.name);
  }

  /**
   * Creates the embedded default repository at its first backup: no repository is configured, so
   * the path and the password are ours, and a first backup should not fail with "initialise it
   * first". A configured repository is never created unasked (initRepository): a mistyped bucket
   * or path would start a new, empty repository beside the one that holds the backups. Backups
   * starting at once share one `restic init`. True when this call created it.
   */
  async createDefaultIfMissing(instance: string, dir: string, repo: ResticRepository, signal?: AbortSignal): Promise<boolean> {
    const exists = () => access(path.join(dir, 'config')).then(() => true, () => false);
    if (await exists()) return false;
    let creating = this.creatingDefault.get(dir);
    const mine = !creating;
    if (!creating) {
      creating = (async () => {
        try {
          await repo.init({ signal });
        } catch (err) {
          if (!(await exists())) throw toRepositoryError(err); // another writer (initRepository) made it meanwhile: fine
        } finally {
          this.forget(instance);
        }
      })().finally(() => this.creatingDefault.delete(dir));
      this.creatingDefault.set(dir, creating);
    }
    await creating;
    return mine;
  }

  async config(inst: InstanceInfo): Promise<BackupConfigView> {
    const r = await resolveSettings(this.store, inst);
    const s = r.settings;
    return {
      repository: r.isDefault ? null : displayRepositoryUri(s.repository),
      effectiveRepository: displayRepositoryUri(s.repository),
      backend: findPluginForUri(s.repository)?.name ?? 'unknown',
      isDefault: r.isDefault,
      retention: r.retention,
      endpoint: s.endpoint ?? null,
      region: s.region ?? null,
      port: s.port ?? null,
      cacert: s.cacert ?? null,
      hasPassword: r.hasPassword || r.isDefault, // the default's password is generated on first use
      configuredCredentials: configuredCredentials(s.credentials),
    };
  }

  /**
   * Drops cached status and stats of an instance after our own write to its repository (a backup,
   * a restore's safety backup, forget, prune). The next status still lists the snapshots again,
   * but trusts that a repository we just wrote to opens (no `restic cat config` run).
   */
  invalidate(instance: string): void {
    const hit = this.statusCache.get(instance);
    if (hit) this.beforeWrite.set(instance, { key: hit.key, value: hit.value });
    this.statusCache.delete(instance);
    this.statsCache.delete(instance);
  }

  /** Drops everything known about an instance's repository (its settings changed, it was created). */
  forget(instance: string): void {
    this.beforeWrite.delete(instance);
    this.statusCache.delete(instance);
    this.statsCache.delete(instance);
  }

  /**
   * Status for queries: reused for a few seconds, bounded in time, never throws for repository
   * problems. Past its TTL the last answer is still given while one refresh runs behind it, so
   * queries never queue behind restic for a status that nothing of ours changed.
   */
  async status(inst: InstanceInfo): Promise<RepositoryStatusView> {
    // Read from the files each time (they are cached by their stat): a password or repository
    // changed by hand in secrets.yaml or config.yaml is not answered with the old one's status.
    const key = await settingsKey(this.store, inst);
    const hit = this.statusCache.get(inst.name);
    if (hit && hit.key === key) {
      if (Date.now() - hit.at < (this.opts.statusTtlMs ?? 15_000)) return hit.value;
      if (!hit.refreshing) {
        hit.refreshing = true;
        this.computeStatus(inst).then((value) => {
          // Stored only if nothing invalidated the entry meanwhile.
          if (this.statusCache.get(inst.name) === hit) this.statusCache.set(inst.name, { at: Date.now(), key, value: Promise.resolve(value) });
        }, () => { hit.refreshing = false; });
      }
      return hit.value;
    }
    // What our own last write left is only worth trusting with the settings it was found with.
    const before = this.beforeWrite.get(inst.name);
    this.beforeWrite.delete(inst.name);
    const value = this.computeStatus(inst, undefined, before?.key === key ? before.value : undefined);
    const entry = { at: Date.now(), key, value };
    this.statusCache.set(inst.name, entry);
    value.catch(() => { if (this.statusCache.get(inst.name) === entry) this.statusCache.delete(inst.name); });
    return value;
  }

  private async computeStatus(inst: InstanceInfo, settings?: RepositorySettings, beforeWrite?: Promise<RepositoryStatusView>): Promise<RepositoryStatusView> {
    const prior = await beforeWrite?.catch(() => null);
    if (prior && prior.initialized && prior.reachable && !prior.error) {
      // We wrote to it a moment ago: only the snapshot figures can have changed.
      try {
        const snaps = await (await this.open(inst)).allSnapshots({ timeoutMs: this.opts.statusTimeoutMs ?? 20_000 });
        return { ...prior, ...snapshotFigures(snaps) };
      } catch {
        // Fall through to the full check, which says what is wrong.
      }
    }
    let repo: ResticRepository;
    try {
      if (!settings) {
        // A query never writes: an embedded default without its password yet was never created.
        const r = await resolveSettings(this.store, inst);
        if (r.isDefault && !r.hasPassword) return { initialized: false, reachable: true, error: null, errorCode: null, lastBackupAt: null, snapshotCount: 0 };
        settings = r.settings;
      }
      repo = await this.open(inst, settings);
    } catch (err) {
      const e = toRepositoryError(err) as Error & { code?: string };
      return { initialized: false, reachable: false, error: e.message, errorCode: e.code ?? 'INVALID', lastBackupAt: null, snapshotCount: 0 };
    }
    const st = await repo.status();
    if (!st.reachable || !st.initialized || st.error) {
      return { initialized: st.initialized, reachable: st.reachable, error: st.error ?? null, errorCode: st.errorCode ?? null, lastBackupAt: null, snapshotCount: 0 };
    }
    const snaps = await repo.allSnapshots({ timeoutMs: this.opts.statusTimeoutMs ?? 20_000 });
    return { initialized: true, reachable: true, error: null, errorCode: null, ...snapshotFigures(snaps) };
  }

  /** Repository statistics (raw-data and restore-size), cached for a minute and dropped on our writes. */
  stats(inst: InstanceInfo): Promise<RepositoryStatsView> {
    const hit = this.statsCache.get(inst.name);
    if (hit && Date.now() - hit.at < STATS_TTL_MS) return hit.value;
    const value = (async () => {
      const repo = await this.open(inst);
      const [raw, restore, snaps] = await Promise.all([repo.stats('raw-data'), repo.stats('restore-size'), repo.snapshots()]);
      const times = snaps.map((s) => s.time).sort();
      return { ...raw, logicalSize: restore.totalSize, snapshotCount: snaps.length, oldestSnapshotAt: times[0] ?? null, latestSnapshotAt: times.at(-1) ?? null };
    })().catch((err: unknown) => {
      // The status it was asked under was wrong (found before the repository changed): the next
      // status looks again, and this query gets restic's reason with its code.
      if (err instanceof ResticError) this.statusCache.delete(inst.name);
      throw toRepositoryError(err);
    });
    this.statsCache.set(inst.name, { at: Date.now(), value });
    value.catch(() => this.statsCache.delete(inst.name));
    return value;
  }

  /** The candidate settings: the input, with stored secrets (`resolved`: the stored settings) kept where the input omits them. */
  private async candidate(inst: InstanceInfo, input: BackupConfigInput, resolved?: ResolvedSettings): Promise<RepositorySettings> {
    resolved ??= await resolveSettings(this.store, inst);
    // The default repository's generated password is not a candidate for another repository.
    const stored = resolved.isDefault ? { ...resolved.settings, password: (await this.store.secrets(inst.name)).cloud?.backup?.password ?? '' } : resolved.settings;
    const credentials: StorageCredentials = { ...stored.credentials };
    for (const [k, v] of Object.entries(input.credentials ?? {})) {
      if (v) (credentials as Record<string, unknown>)[k] = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined));
    }
    const settings: RepositorySettings = {
      repository: input.repository,
      password: input.password ?? stored.password,
      ...(input.endpoint ? { endpoint: input.endpoint } : {}),
      ...(input.region ? { region: input.region } : {}),
      ...(input.port ? { port: input.port } : {}),
      ...(input.cacert ? { cacert: input.cacert } : {}),
      credentials,
    };
    registerSecrets(settings);
    const issues: Issue[] = validateRepositorySettings(settings);
    if (issues.length > 0) {
      throw ValidationError.fromIssues(issues.map((i) => ({ path: `input.config.${i.path}`, message: i.message })), 'invalid backup configuration');
    }
    return settings;
  }

  /**
   * Validates, then writes config.yaml and secrets.yaml (comments and other keys kept). An omitted
   * password or credential keeps the stored one; endpoint, region, port and cacert are replaced.
   * If the second write fails, the first file is put back as it was.
   */
  async update(instance: string, given: BackupConfigInput): Promise<BackupConfigView> {
    const inst = await this.store.requireInstance(instance);
    // A rest: URI's `user:password@` goes to secrets.yaml as credentials.rest (the explicit
    // credentials.rest wins, as in the plugin); config.yaml (0644) gets the URI without it.
    const userinfo = splitRestUserinfo(given.repository);
    const input: BackupConfigInput = { ...given, repository: userinfo.repository };
    if (userinfo.credentials && !given.credentials?.rest) input.credentials = { ...given.credentials, rest: userinfo.credentials };
    const stored = await resolveSettings(this.store, inst);
    const settings = await this.candidate(inst, input, stored);
    if (input.password || stored.isDefault || stored.settings.repository !== settings.repository) await this.requireOpens(inst, settings, Boolean(input.password));
    const secretsFile = this.store.paths.secretsFile(instance);
    const before = await readFile(secretsFile, 'utf8').catch(() => null);
    const secretsChanged = Boolean(input.password) || Object.values(input.credentials ?? {}).some(Boolean);
    // config.yaml is written second: one that cannot be edited refuses the change before secrets.yaml is touched.
    await checkEditable(this.store.paths.configFile(instance));
    if (secretsChanged) {
      await updateYamlFile(secretsFile, (doc) => {
        if (input.password) setPath(doc, ['cloud', 'backup', 'password'], input.password);
        for (const [k, v] of Object.entries(input.credentials ?? {})) {
          if (v) setPath(doc, ['cloud', 'backup', 'credentials', k], (settings.credentials as Record<string, unknown>)[k]);
        }
      }, 0o600);
    }
    try {
      await updateYamlFile(this.store.paths.configFile(instance), (doc) => {
        setPath(doc, ['cloud', 'backup', 'repository'], input.repository);
        for (const key of ['endpoint', 'region', 'port', 'cacert'] as const) {
          setPath(doc, ['cloud', 'backup', 'backend', key], input[key] ?? undefined);
        }
        const backend = doc.getIn(['cloud', 'backup', 'backend']) as { items?: unknown[] } | undefined;
        if (backend && Array.isArray(backend.items) && backend.items.length === 0) doc.deleteIn(['cloud', 'backup', 'backend']);
        if (input.retention) {
          const r = Object.fromEntries(Object.entries(input.retention).filter(([, v]) => v !== null && v !== undefined));
          setPath(doc, ['cloud', 'backup', 'retention'], r);
        }
      }, 0o644);
    } catch (err) {
      if (secretsChanged) {
        if (before === null) await rm(secretsFile, { force: true }).catch(() => undefined);
        else await writeFileAtomic(secretsFile, before, 0o600).catch(() => undefined);
      }
      throw err;
    }
    this.forget(instance);
    return this.config(await this.store.requireInstance(instance));
  }

  /**
   * A password that does not open the initialised repository it is for is refused before anything
   * is written: saved, it would put the stored password (often the only copy of it) out of reach,
   * and every backup after it would fail. A repository not initialised yet takes any password (its
   * init uses it); one that cannot be reached now is not held against the change.
   */
  private async requireOpens(inst: InstanceInfo, settings: RepositorySettings, given: boolean): Promise<void> {
    const repo = await this.open(inst, settings);
    // Bounded below the status's own limit: a repository that does not answer saves nothing from a wait.
    const st = await repo.status({ timeoutMs: Math.min(this.opts.statusTimeoutMs ?? 20_000, 10_000) });
    if (st.errorCode !== 'RESTIC_WRONG_PASSWORD') return;
    throw ValidationError.fromIssues([{
      path: 'input.config.password',
      message: given
        ? `does not open the repository at ${repo.displayUri}, which is initialised with another password; nothing was changed, the stored password is kept (changeRepositoryPassword changes a repository's own password)`
        : `the stored password does not open the repository at ${repo.displayUri}: give that repository's password`,
    }], 'the password does not open the repository');
  }

  /**
   * Tries the stored settings, or a candidate merged with the stored secrets, without saving.
   * A reachable repository answers with its status (initialized or not); a wrong password, an
   * unreachable or locked backend is a RepositoryError.
   */
  async test(instance: string, input?: BackupConfigInput | null): Promise<RepositoryStatusView> {
    const inst = await this.store.requireInstance(instance);
    const settings = input ? await this.candidate(inst, input) : undefined;
    const st = await this.computeStatus(inst, settings);
    if (st.error && st.errorCode !== 'RESTIC_NOT_INITIALIZED') throw new RepositoryError(st.error, st.errorCode ?? 'REPOSITORY_ERROR');
    return st;
  }

  /**
   * Starts CHANGE_REPOSITORY_PASSWORD: the repository's own password changes, and the one stored
   * with it. In an order that never leaves the repository without a password that opens it where
   * Wild Central keeps it: a key for the new password is added (restic reads the password from its
   * stdin), the new password is saved in secrets.yaml (where the repository's password is kept, the
   * embedded default's own key included), and only then is the old password's key removed.
   * Whatever stops it before the save is done removes the new key again, and the old password
   * stays. Exclusive: no backup runs with the old password meanwhile.
   */
  async changePassword(instance: string, newPassword: string): Promise<OperationRecord> {
    const inst = await this.store.requireInstance(instance);
    const resolved = await resolveSettings(this.store, inst);
    if (!resolved.hasPassword) throw new ValidationError(`instance "${instance}" has no repository password yet: its repository is made, with a password, by its first backup or initRepository`, [{ path: 'input.instance', message: 'has no repository yet' }]);
    const next: RepositorySettings = { ...resolved.settings, password: newPassword };
    registerSecrets(next);
    const issues = validateRepositorySettings(next).filter((i) => i.path === 'password').map((i) => ({ path: 'input.newPassword', message: i.message }));
    if (newPassword === resolved.settings.password) issues.push({ path: 'input.newPassword', message: 'is the password the repository has now' });
    if (issues.length > 0) throw ValidationError.fromIssues(issues, 'invalid new password');
    await checkEditable(this.store.paths.secretsFile(instance));
    const repo = await this.open(inst, resolved.settings);
    const renewed = await this.open(inst, next);
    const key = resolved.isDefault ? DEFAULT_PASSWORD_KEY : ['cloud', 'backup', 'password'];
    return this.engine.submit({
      kind: 'CHANGE_REPOSITORY_PASSWORD',
      instance,
      exclusive: true,
      run: async (ctx) => {
        const signal = ctx.signal;
        ctx.progress({ phase: 'adding a key for the new password', currentItem: repo.displayUri });
        try {
          const before = await repo.keys({ signal });
          const old = before.find((k) => k.current);
          if (!old) throw new RepositoryError('restic did not say which key the stored password opens', 'RESTIC_FAILED');
          // Until the new password is saved, anything that stops the change (a cancel, a failed
          // check or write) takes the new key away again: the stored password stays the one.
          // The key the new password opens: the one the old password's listing did not have before.
          const added = async () => (await repo.keys()).filter((k) => !before.some((b) => b.id === k.id));
          let id: string;
          try {
            await repo.addKey(newPassword, { signal });
            id = (await added())[0]?.id ?? '';
            const opened = (await renewed.keys({ signal })).find((k) => k.current);
            if (!id || opened?.id !== id) throw new RepositoryError('the key just added does not open the repository with the new password', 'RESTIC_FAILED');
            await updateYamlFile(this.store.paths.secretsFile(instance), (doc) => setPath(doc, key, newPassword), 0o600).catch((err: unknown) => {
              throw new RepositoryError(`the new password could not be saved in secrets.yaml, so the old one stays: ${(err as Error).message}`, 'WRITE_FAILED');
            });
          } catch (err) {
            for (const k of await added().catch(() => [])) await repo.removeKey(k.id).catch((e: unknown) => ctx.log(`the new key ${k.id} could not be removed again: ${(e as Error).message}`));
            throw err;
          }
          ctx.log(`added key ${id} for the new password`);
          ctx.log(`saved the new password in secrets.yaml (${key.join('.')})`);
          ctx.progress({ phase: 'removing the old password\'s key' });
          try {
            await renewed.removeKey(old.id, { signal });
          } catch (err) {
            const why = `the old password's key ${old.id} could not be removed, so the old password still opens the repository: ${(err as Error).message}`;
            ctx.log(why);
            return { message: `the repository's password was changed and saved; ${why}` };
          }
          ctx.log(`removed key ${old.id}: the old password no longer opens the repository`);
          return { message: `the repository's password was changed: key ${old.id} removed, key ${id} added` };
        } catch (err) {
          throw toRepositoryError(err);
        } finally {
          this.forget(instance);
        }
      },
    });
  }

  /** Starts INIT_REPOSITORY. Settings are checked first, so a bad configuration creates no operation. */
  async init(instance: string): Promise<OperationRecord> {
    const inst = await this.store.requireInstance(instance);
    const repo = await this.open(inst);
    return this.engine.submit({
      kind: 'INIT_REPOSITORY',
      instance,
      exclusive: true,
      run: async (ctx) => {
        ctx.progress({ phase: 'initializing', currentItem: repo.displayUri });
        try {
          await repo.init({ signal: ctx.signal });
        } catch (err) {
          throw toRepositoryError(err);
        } finally {
          this.forget(instance);
        }
        return { message: `repository initialized at ${repo.displayUri}` };
      },
    });
  }
}
