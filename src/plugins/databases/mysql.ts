// MySQL / MariaDB engine plugin.
import type { DatabasePlugin } from './types.js';
import { detectSqlDependency } from './detect.js';

export const mysqlPlugin: DatabasePlugin = {
  name: 'mysql',
  description: 'MySQL / MariaDB: a single-transaction mysqldump with routines, triggers and events',
  canRestore: false,
  canVerify: false,
  detect: (ctx) => detectSqlDependency(ctx, 'mysql', 'MariaDB'),
};
