// Which restorer brings back which artifact kind. Adding a restorable kind is one line here.
import type { Readable } from 'node:stream';
import type { ArtifactRestorer, RestoreTarget } from '../engine/restore/side.js';
import { mysqlRestorer } from './databases/mysql-restore.js';
import { applyMissingMysqlAccounts, dropMysqlAccounts } from './databases/mysql-users.js';
import { dropPostgresRoles, postgresRestorer, restorePostgresRoles } from './databases/postgres-restore.js';
import { redisRestorer } from './databases/redis-restore.js';
import { pvcRestorer } from './volumes/pvc-restore.js';

export const restorers: Record<string, ArtifactRestorer> = {
  postgres: postgresRestorer,
  mysql: mysqlRestorer,
  redis: redisRestorer,
  pvc: pvcRestorer,
};

/**
 * The accounts a database's data needs (PostgreSQL's roles, MariaDB's users), restored before the
 * data: only those the server lacks are made, and a restore that fails drops them again.
 */
export interface AccountRestorer {
  /** What they are called in the log. */
  noun: string;
  /** Makes the artifact's accounts the server lacks; returns their names. */
  applyMissing(t: RestoreTarget, stream: Readable, signal: AbortSignal): Promise<string[]>;
  /** Drops these (made by a restore that failed); returns those still there. */
  drop(t: RestoreTarget, names: readonly string[], signal: AbortSignal): Promise<string[]>;
}

export const accountRestorers: Record<string, AccountRestorer> = {
  'postgres-roles': { noun: 'roles', applyMissing: restorePostgresRoles, drop: dropPostgresRoles },
  'mysql-users': { noun: 'users', applyMissing: applyMissingMysqlAccounts, drop: dropMysqlAccounts },
};

/** Component of each artifact kind (RestoreComponent of the schema). */
export function componentOf(kind: string): 'DATABASES' | 'VOLUMES' | 'CONFIG' | null {
  if (['postgres', 'mysql', 'redis'].includes(kind) || kind in accountRestorers) return 'DATABASES';
  if (kind === 'pvc') return 'VOLUMES';
  if (kind === 'config') return 'CONFIG';
  return null;
}
