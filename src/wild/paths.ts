// Where things live in the Wild Central data directory (ARCHITECTURE.md §1).
import path from 'node:path';

export class DataPaths {
  constructor(readonly root: string) {}

  get instancesDir(): string { return path.join(this.root, 'instances'); }
  instanceDir(instance: string): string { return path.join(this.instancesDir, instance); }
  configFile(instance: string): string { return path.join(this.instanceDir(instance), 'config.yaml'); }
  secretsFile(instance: string): string { return path.join(this.instanceDir(instance), 'secrets.yaml'); }
  kubeconfigFile(instance: string): string { return path.join(this.instanceDir(instance), 'kubeconfig'); }
  talosconfigFile(instance: string): string { return path.join(this.instanceDir(instance), 'talos', 'generated', 'talosconfig'); }
  appsDir(instance: string): string { return path.join(this.instanceDir(instance), 'apps'); }
  appDir(instance: string, app: string): string { return path.join(this.appsDir(instance), app); }
  manifestFile(instance: string, app: string): string { return path.join(this.appDir(instance, app), 'manifest.yaml'); }
  operationsDir(instance: string): string { return path.join(this.instanceDir(instance), 'operations'); }
  /** Embedded default repository of an instance (used when cloud.backup.repository is unset). */
  defaultRepository(instance: string): string { return path.join(this.instanceDir(instance), 'backups', 'repository'); }

  /** Wild Backup's own state: tokens, restic cache, known SSH hosts, the server lock. */
  get stateDir(): string { return path.join(this.root, 'wild-backup'); }
  get tokenFile(): string { return path.join(this.stateDir, 'tokens.json'); }
  get cacheDir(): string { return path.join(this.stateDir, 'cache'); }
}
