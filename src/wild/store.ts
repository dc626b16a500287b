// The Wild Central data directory as a read model: instances, their config and secrets, their apps.
// One broken file breaks only the instance or app it belongs to, which then says what is wrong.
import { readdirSync, type Dirent } from 'node:fs';
import path from 'node:path';
import { ConfigFileError, NotFoundError, ValidationError, fileIssuePath, type Issue } from '../errors.js';
import { isDnsLabel } from './names.js';
import { DataPaths } from './paths.js';
import { readYamlFile, stampOf, statOrUndefined, stillValid, type Stamp } from './yaml-file.js';
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

// Reads of the data directory are synchronous (see statOrUndefined): a few microseconds each for a
// local directory, against a thread-pool round trip and a promise per call.
function exists(p: string): boolean {
  return statOrUndefined(p) !== undefined;
}

const listings = new Map<string, { stamp: Stamp; names: string[] }>();

/**
 * The DNS-label directories in `dir`, sorted; none when it does not exist. A listing is kept while
 * the directory's stamp holds (adding, removing or renaming an entry changes its mtime), so a query
 * costs a stat instead of a readdir; not while the change is recent (RACY_MS, as for files).
 */
function labelDirs(dir: string): string[] {
  const st = statOrUndefined(dir);
  if (!st?.isDirectory()) return [];
  const hit = listings.get(dir);
  if (hit && stillValid(hit.stamp, st)) return hit.names;
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const names = entries.filter((e) => e.isDirectory() && isDnsLabel(e.name)).map((e) => e.name).sort();
  listings.set(dir, { stamp: stampOf(st), names });
  return names;
}

function problemsOf(err: unknown, file: string): FileProblem[] {
  if (err instanceof ConfigFileError) return err.fileIssues.map((i) => ({ file, path: i.path, message: i.message }));
  return [{ file, path: '', message: (err as Error).message }];
}

/**
 * An app's backup or restore takes the app's settings (its database name, its slice of the config
 * artifact) from config.yaml: while the file cannot be read they would come out empty, so a backup
 * would record no settings (a restore of its config would then erase them) and could dump the
 * wrong database. Refused until the file is mended.
 */
export function requireReadableConfig(inst: InstanceInfo, what: string): void {
  if (inst.problems.length === 0) return;
  throw ValidationError.fromIssues(
    inst.problems.map((p) => ({ path: fileIssuePath(p.file, p.path), message: p.message })),
    `${what} needs the app's settings from config.yaml, which cannot be read now; mend it first`,
  );
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
    return labelDirs(this.paths.instancesDir);
  }

  async instances(): Promise<InstanceInfo[]> {
    const names = await this.instanceNames();
    return Promise.all(names.map((n) => this.loadInstance(n)));
  }

  /** The instance, or null when it does not exist. A name that is not a DNS label is a ValidationError. */
  async instance(name: string): Promise<InstanceInfo | null> {
    if (!isDnsLabel(name)) throw new ValidationError(`instance name "${truncate(name)}" is not a DNS-1123 label`, [{ path: 'instance', message: 'must be a DNS-1123 label' }]);
    if (!exists(this.paths.instanceDir(name))) return null;
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
      hasKubeconfig: exists(kubeconfigPath),
      talosconfigPath: exists(talos) ? talos : null,
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
    return labelDirs(this.paths.appsDir(instance));
  }

  async apps(inst: InstanceInfo): Promise<AppInfo[]> {
    const names = await this.appNames(inst.name);
    return Promise.all(names.map((n) => this.loadApp(inst, n)));
  }

  async app(inst: InstanceInfo, name: string): Promise<AppInfo | null> {
    if (!isDnsLabel(name)) throw new ValidationError(`app name "${truncate(name)}" is not a DNS-1123 label`, [{ path: 'app', message: 'must be a DNS-1123 label' }]);
    if (!exists(this.paths.appDir(inst.name, name))) return null;
    return this.loadApp(inst, name);
  }

  /** An app whose directory is gone (`wild app delete`), as far as config.yaml still knows it. */
  absentApp(inst: InstanceInfo, name: string): AppInfo {
    return { instance: inst.name, name, dir: this.paths.appDir(inst.name, name), manifest: null, config: inst.config.apps?.[name] ?? {}, problems: [{ file: this.rel(this.paths.manifestFile(inst.name, name)), path: '', message: 'app directory is missing' }] };
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
