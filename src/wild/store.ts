// The Wild Central data directory as a read model: instances, their config and secrets, their apps.
// One broken file breaks only the instance or app it belongs to, which then says what is wrong.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigFileError, NotFoundError, ValidationError, type Issue } from '../errors.js';
import { isDnsLabel } from './names.js';
import { DataPaths } from './paths.js';
import { readYamlFile } from './yaml-file.js';
import { configSchema, manifestSchema, secretsSchema, type AppManifest, type InstanceConfig, type InstanceSecrets } from './schemas.js';

export interface FileProblem extends Issue {
  /** The file, relative to the data directory. */
  file: string;
}

export interface InstanceInfo {
  name: string;
  dir: string;
  kubeconfigPath: string;
  hasKubeconfig: boolean;
  talosconfigPath: string | null;
  /** Parsed config.yaml; an empty object when the file is missing or broken (see problems). */
  config: InstanceConfig;
  problems: FileProblem[];
}

export interface AppInfo {
  instance: string;
  name: string;
  dir: string;
  manifest: AppManifest | null;
  /** apps.<app> from config.yaml. */
  config: Record<string, unknown>;
  problems: FileProblem[];
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

function problemsOf(err: unknown, file: string): FileProblem[] {
  if (err instanceof ConfigFileError) return err.issues.map((i) => ({ file, path: i.path, message: i.message }));
  return [{ file, path: '', message: (err as Error).message }];
}

export class WildStore {
  readonly paths: DataPaths;

  constructor(readonly dataDir: string) {
    this.paths = new DataPaths(dataDir);
  }

  private rel(p: string): string {
    return path.relative(this.dataDir, p);
  }

  /** Names of the instance directories (only DNS-1123 names; anything else is ignored). */
  async instanceNames(): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(this.paths.instancesDir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries.filter((e) => e.isDirectory() && isDnsLabel(e.name)).map((e) => e.name).sort();
  }

  async instances(): Promise<InstanceInfo[]> {
    const names = await this.instanceNames();
    return Promise.all(names.map((n) => this.loadInstance(n)));
  }

  /** The instance, or null when it does not exist. A name that is not a DNS label is a ValidationError. */
  async instance(name: string): Promise<InstanceInfo | null> {
    if (!isDnsLabel(name)) throw new ValidationError(`instance name "${truncate(name)}" is not a DNS-1123 label`, [{ path: 'instance', message: 'must be a DNS-1123 label' }]);
    if (!(await exists(this.paths.instanceDir(name)))) return null;
    return this.loadInstance(name);
  }

  async requireInstance(name: string): Promise<InstanceInfo> {
    const inst = await this.instance(name);
    if (!inst) throw new NotFoundError(`no instance named "${name}"`);
    return inst;
  }

  private async loadInstance(name: string): Promise<InstanceInfo> {
    const configFile = this.paths.configFile(name);
    const problems: FileProblem[] = [];
    let config: InstanceConfig = {};
    try {
      const parsed = await readYamlFile(configFile, configSchema, this.rel(configFile));
      if (parsed === undefined) problems.push({ file: this.rel(configFile), path: '', message: 'file is missing' });
      else config = parsed;
    } catch (err) {
      problems.push(...problemsOf(err, this.rel(configFile)));
    }
    const kubeconfigPath = this.paths.kubeconfigFile(name);
    const talos = this.paths.talosconfigFile(name);
    return {
      name,
      dir: this.paths.instanceDir(name),
      kubeconfigPath,
      hasKubeconfig: await exists(kubeconfigPath),
      talosconfigPath: (await exists(talos)) ? talos : null,
      config,
      problems,
    };
  }

  /** secrets.yaml of an instance. Never exposed through the graph; used by the engine only. */
  async secrets(instance: string): Promise<InstanceSecrets> {
    const file = this.paths.secretsFile(instance);
    return (await readYamlFile(file, secretsSchema, this.rel(file))) ?? {};
  }

  async appNames(instance: string): Promise<string[]> {
    try {
      const entries = await readdir(this.paths.appsDir(instance), { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && isDnsLabel(e.name)).map((e) => e.name).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async apps(inst: InstanceInfo): Promise<AppInfo[]> {
    const names = await this.appNames(inst.name);
    return Promise.all(names.map((n) => this.loadApp(inst, n)));
  }

  async app(inst: InstanceInfo, name: string): Promise<AppInfo | null> {
    if (!isDnsLabel(name)) throw new ValidationError(`app name "${truncate(name)}" is not a DNS-1123 label`, [{ path: 'app', message: 'must be a DNS-1123 label' }]);
    if (!(await exists(this.paths.appDir(inst.name, name)))) return null;
    return this.loadApp(inst, name);
  }

  async requireApp(inst: InstanceInfo, name: string): Promise<AppInfo> {
    const app = await this.app(inst, name);
    if (!app) throw new NotFoundError(`instance "${inst.name}" has no app named "${name}"`);
    return app;
  }

  private async loadApp(inst: InstanceInfo, name: string): Promise<AppInfo> {
    const file = this.paths.manifestFile(inst.name, name);
    const problems: FileProblem[] = [];
    let manifest: AppManifest | null = null;
    try {
      const parsed = await readYamlFile(file, manifestSchema, this.rel(file));
      if (parsed === undefined) problems.push({ file: this.rel(file), path: '', message: 'file is missing' });
      else if (parsed.name !== name) problems.push({ file: this.rel(file), path: 'name', message: `is "${parsed.name}" but the app directory is "${name}"` });
      else manifest = parsed;
    } catch (err) {
      problems.push(...problemsOf(err, this.rel(file)));
    }
    const config = inst.config.apps?.[name] ?? {};
    return { instance: inst.name, name, dir: this.paths.appDir(inst.name, name), manifest, config, problems };
  }
}

function truncate(s: string, n = 64): string {
  const printable = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return printable.length > n ? printable.slice(0, n) + '…' : printable;
}
