// Which restorer brings back which artifact kind. Adding a restorable kind is one line here.
import type { ArtifactRestorer } from '../engine/restore/side.js';
import { mysqlRestorer } from './databases/mysql-restore.js';
import { postgresRestorer } from './databases/postgres-restore.js';
import { redisRestorer } from './databases/redis-restore.js';
import { pvcRestorer } from './volumes/pvc-restore.js';

export const restorers: Record<string, ArtifactRestorer> = {
  postgres: postgresRestorer,
  mysql: mysqlRestorer,
  redis: redisRestorer,
  pvc: pvcRestorer,
};

/** Component of each artifact kind (RestoreComponent of the schema). */
export function componentOf(kind: string): 'DATABASES' | 'VOLUMES' | 'CONFIG' | null {
  if (['postgres', 'postgres-roles', 'mysql', 'redis'].includes(kind)) return 'DATABASES';
  if (kind === 'pvc') return 'VOLUMES';
  if (kind === 'config') return 'CONFIG';
  return null;
}
