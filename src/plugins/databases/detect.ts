// Shared detection rules of the database plugins: which apps depend on an engine, which database
// name they use, and the per-app override `apps.<app>.backup.databases.<engine>: true|false`.
import type { DetectionContext, DetectedDatabase } from './types.js';

function stringAt(obj: Record<string, unknown>, ...keys: string[]): string | undefined {
  let cur: unknown = obj;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return typeof cur === 'string' && cur.length > 0 ? cur : undefined;
}

/** True when the manifest's `requires` names this engine (by name, alias or installedAs). */
export function requiresEngine(ctx: DetectionContext, engine: string): boolean {
  return (ctx.manifest.requires ?? []).some((r) => r.name === engine || r.installedAs === engine);
}

/** The per-app inclusion override, if the app's config sets one. */
export function inclusionOverride(ctx: DetectionContext, engine: string): boolean | undefined {
  const backup = ctx.appConfig.backup;
  if (!backup || typeof backup !== 'object') return undefined;
  const dbs = (backup as Record<string, unknown>).databases;
  if (!dbs || typeof dbs !== 'object') return undefined;
  const v = (dbs as Record<string, unknown>)[engine];
  return typeof v === 'boolean' ? v : undefined;
}

/** Database name from apps.<app>.dbName, .db.name, .database, else the app's name. */
export function appDatabaseName(ctx: DetectionContext): string {
  return stringAt(ctx.appConfig, 'dbName') ?? stringAt(ctx.appConfig, 'db', 'name') ?? stringAt(ctx.appConfig, 'database') ?? ctx.app;
}

/** Detection for SQL engines: the server app itself is a whole-server dump, dependants dump their database. */
export function detectSqlDependency(ctx: DetectionContext, engine: string, serverLabel: string): DetectedDatabase | null {
  const override = inclusionOverride(ctx, engine);
  if (ctx.app === engine) {
    return {
      engine,
      databaseName: null,
      included: override ?? true,
      reason: override === false ? 'excluded by apps.' + ctx.app + '.backup.databases.' + engine : `whole ${serverLabel} server: every database and the roles`,
    };
  }
  if (!requiresEngine(ctx, engine)) return null;
  return {
    engine,
    databaseName: appDatabaseName(ctx),
    included: override ?? true,
    reason: override === false ? `excluded by apps.${ctx.app}.backup.databases.${engine}` : null,
  };
}
