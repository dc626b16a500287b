// The registered database engine plugins. Adding an engine is one module and one line here.
import type { DatabasePlugin } from './types.js';
import { postgresPlugin } from './postgres.js';
import { mysqlPlugin } from './mysql.js';
import { redisPlugin } from './redis.js';

export const databasePlugins: readonly DatabasePlugin[] = [postgresPlugin, mysqlPlugin, redisPlugin];

export function databasePlugin(name: string): DatabasePlugin | undefined {
  return databasePlugins.find((p) => p.name === name);
}
