// Where things live in the Wild Central data directory (ARCHITECTURE.md §1).
import path from 'node:path';

export class DataPaths {
  readonly root: string;
  readonly instancesDir: string;
  /** Directories by instance (and instance/app): paths are built on every query, so once each. */
  private readonly dirs = new Map<string, string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.instancesDir = path.join(this.root, 'instances');
  }

  private dir(key: string, make: () => string): string {
    let d = this.dirs.get(key);
    if (d === undefined) {
      d = make();
      if (this.dirs.size > 10_000) this.dirs.clear(); // names come from requests: bounded
      this.dirs.set(key, d);
    }
    return d;
  }

  instanceDir(instance: string): string { return this.dir(instance, () => path.join(this.instancesDir, instance)); }
  configFile(instance: string): string { return this.dir(`${instance}\0config`, () => path.join(this.instanceDir(instance), 'config.yaml')); }
  secretsFile(instance: string): string { return this.dir(`${instance}\0secrets`, () => path.join(this.instanceDir(instance), 'secrets.yaml')); }
  kubeconfigFile(instance: string): string { return this.dir(`${instance}\0kubeconfig`, () => path.join(this.instanceDir(instance), 'kubeconfig')); }
  talosconfigFile(instance: string): string { return this.dir(`${instance}\0talos`, () => path.join(this.instanceDir(instance), 'talos', 'generated', 'talosconfig')); }
  appsDir(instance: string): string { return this.dir(`${instance}\0apps`, () => path.join(this.instanceDir(instance), 'apps')); }
  appDir(instance: string, app: string): string { return this.dir(`${instance}\0apps\0${app}`, () => path.join(this.appsDir(instance), app)); }
  manifestFile(instance: string, app: string): string { return this.dir(`${instance}\0apps\0${app}\0manifest`, () => path.join(this.appDir(instance, app), 'manifest.yaml')); }
  operationsDir(instance: string): string { return path.join(this.instanceDir(instance), 'operations'); }
  /** Embedded default repository of an instance (used when cloud.backup.repository is unset). */
  defaultRepository(instance: string): string { return path.join(this.instanceDir(instance), 'backups', 'repository'); }

  /** Wild Backup's own state: tokens, restic cache, known SSH hosts, the server lock. */
  get stateDir(): string { return path.join(this.root, 'wild-backup'); }
  get tokenFile(): string { return path.join(this.stateDir, 'tokens.json'); }
  get cacheDir(): string { return path.join(this.stateDir, 'cache'); }
}
