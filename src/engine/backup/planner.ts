// What an app backup contains: a dump per included database (from its engine plugin), a tar per
// included PVC, and why anything is left out. The database server apps are backed up by their
// logical dump only: a tar of a live data directory would not be consistent.
import { databasePlugin, detectDatabases } from '../../plugins/databases/registry.js';
import { pvcSource } from '../../plugins/volumes/pvc.js';
import type { ClusterService } from '../cluster.js';
import { NotFoundError } from '../../errors.js';
import type { AppBackupPlan, AppPlanner } from './service.js';

const DATABASE_SERVER_APPS = new Set(['postgres', 'mysql', 'redis']);

export function clusterPlanner(cluster: ClusterService, opts: { helperImage?: string; lockWaitMs?: number } = {}): AppPlanner {
  return async (inst, app, signal, planOpts = {}) => {
    const plan: AppBackupPlan = { sources: [], skipped: [] };
    const dbs = detectDatabases(app);
    const client = await cluster.client(inst);
    for (const dep of dbs) {
      const plugin = databasePlugin(dep.engine);
      if (!dep.included) {
        plan.skipped.push({ kind: dep.engine, name: dep.databaseName ?? dep.engine, reason: dep.reason ?? 'excluded' });
        continue;
      }
      if (!plugin?.sources) {
        plan.skipped.push({ kind: dep.engine, name: dep.databaseName ?? dep.engine, reason: 'no backup support for this engine' });
        continue;
      }
      plan.sources.push(...(await plugin.sources({ client, inst, app, missingOk: planOpts.missingOk, lockWaitMs: opts.lockWaitMs }, dep, signal)));
    }
    const volumes = await cluster.volumes(inst, app, signal);
    // No namespace: the app is not deployed (deleted from the cluster, or a cluster rebuilt).
    // Its settings alone would make a COMPLETE backup without its data, the app's newest, and
    // retention would then remove the backups that hold it. A restore's safety backup
    // (missingOk) has nothing of the app's to protect there, and goes on.
    if (volumes.length === 0 && !planOpts.missingOk && !(await cluster.namespaceExists(inst, app.name, signal))) {
      throw new NotFoundError(`${app.name} is not deployed (the cluster has no namespace ${app.name}): there is none of its data to back up`);
    }
    for (const vol of volumes) {
      if (DATABASE_SERVER_APPS.has(app.name)) {
        plan.skipped.push({ kind: 'pvc', name: vol.name, reason: `data directory of the ${app.name} server: its logical dump is the backup` });
      } else if (!vol.included) {
        plan.skipped.push({ kind: 'pvc', name: vol.name, reason: `excluded by apps.${app.name}.backup.volumes.${vol.name}` });
      } else {
        plan.sources.push(pvcSource({ client, app, volume: vol, helperImage: opts.helperImage }));
      }
    }
    return plan;
  };
}
