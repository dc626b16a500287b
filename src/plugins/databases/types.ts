// The interface every database engine plugin implements (ARCHITECTURE.md §3).
// Detection works from the app's manifest and the instance config alone, so the graph can say
// what a backup will contain without reaching the cluster.
import type { AppManifest } from '../../wild/schemas.js';
import type { ArtifactSource } from '../../engine/backup/source.js';
import type { KubeClient } from '../../kube/index.js';
import type { AppInfo, InstanceInfo } from '../../wild/store.js';

export interface DetectionContext {
  instance: string;
  app: string;
  manifest: AppManifest;
  /** apps.<app> of config.yaml (may be empty). */
  appConfig: Record<string, unknown>;
}

export interface DetectedDatabase {
  /** Plugin name: postgres, mysql, redis. */
  engine: string;
  /** The database to dump; null for a whole-server dump (the database server apps themselves). */
  databaseName: string | null;
  included: boolean;
  /** Why it is skipped (or what a whole-server dump covers). */
  reason: string | null;
}

export interface DatabasePlugin {
  readonly name: string;
  readonly description: string;
  readonly canRestore: boolean;
  readonly canVerify: boolean;
  /** The dependency this app has on the engine, or null when it has none. */
  detect(ctx: DetectionContext): DetectedDatabase | null;
  /** The byte streams that back up this dependency (a dump, the roles it needs...). */
  sources?(ctx: ClusterContext, dep: DetectedDatabase, signal: AbortSignal): Promise<ArtifactSource[]>;
}

/** What a plugin gets to reach the cluster for one app. */
export interface ClusterContext {
  client: KubeClient;
  inst: InstanceInfo;
  app: AppInfo;
  /** A database that does not exist yet yields no artifact (a safety backup of a clone target). */
  missingOk?: boolean;
  /**
   * How long a dump waits for a table lock that another session holds (an app's migration, a
   * VACUUM FULL) before it fails saying so. Default DEFAULT_LOCK_WAIT_MS.
   */
  lockWaitMs?: number;
}

/** The wait of a dump (ClusterContext.lockWaitMs) or a MariaDB swap (RestoreTarget.lockWaitMs) for a table lock another session holds: 2 minutes. */
export const DEFAULT_LOCK_WAIT_MS = 120_000;
