// The registered database engine plugins. Adding an engine is one module and one line here.
import type { AppInfo } from '../../wild/store.js';
import type { DatabasePlugin, DetectedDatabase } from './types.js';
import { postgresPlugin } from './postgres.js';
import { mysqlPlugin } from './mysql.js';
import { redisPlugin } from './redis.js';

export const databasePlugins: readonly DatabasePlugin[] = [postgresPlugin, mysqlPlugin, redisPlugin];

export function databasePlugin(name: string): DatabasePlugin | undefined {
  return databasePlugins.find((p) => p.name === name);
}

/** The databases of an app, as every registered engine plugin detects them. */
export function detectDatabases(app: AppInfo): DetectedDatabase[] {
  if (!app.manifest) return [];
  const ctx = { instance: app.instance, app: app.name, manifest: app.manifest, appConfig: app.config };
  return databasePlugins.map((p) => p.detect(ctx)).filter((d): d is DetectedDatabase => d !== null);
}
