// The start-up sweep of helper pods an earlier run of this server left behind (it was killed before
// its clean-up): on a ReadWriteOnce volume such a pod keeps the volume attached, so neither the app
// nor the start-up recovery's own helper pod could mount it until activeDeadlineSeconds (a day).
// Each instance's sweep is bounded and never fails the start; an instance whose cluster does not
// answer is swept again in the background until it has been swept once.
import { deleteOrphanHelperPods, type HelperPodOwner } from '../kube/index.js';
import { logger } from '../util/log.js';
import type { WildStore } from '../wild/store.js';
import type { ClusterService } from './cluster.js';

const log = logger('helper-sweep');

export interface HelperSweepOptions {
  /** Bound of one instance's sweep (list and deletes). Default 10 s. */
  timeoutMs?: number;
  /** Wait before an instance whose sweep failed is swept again. Default 60 s. */
  retryMs?: number;
}

export class HelperPodSweeper {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<unknown>>();
  private stopped = false;
  private readonly timeoutMs: number;

  constructor(
    private readonly store: WildStore,
    private readonly cluster: ClusterService,
    private readonly owner: HelperPodOwner,
    private readonly opts: HelperSweepOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Sweeps every instance at once; resolves when each has been swept or has failed (then retried later). Never throws. */
  async sweep(instances: string[]): Promise<void> {
    await Promise.all(instances.map((name) => this.track(this.sweepOrRetry(name, true))));
  }

  /** One instance's sweep: true when it is done (or there is nothing to sweep), false when it failed. */
  async sweepInstance(name: string, quiet = false): Promise<boolean> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const inst = await this.store.instance(name);
      if (!inst?.hasKubeconfig) return true; // no cluster: no helper pod of ours in it
      const client = await this.cluster.client(inst);
      const deleted = await deleteOrphanHelperPods(client, { ...this.owner, signal, timeoutMs: this.timeoutMs });
      if (deleted.length > 0) log.info('helper pods of an earlier run deleted', { instance: name, pods: deleted });
      return true;
    } catch (err) {
      const error = signal.aborted ? `the cluster did not answer within ${this.timeoutMs} ms` : (err as Error).message;
      const fields = { instance: name, error };
      if (this.stopped) return false;
      if (quiet) log.debug('helper pods left by an earlier run still not looked for', fields);
      else log.warn('helper pods left by an earlier run could not be looked for; trying again in the background', fields);
      return false;
    }
  }

  private async sweepOrRetry(name: string, first: boolean): Promise<void> {
    if (this.stopped) return;
    if (await this.sweepInstance(name, !first)) {
      if (!first) log.info('helper pods of an earlier run looked for', { instance: name });
      return;
    }
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(name);
      void this.track(this.sweepOrRetry(name, false));
    }, this.opts.retryMs ?? 60_000);
    timer.unref();
    this.timers.set(name, timer);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
    return p;
  }

  /** Instances still to be swept (their cluster did not answer yet). */
  get waiting(): string[] {
    return [...this.timers.keys()];
  }

  /** No more retries; waits for a sweep under way (each is bounded). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
  }
}
