// RESTORE_APP and VERIFY_BACKUP. A restore never leaves the user worse off: a safety backup of the
// current state first, the app quiesced, every artifact restored beside the live data and checked,
// then swapped in; the old data goes only when everything succeeded, and any failure, cancel or
// crash puts the old data and the replicas back.
import { randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, NotFoundError, RepositoryError, ValidationError, WildError } from '../../errors.js';
import type { OperationEngine, OperationRecord, TaskContext } from '../operations/index.js';
import type { RepositoryService } from '../repository/service.js';
import type { BackupService } from '../backup/service.js';
import type { BackupView } from '../backup/catalog.js';
import type { ArtifactRecord } from '../backup/manifest.js';
import { ArtifactFailedError, runBackup } from '../backup/pipeline.js';
import { readAll } from '../backup/catalog.js';
import { appConfigSource } from '../../plugins/config/app-config.js';
import { checkReadBack } from '../../plugins/read-back.js';
import type { ClusterService } from '../cluster.js';
import type { ResticRepository } from '../restic/index.js';
import { requireReadableConfig, type InstanceInfo, type WildStore } from '../../wild/store.js';
import { writeFileAtomic } from '../../wild/writer.js';
import { accountRestorers, componentOf, restorers } from '../../plugins/restorers.js';
import { detectDatabases } from '../../plugins/databases/registry.js';
import { quiesce, resume, type ReplicaMap } from './quiesce.js';
import { applyAppConfig, readAppConfig, restoreAppDir, type ConfigUndo } from './config.js';
import { RestoreStalledError, CLEANUP_STEP_MS, deadlineSignal, retrying, type RestoreTarget, type SideDescription, type SideRestore } from './side.js';
import type { KubeClient } from '../../kube/index.js';

export type RestoreComponent = 'DATABASES' | 'VOLUMES' | 'CONFIG';

export interface RestoreInput {
  backup: BackupView;
  targetApp?: string | null;
  components?: RestoreComponent[] | null;
  safetyBackup?: boolean | null;
}

interface SideState { description: SideDescription; state: 'side' | 'swapping' | 'swapped' }
interface RestoreRecovery { namespace: string; replicas: ReplicaMap; sides: SideState[] }

export interface Verification {
  verifiedAt: string;
  ok: boolean;
  details: string | null;
  /** The lines of `details` that say what failed (absent in records older than it). */
  failed?: string[];
}

/** No byte restored for this long (by default) fails the artifact with code STALLED. */
export const DEFAULT_RESTORE_STALL_TIMEOUT_MS = 5 * 60_000;

/**
 * The safety backup failed (a repository out of space, a volume that cannot be read): nothing was
 * restored and the app was not stopped. The caller chooses: mend it, or restore without one.
 */
export class SafetyBackupFailedError extends WildError {
  readonly code = 'SAFETY_BACKUP_FAILED';
  override name = 'SafetyBackupFailedError';
  constructor(app: string, cause: unknown) {
    super(`the safety backup of ${app} failed, so nothing was restored and ${app} was not stopped: ${(cause as Error)?.message ?? String(cause)}. Mend that and restore again, or restore without a safety backup (safetyBackup: false), which keeps no copy of ${app} as it is now`, { cause });
  }
}

/**
 * Counts the bytes of an artifact's stream, and fails it when none moves for `stallMs` while it
 * has not ended: an API server that stops answering mid-stream would otherwise hold the restore
 * (and the app, scaled to 0) forever. Once the stream has ended, the command may take its time.
 */
function counted(stream: Readable, onBytes: (n: number) => void, stallMs?: number): Readable {
  let n = 0;
  let last = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const t = new Transform({
    transform(chunk: Buffer, _e, cb) {
      n += chunk.length;
      last = Date.now();
      // Watched from the first byte on: what comes before (restic's start, a helper pod starting)
      // is bounded by its own timeouts.
      if (stallMs !== undefined && !timer && !t.destroyed) startWatchdog(stallMs);
      onBytes(n);
      cb(null, chunk);
    },
  });
  const startWatchdog = (ms: number): void => {
    timer = setInterval(() => {
      if (Date.now() - last <= ms) return;
      clearInterval(timer);
      const err = new RestoreStalledError(`no progress for ${Math.round(ms / 1000)} s: the cluster or the repository stopped answering`);
      stream.destroy(err); // stops restic dump
      t.destroy(err);
    }, Math.min(1000, ms / 4));
    timer.unref();
  };
  const stop = (): void => clearInterval(timer);
  t.once('end', stop);
  t.once('close', stop);
  stream.once('error', (e) => t.destroy(e));
  t.on('error', () => undefined); // the consumer fails the operation; this copy of the error is not news
  return stream.pipe(t);
}

/**
 * The operation's recovery record of a restore or a drill: the replicas it scaled down and every
 * side copy it made, each recorded before it is filled, so that a crash or a silent cluster leaves
 * what is left to undo (RestoreService.recover). Writes go one at a time, in order; a record with
 * nothing to undo is written as none.
 */
class RecoveryLedger {
  readonly data: RestoreRecovery;
  private readonly states = new Map<SideRestore, SideState>();
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: TaskContext, namespace: string) {
    this.data = { namespace, replicas: {}, sides: [] };
  }

  save(): Promise<void> {
    const empty = this.data.sides.length === 0 && Object.keys(this.data.replicas).length === 0;
    return this.write(empty ? null : this.data);
  }

  /** Nothing is left to undo (the replicas are back too). */
  clear(): Promise<void> {
    return this.write(null);
  }

  private write(data: RestoreRecovery | null): Promise<void> {
    this.saving = this.saving.catch(() => undefined).then(() => this.ctx.saveRecovery(data as unknown as Record<string, unknown> | null));
    return this.saving;
  }

  /** Records a side copy about to be filled. */
  async announce(side: SideRestore): Promise<SideState> {
    const st: SideState = { description: side.description, state: 'side' };
    this.states.set(side, st);
    this.data.sides.push(st);
    await this.save();
    return st;
  }

  stateOf(side: SideRestore): SideState | undefined {
    return this.states.get(side);
  }

  /** A side copy is gone (dropped): nothing is left to undo for it. */
  async dropped(side: SideRestore): Promise<void> {
    const st = this.states.get(side);
    this.states.delete(side);
    this.data.sides = this.data.sides.filter((x) => x !== st);
    await this.save();
  }

  /**
   * Everything restored is in place: from here on a crash must not roll back (the old data may be
   * half removed already); at worst some old data is left to remove by hand.
   */
  async committed(): Promise<void> {
    this.states.clear();
    this.data.sides = [];
    await this.save();
  }

  /** Every side copy made and not dropped yet (one whose filling failed was dropped then, unless its server did not answer). */
  made(): Array<{ side: SideRestore; st: SideState }> {
    return [...this.states].map(([side, st]) => ({ side, st }));
  }

  /** Some side is still swapped in (or half): the app must stay stopped. */
  get stuck(): boolean {
    return this.data.sides.some((s) => s.state !== 'side');
  }

  /** The target's hooks (RestoreTarget.announce, dropped) write here. */
  attach(target: RestoreTarget): void {
    target.announce = async (side) => { await this.announce(side); };
    target.dropped = (side) => this.dropped(side);
  }
}

/**
 * A restore failed, and putting everything back did not finish within its bounds: the recovery
 * record keeps what is left, the engine tries it again in the background, and the app takes no
 * other operation until it is done.
 */
export class RollbackIncompleteError extends WildError {
  readonly code = 'ROLLBACK_INCOMPLETE';
  constructor(cause: unknown, problems: string[]) {
    super(`${(cause as Error)?.message ?? String(cause)}; putting the app back did not finish (${problems.join('; ')}): Wild Backup keeps trying in the background, and the app takes no other operation until it is back`, { cause });
  }
}

/** Data artifacts restored at once (a database and its app's volumes, side by side). */
const RESTORE_CONCURRENCY = 3;
/** Bound of the listing that finds a backup still in the repository before a restore or a drill. */
const SNAPSHOT_CHECK_TIMEOUT_MS = 60_000;

export class RestoreService {
  /** A restore's artifact that moves no byte for this long fails with code STALLED. */
  stallTimeoutMs = DEFAULT_RESTORE_STALL_TIMEOUT_MS;
  /** Bound of one swap step (swapIn, swapBack) or scale-back: renames and moves, quick when the cluster answers. */
  stepTimeoutMs = 10 * 60_000;
  /** Bound of one commit or discard: the removal of a whole copy (a big volume's files) can take long. */
  cleanupTimeoutMs = CLEANUP_STEP_MS;
  /** How long a failed restore's in-process rollback keeps trying before it leaves the rest to the engine. */
  rollbackRetryMs = 120_000;

  /** A signal for one swap step: its own deadline, and the operation's cancel if given. */
  private step(signal?: AbortSignal): AbortSignal {
    const deadline = deadlineSignal(this.stepTimeoutMs);
    return signal ? AbortSignal.any([signal, deadline]) : deadline;
  }

  private cleanupStep(): AbortSignal {
    return deadlineSignal(this.cleanupTimeoutMs);
  }

  /**
   * Drops the accounts (roles, users) a failed restore created, tried again for `rollbackRetryMs`
   * while the server does not answer. Accounts that stay (something came to depend on them, or the
   * server never came back) are logged, not a failure of the rollback: the app's data is back
   * either way.
   */
  private async dropAccounts(ctx: TaskContext, target: RestoreTarget, kind: string, names: string[]): Promise<void> {
    const { noun, drop } = accountRestorers[kind]!;
    try {
      const left = await retrying(() => drop(target, names, this.cleanupStep()), { timeoutMs: this.rollbackRetryMs });
      const gone = names.filter((r) => !left.includes(r));
      if (gone.length > 0) ctx.log(`dropped the ${noun} this restore created: ${gone.join(', ')}`);
      if (left.length > 0) ctx.log(`kept ${noun} this restore created that are in use now: ${left.join(', ')}`);
    } catch (e) {
      ctx.log(`could not drop the ${noun} this restore created (${names.join(', ')}): ${(e as Error).message}`);
    }
  }

  /** Scales the app back to the recorded replicas, each try bounded, tried again for `rollbackRetryMs`. */
  private scaleBack(ctx: TaskContext, client: KubeClient, ledger: RecoveryLedger, onRetry: (e: Error) => void): Promise<void> {
    return retrying(() => resume(client, ledger.data.namespace, ledger.data.replicas, (l) => ctx.log(l), this.step()), { timeoutMs: this.rollbackRetryMs, onRetry });
  }

  /**
   * Undoes a failed restore: the config first, every swapped side back (each step bounded, tried
   * again for `rollbackRetryMs`), then the replicas and the side copies' removal side by side. The
   * recovery record follows each step, so what is left is exactly what the engine retries. Returns
   * what could not be done.
   */
  private async rollBack(ctx: TaskContext, client: KubeClient, ledger: RecoveryLedger, configUndo: ConfigUndo | null): Promise<{ resumed: boolean; problems: string[] }> {
    const sides = ledger.made();
    const problems: string[] = [];
    await configUndo?.undo().catch((e: unknown) => { problems.push(`config: ${(e as Error).message}`); ctx.log(`config undo failed: ${(e as Error).message}`); });
    let retried = false;
    const onRetry = (e: Error) => { if (!retried) ctx.log(`clean-up waits for the server to answer again: ${e.message}`); retried = true; };
    const opts = { onRetry, timeoutMs: this.rollbackRetryMs };
    for (const s of [...sides].reverse()) {
      if (s.st.state === 'side') continue;
      try {
        await retrying(() => s.side.swapBack(this.step()), opts);
        s.st.state = 'side';
        await ledger.save();
        ctx.log(`put the old ${s.st.description.kind} data back`);
      } catch (e) {
        problems.push(`${s.st.description.kind}: the old data is not back yet (${(e as Error).message})`);
        ctx.log(`swap back failed: ${(e as Error).message}`);
      }
    }
    if (ledger.stuck) {
      for (const s of sides) await s.side.close?.().catch(() => undefined);
      return { resumed: false, problems };
    }
    // The old data is live again: the app starts while the side copies go.
    let resumed = false;
    await Promise.all([
      this.scaleBack(ctx, client, ledger, onRetry)
        .then(() => { resumed = true; }, (e: unknown) => { problems.push(`replicas: ${(e as Error).message}`); ctx.log(`could not scale back: ${(e as Error).message}`); }),
      ...[...sides].reverse().map(async (s) => {
        try {
          await retrying(() => s.side.discard(this.cleanupStep()), opts);
          await ledger.dropped(s.side);
        } catch (e) {
          problems.push(`${s.st.description.kind}: the restored copy is not removed yet (${(e as Error).message})`);
          ctx.log(`discard failed: ${(e as Error).message}`);
        } finally {
          await s.side.close?.().catch(() => undefined);
        }
      }),
    ]);
    return { resumed, problems };
  }

  constructor(
    private readonly store: WildStore,
    private readonly engine: OperationEngine,
    private readonly repositories: RepositoryService,
    private readonly backups: BackupService,
    private readonly cluster: ClusterService,
    private readonly opts: { helperImage?: string; lockWaitMs?: number } = {},
  ) {}

  private artifactsFor(b: BackupView, components: Set<RestoreComponent>): ArtifactRecord[] {
    return (b.manifest?.artifacts ?? []).filter((a) => {
      const c = componentOf(a.kind);
      return c !== null && components.has(c) && (a.kind in accountRestorers || a.kind === 'config' || a.kind in restorers);
    });
  }

  async restore(input: RestoreInput): Promise<OperationRecord> {
    const b = input.backup;
    if (b.problem) throw unreadableBackup(b.backupId, b.problem);
    if (b.kind === 'CLUSTER') {
      // Its files are Wild Central's own (every app's settings, the repository's password): they
      // are for rebuilding Wild Central, not for writing over the files of the one that runs.
      throw new ValidationError(`backup ${b.backupId} is a cluster backup (the instance's config.yaml, secrets.yaml, kubeconfig and talosconfig), which restoreBackup does not write over the running Wild Central's files: it is for rebuilding Wild Central, by hand with restic (the README's "Recovering by hand"); verifyBackup checks it`, [{ path: 'input.backupId', message: 'is a cluster backup' }]);
    }
    if (b.status !== 'COMPLETE') throw new ValidationError(`backup ${b.backupId} is INCOMPLETE and cannot be restored`, [{ path: 'input.backupId', message: 'is incomplete' }]);
    if (!b.appName || !b.manifest) throw new ValidationError('only COMPLETE app backups can be restored', [{ path: 'input.backupId', message: 'is not a complete app backup' }]);
    const inst = await this.store.requireInstance(b.instance);
    const targetName = input.targetApp ?? b.appName;
    requireReadableConfig(inst, `a restore into "${targetName}"`);
    const clone = targetName !== b.appName;
    const found = clone ? await this.store.requireApp(inst, targetName) : await this.store.app(inst, targetName);
    if (clone && !found!.manifest) throw new ValidationError(`app "${targetName}" has broken files and cannot be restored into`, [{ path: 'input.targetApp', message: 'has problems' }]);
    // An app no longer on Wild Central (`wild app delete` removes its directory and its namespace)
    // or whose files are broken: its CONFIG alone brings back its directory and its settings, so
    // that it can be deployed again; its data goes into it once it is deployed.
    const rebuild = !found?.manifest;
    if (rebuild && !(input.components?.length && input.components.every((c) => c === 'CONFIG'))) {
      const state = found ? 'has broken files' : 'is not on this Wild Central (its app directory is gone)';
      throw new ValidationError(
        `"${targetName}" ${state}: restore this backup's CONFIG alone first (components: [CONFIG]), which brings back its app directory and its settings; then deploy it, and restore its DATABASES and VOLUMES into it`,
        [{ path: 'input.components', message: `only CONFIG can be restored while ${targetName} ${found ? 'has broken files' : 'is not on Wild Central'}` }],
      );
    }
    const app = found ?? this.store.absentApp(inst, targetName);
    if (clone && input.components?.includes('CONFIG')) {
      throw new ValidationError('CONFIG cannot be restored into another app: it would overwrite the clone\'s own settings', [{ path: 'input.components', message: 'CONFIG only restores into the same app' }]);
    }
    if (input.components?.length === 0) {
      throw new ValidationError('choose at least one component to restore, or leave components out for all of them', [{ path: 'input.components', message: 'is empty' }]);
    }
    const components = new Set<RestoreComponent>(input.components ?? (clone ? ['DATABASES', 'VOLUMES'] : ['DATABASES', 'VOLUMES', 'CONFIG']));
    const artifacts = this.artifactsFor(b, components);
    // Restoring nothing would still take the safety backup and stop the app.
    if (!artifacts.some((a) => !(a.kind in accountRestorers))) {
      throw new ValidationError(`backup ${b.backupId} holds nothing of ${[...components].join(', ')} to restore`, [{ path: 'input.components', message: 'selects nothing in this backup' }]);
    }
    // A database server app's backup is a whole-server dump (pg_dumpall, mysqldump --all-databases):
    // restoring it would stop the server for every app using it, then fail. Refused before anything
    // happens; its other components (VOLUMES, CONFIG) can still be chosen.
    const server = artifacts.find((a) => (a.kind === 'postgres' || a.kind === 'mysql') && a.name === 'all');
    if (server) {
      throw new ValidationError(`${server.kind}:all of ${b.appName} is a whole-server dump, for rebuilding a server: restoring it would stop the ${server.kind} server for every app using it. Restore each app from its own backup instead`, [{ path: 'input.components', message: 'DATABASES of a database server app cannot be restored' }]);
    }
    // The target app's database of each engine, against each database the restore brings back.
    const uses = new Map(detectDatabases(app).map((d) => [d.engine, d.databaseName]));
    for (const a of artifacts.filter((x) => x.kind === 'postgres' || x.kind === 'mysql')) {
      const now = uses.get(a.kind);
      if (clone) {
        // Another kind of app (ghost on MariaDB for a backup of immich on PostgreSQL) has nothing to restore it into.
        if (now === undefined) throw new ValidationError(`"${targetName}" uses no ${a.kind} database to restore ${b.appName}'s "${a.name}" into: a clone must be an app of the same kind`, [{ path: 'input.targetApp', message: `uses no ${a.kind} database` }]);
        // A database server app (its database is the whole server): the clone would stop the
        // server every app uses, take a whole-server safety backup, and load an app's database
        // into the server's own.
        if (now === null) throw new ValidationError(`"${targetName}" is the ${a.kind} server itself, not an app using a database: ${b.appName}'s "${a.name}" can be cloned only into an app of the same kind`, [{ path: 'input.targetApp', message: `is the ${a.kind} server` }]);
        if (now === a.name) throw new ValidationError(`the clone "${targetName}" uses the same ${a.kind} database "${a.name}" as the source`, [{ path: 'input.targetApp', message: 'shares a database with the source app' }]);
      } else if (now !== a.name) {
        // In place, a database goes back under its name in the backup. That must be the database
        // the app uses now: another one (the app's database setting changed since) is not in the
        // safety backup, so it would be replaced with no copy kept, and the app would not see it.
        throw new ValidationError(
          `the backup's ${a.kind} database "${a.name}" is not the one ${targetName} uses now (${now ? `"${now}"` : 'none'}): restoring it in place would replace a database the app does not use, with no safety copy of it. Set the app's database back to "${a.name}" first, or restore into another app (targetApp)`,
          [{ path: 'input.backupId', message: `holds ${a.kind} database "${a.name}", which ${targetName} does not use now` }],
        );
      }
    }
    const repo = await this.repositories.open(inst);
    // Only the app's settings (CONFIG alone): they are Wild Central's files, not the cluster's, so
    // the app keeps running; it takes them at its next deploy.
    const stopsApp = artifacts.some((a) => a.kind !== 'config');
    return this.engine.submit({
      kind: 'RESTORE_APP',
      instance: inst.name,
      app: targetName,
      alsoHolds: serverAppsOf(artifacts, targetName).map((app) => ({ app, as: 'alter' as const })),
      stopsApp,
      backup: b.backupId,
      run: (ctx) => this.run(ctx, { inst, repo, backup: b, app: targetName, clone, artifacts, safety: input.safetyBackup !== false, stopsApp, rebuild }),
    });
  }

  private async run(ctx: TaskContext, r: { inst: InstanceInfo; repo: ResticRepository; backup: BackupView; app: string; clone: boolean; artifacts: ArtifactRecord[]; safety: boolean; stopsApp: boolean; rebuild: boolean }) {
    const { inst, repo, backup } = r;
    const app = r.rebuild ? ((await this.store.app(inst, r.app)) ?? this.store.absentApp(inst, r.app)) : await this.store.requireApp(inst, r.app);
    ctx.log(`restoring backup ${backup.backupId} of ${backup.appName} into ${r.app}: ${r.artifacts.map((a) => `${a.kind}:${a.name}`).join(', ') || 'nothing'}`);
    const client = await this.cluster.client(inst);
    const target: RestoreTarget = { client, inst, app, sourceApp: backup.appName!, helperImage: this.opts.helperImage, lockWaitMs: this.opts.lockWaitMs, stallMs: this.stallTimeoutMs };
    // What can fail before the app is stopped fails now (the room for each side copy), and before
    // the safety backup's time is spent.
    ctx.progress({ phase: 'checking' });
    // A cluster that does not answer fails the restore within the bound of a query, not the
    // longer bounds of the steps below. The backup is looked for in the repository itself, not
    // the listing it was chosen from: one removed since (by hand, or from another machine)
    // fails the restore here, before the safety backup and before the app is stopped.
    await Promise.all([
      client.call((o) => client.versionApi.getCode({}, o), { timeoutMs: this.cluster.timeoutMs, signal: ctx.signal }),
      requireSnapshots(repo, backup, r.artifacts, ctx.signal),
    ]);
    for (const a of r.artifacts) {
      const restorer = restorers[a.kind];
      if (!restorer?.preflight || restorer.notRestoredBecause?.(target, a)) continue;
      await restorer.preflight(target, a, ctx.signal).catch((err: unknown) => { throw new ArtifactFailedError(`${a.kind}:${a.name}`, err); });
    }
    let safetyId: string | null = null;
    if (r.safety) {
      ctx.progress({ phase: 'safety backup' });
      // What does not exist yet (a clone's database) has nothing to protect.
      // An app being brought back has nothing in the cluster to plan from: its settings (and a
      // broken directory's files) are what the restore replaces.
      const plan = r.rebuild ? { sources: [], skipped: [] } : await this.backups.planner(inst, app, ctx.signal, { missingOk: true });
      const safety = await runBackup({ repo, catalog: this.backups.catalog, leftovers: this.backups.leftovers, instance: inst.name, app: r.app, reason: 'safety', ctx, sources: [...plan.sources, appConfigSource(this.store, app)], skipped: plan.skipped })
        .catch((err: unknown) => { throw ctx.signal.aborted ? err : new SafetyBackupFailedError(r.app, err); });
      safetyId = safety.backupId;
      ctx.log(`safety backup ${safetyId} taken: restoring it undoes this restore`);
      this.repositories.invalidate(inst.name);
    }
    const suffix = randomBytes(3).toString('hex');
    const ledger = new RecoveryLedger(ctx, r.app);
    ledger.attach(target);
    const sides: Array<{ side: SideRestore; st: SideState; label: string }> = [];
    let configUndo: ConfigUndo | null = null;
    let appDir: Awaited<ReturnType<typeof restoreAppDir>> | null = null;
    const total = r.artifacts.reduce((n, a) => n + a.sizeBytes, 0);
    let base = 0;
    let resumed = false;
    /** The accounts (roles, users) this restore created, by artifact kind: a failed restore drops them again. */
    const createdAccounts = new Map<string, string[]>();
    const config = r.artifacts.find((a) => a.kind === 'config');
    // The config artifact is a few KiB: fetched while the data is restored, so its restic start-up
    // (key derivation, index) is off the critical path; read before the swap, applied after it.
    const configBytes = config ? readAll(repo.dump(config.snapshotId, `/${config.filename}`, { signal: ctx.signal }), 8 << 20) : null;
    configBytes?.catch(() => undefined); // awaited below; a restore that fails earlier does not care
    ctx.progress({ phase: r.stopsApp ? 'quiescing' : 'restoring', bytesDone: 0, bytesTotal: total });
    try {
      if (r.stopsApp) {
        const replicas = await quiesce(client, r.app, async (rep) => { ledger.data.replicas = rep; await ledger.save(); }, ctx.signal);
        target.quiesced = replicas;
        ctx.log(`quiesced ${Object.keys(replicas).join(', ') || 'no workloads'}`);
      } else if (r.rebuild) ctx.log('only the app\'s directory and settings are restored: nothing in the cluster is touched');
      else ctx.log('only the app\'s settings are restored: the app keeps running, and takes them at its next deploy');
      // Accounts first (the dumps' owners and grants need them), then the data artifacts side by side,
      // up to three at once, biggest first: a database and a volume restore on different servers
      // and volumes, and their restic start-ups overlap. The first failure stops the others.
      const restorable: ArtifactRecord[] = [];
      for (const a of r.artifacts) {
        if (a.kind === 'config') continue; // applied after the data is swapped in
        const notRestored = a.kind in accountRestorers ? undefined : restorers[a.kind]?.notRestoredBecause?.(target, a);
        if (notRestored) {
          ctx.log(`${a.kind}:${a.name} is not restored: ${notRestored}`);
          base += a.sizeBytes;
          continue;
        }
        restorable.push(a);
      }
      const moved = new Map<ArtifactRecord, number>();
      const active = new Set<ArtifactRecord>();
      const report = () => ctx.progress({
        bytesDone: base + [...moved.values()].reduce((x, y) => x + y, 0),
        ...(active.size > 0 ? { phase: `restoring ${[...active].map((a) => `${a.kind}:${a.name}`).join(', ')}`, currentItem: [...active][0]!.filename } : {}),
      });
      const group = new AbortController();
      const signal = AbortSignal.any([ctx.signal, group.signal]);
      let failure: { err: unknown } | undefined;
      const restoreOne = async (a: ArtifactRecord): Promise<void> => {
        active.add(a);
        report();
        try {
          const stream = counted(repo.dump(a.snapshotId, `/${a.filename}`, { signal }), (n) => { moved.set(a, n); report(); }, this.stallTimeoutMs);
          const made = accountRestorers[a.kind];
          if (made) {
            const created = await made.applyMissing(target, stream, signal);
            createdAccounts.set(a.kind, [...(createdAccounts.get(a.kind) ?? []), ...created]);
            ctx.log(created.length ? `created missing ${made.noun}: ${created.join(', ')}` : `all ${made.noun} exist already`);
          } else {
            // Recorded (by `announce`) before it is filled; listed for the swap once filled.
            const again = () => counted(repo.dump(a.snapshotId, `/${a.filename}`, { signal }), () => undefined, this.stallTimeoutMs);
            const side = await restorers[a.kind]!.restoreSide(target, a, stream, suffix, signal, again);
            sides.push({ side, st: ledger.stateOf(side) ?? (await ledger.announce(side)), label: `${a.kind}:${a.name}` });
            ctx.log(await side.check(signal));
          }
          moved.set(a, a.sizeBytes);
        } catch (err) {
          if (!failure && !ctx.signal.aborted) failure = { err: new ArtifactFailedError(`${a.kind}:${a.name}`, err) };
          if (!group.signal.aborted) group.abort(failure?.err);
        } finally {
          active.delete(a);
          report();
        }
      };
      const accounts = restorable.filter((a) => a.kind in accountRestorers);
      const data = restorable.filter((a) => !(a.kind in accountRestorers)).sort((x, y) => y.sizeBytes - x.sizeBytes);
      for (const a of accounts) if (!signal.aborted) await restoreOne(a);
      let next = 0;
      const worker = async () => { while (next < data.length && !signal.aborted) await restoreOne(data[next++]!); };
      await Promise.all(Array.from({ length: Math.min(RESTORE_CONCURRENCY, data.length) }, worker));
      ctx.signal.throwIfAborted();
      if (failure) throw failure.err;
      // A config artifact that cannot be read fails the restore here, with nothing swapped in yet.
      const configSlices = configBytes
        ? await configBytes.then((b) => readAppConfig(r.app, Readable.from([b]))).catch((err: unknown) => { throw new ArtifactFailedError(`config:${config!.name}`, err); })
        : null;
      if (r.rebuild && !configSlices?.dir.some((f) => f.path === 'manifest.yaml')) {
        throw new ArtifactFailedError(`config:${config?.name ?? r.app}`, new Error('the backup holds no app directory (manifest.yaml) to bring the app back from'));
      }
      ctx.progress({ phase: 'swapping in' });
      for (const s of sides) {
        s.st.state = 'swapping';
        await ledger.save();
        await s.side.swapIn(this.step(ctx.signal)).catch((err: unknown) => { throw new ArtifactFailedError(`swapping in ${s.label}`, err); });
        s.st.state = 'swapped';
        await ledger.save();
        const d = s.st.description;
        // A database that did not exist (dropped, or a new server) left nothing aside.
        const aside = d.hadLive === false ? null : typeof d.oldDir === 'string' ? d.oldDir : typeof d.old === 'string' ? d.old : null;
        ctx.log(`swapped in ${s.label}${aside ? `; the data it replaced is kept as ${aside} until the restore is done` : ''}`);
      }
      if (configSlices && r.rebuild) {
        appDir = await restoreAppDir(this.store.paths.appsDir(inst.name), r.app, configSlices.dir, suffix);
        ctx.log(`brought back the app directory (${configSlices.dir.length} files)`);
      }
      if (configSlices) {
        configUndo = await applyAppConfig(this.store, inst.name, r.app, configSlices);
        ctx.log('restored the app\'s config.yaml and secrets.yaml settings');
      }
      ctx.progress({ phase: 'cleaning up' });
      await ledger.committed();
      // The old data goes while the app starts again: neither waits for the other. The cluster may
      // not answer right now: the scale-back keeps trying for a while rather than leave the app at 0.
      await Promise.all([
        ...sides.map((s) => s.side.commit(this.cleanupStep()).catch((err: unknown) => ctx.log(`could not remove the old data of ${s.st.description.kind}: ${(err as Error).message}`))),
        appDir?.commit().catch((err: unknown) => ctx.log(`could not remove the replaced app directory: ${(err as Error).message}`)),
        this.scaleBack(ctx, client, ledger, (e) => ctx.log(`could not scale back yet: ${e.message}; trying again`))
          .then(() => { resumed = true; }, (e: unknown) => ctx.log(`could not scale back: ${(e as Error).message}; Wild Backup keeps trying in the background`)),
      ]);
    } catch (err) {
      ctx.log(`restore failed: ${(err as Error).message}; putting everything back`);
      // The settings first, then the directory they were written beside.
      const left = await this.rollBack(ctx, client, ledger, { undo: async () => { try { await configUndo?.undo(); } finally { await appDir?.undo(); } } });
      resumed = left.resumed;
      if (left.problems.length > 0) throw new RollbackIncompleteError(err, left.problems);
      // Every side copy is gone, so the accounts made for them own nothing of this restore's.
      for (const [kind, names] of createdAccounts) if (names.length > 0) await this.dropAccounts(ctx, target, kind, names);
      throw err;
    } finally {
      // Nothing left to undo: the record says so. Else it keeps what is left (a side still swapped
      // in keeps the app at 0: it must not start on data that is not its own), which the engine
      // tries again in the background, and the app takes no other operation until it is done.
      if (resumed && ledger.data.sides.length === 0) await ledger.clear();
      else await ledger.save().catch(() => undefined);
    }
    // Its data needs the app deployed: the next step is the user's, and the message says so.
    const data = r.rebuild && (backup.manifest?.artifacts ?? []).some((a) => a.kind in restorers);
    const next = data ? `; deploy ${r.app}, then restore this backup's DATABASES and VOLUMES into it` : r.rebuild ? `; deploy ${r.app} to run it again` : '';
    if (next) ctx.log(next.slice(2));
    return { backupId: safetyId ?? undefined, message: `restored backup ${backup.backupId} into ${r.app}${safetyId ? `; safety backup ${safetyId}` : ''}${next}` };
  }

  /** Start-up recovery of a restore that a crash interrupted: old data back, side copies gone, replicas back. */
  async recover(rec: OperationRecord, log: (l: string) => void): Promise<void> {
    const data = rec.recovery as unknown as RestoreRecovery | null;
    if (!data) return;
    const inst = await this.store.requireInstance(rec.instanceName);
    const client = await this.cluster.client(inst);
    // The old data back first, then the replicas (only once every old copy is back), then the
    // side copies go. Every step can run again: a recovery that fails is tried again later.
    const handles: Array<{ st: SideState; side: SideRestore }> = [];
    try {
      for (const st of [...data.sides].reverse()) {
        const restorer = restorers[st.description.kind];
        if (!restorer) continue;
        const side = await restorer.fromDescription({ client, inst, helperImage: this.opts.helperImage }, st.description);
        handles.push({ st, side });
        if (st.state !== 'side') {
          await side.swapBack(this.step());
          log(`put the old ${st.description.kind} data back`);
        }
      }
      await resume(client, data.namespace, data.replicas, log, this.step());
      for (const { side } of handles) await side.discard(this.cleanupStep());
    } finally {
      for (const { side } of handles) await side.close?.().catch(() => undefined);
    }
  }

  // ---- verification (restore drills) ------------------------------------------------------------

  private verificationFile(instance: string, backupId: string): string {
    return path.join(this.store.paths.stateDir, 'verifications', instance, `${backupId}.json`);
  }

  async verification(instance: string, backupId: string): Promise<Verification | null> {
    try {
      return JSON.parse(await readFile(this.verificationFile(instance, backupId), 'utf8')) as Verification;
    } catch {
      return null;
    }
  }

  async verify(b: BackupView): Promise<OperationRecord> {
    if (b.problem) throw unreadableBackup(b.backupId, b.problem);
    if (b.status !== 'COMPLETE' || !b.manifest) throw new ConflictError(`backup ${b.backupId} is incomplete: there is nothing to verify`);
    const inst = await this.store.requireInstance(b.instance);
    // A cluster backup restores nothing into the running cluster: each artifact is read back
    // whole and checked against the manifest (plugins/read-back.ts).
    if (b.kind === 'CLUSTER') return this.drill(inst, b, null, b.manifest.artifacts, () => false, async () => (a, stream) => checkReadBack(a, stream));
    if (!b.appName) throw new NotFoundError(`backup ${b.backupId} names no app`);
    const app = await this.store.app(inst, b.appName);
    if (!app) {
      throw new NotFoundError(`"${b.appName}" is not on this Wild Central: a drill restores its data beside the app's own. Bring it back first (restoreBackup with components: [CONFIG], then deploy it)`);
    }
    // Databases and volumes are restored into scratch space and compared; the rest (the app's
    // settings, its database roles), which a restore also reads, is read back whole: a damaged one
    // would otherwise pass the drill and fail the restore.
    const restored = new Set(this.artifactsFor(b, new Set(['DATABASES', 'VOLUMES'])).filter((a) => a.kind in restorers));
    return this.drill(inst, b, app.name, b.manifest.artifacts, (a) => restored.has(a), async (ctx) => {
      const client = await this.cluster.client(inst);
      const target: RestoreTarget = { client, inst, app, sourceApp: b.appName!, helperImage: this.opts.helperImage, drill: true, stallMs: this.stallTimeoutMs };
      // A drill's side copies are recorded like a restore's (never swapped, no replicas): a crash
      // or a silent cluster leaves a record by which the recovery drops them, instead of a full
      // copy of the database left on the server's shared volume for good.
      new RecoveryLedger(ctx, app.name).attach(target);
      return async (a, stream, cleanups) => {
        if (!restored.has(a)) return checkReadBack(a, stream);
        const unloaded = restorers[a.kind]!.checkUnloaded?.(a);
        if (unloaded) return unloaded(stream);
        const side = await restorers[a.kind]!.restoreSide(target, a, stream, `v${randomBytes(2).toString('hex')}`, ctx.signal);
        // Bounded; one that fails stays recorded, and the engine drops it later.
        cleanups.push(() => side.discard(this.cleanupStep()).then(() => target.dropped!(side), (e: unknown) => ctx.log(`scratch cleanup failed: ${(e as Error).message}; it is tried again in the background`)));
        return side.check(ctx.signal);
      };
    });
  }

  /**
   * A restore drill (VERIFY_BACKUP): each artifact's bytes from the repository go to the check
   * `prepare` gives, one artifact at a time; a failed check is the drill's finding, not its end.
   * The result is kept for `Backup.verification`.
   */
  private async drill(
    inst: InstanceInfo, b: BackupView, app: string | null, artifacts: ArtifactRecord[], loads: (a: ArtifactRecord) => boolean,
    prepare: (ctx: TaskContext) => Promise<(a: ArtifactRecord, stream: Readable, cleanups: Array<() => Promise<void>>) => Promise<string>>,
  ): Promise<OperationRecord> {
    const repo = await this.repositories.open(inst);
    return this.engine.submit({
      kind: 'VERIFY_BACKUP',
      instance: inst.name,
      ...(app ? { app, alsoHolds: serverAppsOf(artifacts, app).map((server) => ({ app: server, as: 'alter' as const })) } : {}),
      backup: b.backupId,
      run: async (ctx) => {
        ctx.setBackupId(b.backupId);
        // A backup removed since it was listed is not a backup that fails its verification.
        await requireSnapshots(repo, b, artifacts, ctx.signal);
        const check = await prepare(ctx);
        const lines: string[] = [];
        const failed: string[] = [];
        let ok = true;
        let base = 0;
        ctx.progress({ phase: 'verifying', bytesTotal: artifacts.reduce((n, a) => n + a.sizeBytes, 0), bytesDone: 0 });
        for (const a of artifacts) {
          ctx.progress({ phase: `verifying ${a.kind}:${a.name}`, currentItem: a.filename });
          // Stops this artifact's restic dump however its check ended: one no longer read (pg_restore
          // failed mid-stream) would run on, holding a repository lock. Then the check's clean-ups.
          const dumpDone = new AbortController();
          const cleanups: Array<() => Promise<void>> = [];
          try {
            const stream = counted(repo.dump(a.snapshotId, `/${a.filename}`, { signal: AbortSignal.any([ctx.signal, dumpDone.signal]) }), (n) => ctx.progress({ bytesDone: base + n }), this.stallTimeoutMs);
            lines.push(await check(a, stream, cleanups));
          } catch (err) {
            if (ctx.signal.aborted) throw err;
            ok = false;
            const what = `${a.kind}:${a.name}: `;
            const message = (err as Error).message;
            lines.push(message.startsWith(what) ? message : what + message);
            failed.push(lines.at(-1)!);
          } finally {
            dumpDone.abort();
            for (const c of cleanups) await c();
          }
          ctx.log(lines.at(-1)!);
          base += a.sizeBytes;
        }
        const result: Verification = { verifiedAt: new Date().toISOString(), ok, details: lines.join('\n') || 'no restorable artifacts', ...(ok ? {} : { failed }) };
        await mkdir(path.dirname(this.verificationFile(inst.name, b.backupId)), { recursive: true });
        await writeFileAtomic(this.verificationFile(inst.name, b.backupId), JSON.stringify(result, null, 2), 0o644);
        if (!ok) throw Object.assign(new Error(`verification of ${b.backupId} failed: ${lines.filter((l) => !l.includes('as recorded')).join('; ')}`), { code: 'VERIFICATION_FAILED' });
        const n = (k: number) => `${k} ${k === 1 ? 'artifact' : 'artifacts'}`;
        const loaded = artifacts.filter(loads).length;
        const read = artifacts.length - loaded;
        const how = [loaded ? `${n(loaded)} restored` : '', read ? `${loaded ? read : n(read)} read back` : ''].filter(Boolean).join(' and ');
        return { backupId: b.backupId, message: `backup ${b.backupId} verified: ${how || 'nothing'} and checked` };
      },
    });
  }
}

/**
 * The database server apps on which these artifacts are restored or loaded (a whole-server dump,
 * only read back, is not), other than `app` itself: the work holds them (OperationTask.alsoHolds).
 */
function serverAppsOf(artifacts: readonly ArtifactRecord[], app: string): string[] {
  const servers = artifacts.flatMap((a) => {
    const r = restorers[a.kind];
    return r?.serverApp && r.serverApp !== app && !r.checkUnloaded?.(a) ? [r.serverApp] : [];
  });
  return [...new Set(servers)];
}

/**
 * Fails with NotFoundError when a snapshot of these artifacts is no longer in the repository (a
 * fresh listing, which the queries then share). Our own server does not remove a backup that
 * queued work uses (OperationTask.backup); someone else may have.
 */
async function requireSnapshots(repo: ResticRepository, b: BackupView, artifacts: readonly ArtifactRecord[], signal: AbortSignal): Promise<void> {
  const listed = await repo.refresh({ signal, timeoutMs: SNAPSHOT_CHECK_TIMEOUT_MS });
  // restic 0.14 reports short ids when it saves a snapshot; the manifest keeps those.
  const missing = artifacts.filter((a) => !listed.some((s) => s.id.startsWith(a.snapshotId)));
  if (missing.length > 0) {
    throw new NotFoundError(`backup ${b.backupId} is no longer in the repository: the snapshots of ${missing.map((a) => `${a.kind}:${a.name}`).join(', ')} were removed since it was listed`);
  }
}

/** A backup whose manifest could not be read this time: it may be complete, so it is not called incomplete. */
function unreadableBackup(backupId: string, problem: string): RepositoryError {
  return new RepositoryError(`backup ${backupId} cannot be used now: ${problem}`, 'BACKUPS_UNREADABLE');
}
