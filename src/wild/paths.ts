// Where things live in the Wild Central data directory (ARCHITECTURE.md §1).
import path from 'node:path';

export class DataPaths {
  readonly root: string;
  readonly instancesDir: string;
  /** Instance directories by name: paths are asked for on every query, so each is joined once. */
  private readonly instanceDirs = new Map<string, string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.instancesDir = path.join(this.root, 'instances');
  }

  instanceDir(instance: string): string {
    let d = this.instanceDirs.get(instance);
    if (d === undefined) {
      d = path.join(this.instancesDir, instance);
      if (this.instanceDirs.size >= 1000) this.instanceDirs.clear(); // names come from requests: bounded
      this.instanceDirs.set(instance, d);
    }
    return d;
  }

  /** `file` (fixed, normalised segments) inside the instance directory: what path.join would give. */
  private inInstance(instance: string, file: string): string { return `${this.instanceDir(instance)}${path.sep}${file}`; }

  configFile(instance: string): string { return this.inInstance(instance, 'config.yaml'); }
  secretsFile(instance: string): string { return this.inInstance(instance, 'secrets.yaml'); }
  kubeconfigFile(instance: string): string { return this.inInstance(instance, 'kubeconfig'); }
  talosconfigFile(instance: string): string { return this.inInstance(instance, 'talos/generated/talosconfig'); }
  appsDir(instance: string): string { return this.inInstance(instance, 'apps'); }
  appDir(instance: string, app: string): string { return path.join(this.appsDir(instance), app); }
  manifestFile(instance: string, app: string): string { return `${this.appDir(instance, app)}${path.sep}manifest.yaml`; }
  operationsDir(instance: string): string { return path.join(this.instanceDir(instance), 'operations'); }
  /** Embedded default repository of an instance (used when cloud.backup.repository is unset). */
  defaultRepository(instance: string): string { return path.join(this.instanceDir(instance), 'backups', 'repository'); }

  /** Wild Backup's own state: tokens, restic cache, known SSH hosts, the server lock. */
  get stateDir(): string { return path.join(this.root, 'wild-backup'); }
  get tokenFile(): string { return path.join(this.stateDir, 'tokens.json'); }
  get cacheDir(): string { return path.join(this.stateDir, 'cache'); }
  /** This Wild Central's server id (helper pods carry it as a label; src/wild/server-id.ts). */
  get serverIdFile(): string { return path.join(this.stateDir, 'server-id'); }
}
