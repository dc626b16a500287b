// PostgreSQL engine plugin.
import type { DatabasePlugin } from './types.js';
import { detectSqlDependency } from './detect.js';

export const postgresPlugin: DatabasePlugin = {
  name: 'postgres',
  description: 'PostgreSQL: pg_dump in custom format streamed into restic, with the roles it needs',
  canRestore: false,
  canVerify: false,
  detect: (ctx) => detectSqlDependency(ctx, 'postgres', 'PostgreSQL'),
};
