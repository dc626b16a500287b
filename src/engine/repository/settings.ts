// An instance's repository settings, from config.yaml (cloud.backup) and secrets.yaml
// (cloud.backup.password, .credentials), with the embedded default when none is configured
// (its generated password in cloud.backup.defaultRepositoryPassword).
import { randomBytes } from 'node:crypto';
import type { RepositorySettings, StorageCredentials } from '../../plugins/storage/settings.js';
import { processSecrets } from '../../util/log.js';
import type { InstanceInfo, WildStore } from '../../wild/store.js';
import { setPath, updateYamlFile } from '../../wild/writer.js';
import type { Retention } from '../../wild/schemas.js';

/** Where the embedded default repository's generated password lives in secrets.yaml. */
export const DEFAULT_PASSWORD_KEY = ['cloud', 'backup', 'defaultRepositoryPassword'];

export interface ResolvedSettings {
  settings: RepositorySettings;
  /** True when config.yaml names no repository and the embedded default is used. */
  isDefault: boolean;
  retention: Retention;
  hasPassword: boolean;
}

/** Names of the backends that have credentials stored (never their values). */
export function configuredCredentials(credentials: StorageCredentials): string[] {
  return Object.entries(credentials)
    .filter(([, v]) => v && typeof v === 'object' && Object.values(v).some((x) => typeof x === 'string' && x.length > 0))
    .map(([k]) => k)
    .sort();
}

/** Registers every secret value with the process scrubber, so no log line can carry one. */
export function registerSecrets(settings: RepositorySettings): void {
  processSecrets.add(settings.password);
  for (const cred of Object.values(settings.credentials)) {
    if (cred && typeof cred === 'object') for (const v of Object.values(cred)) if (typeof v === 'string') processSecrets.add(v);
  }
}

/**
 * Reads the settings of an instance. With `ensurePassword`, an embedded default repository
 * without a password gets a generated one, stored in secrets.yaml (0600) before it is used.
 */
export async function resolveSettings(store: WildStore, inst: InstanceInfo, opts: { ensurePassword?: boolean } = {}): Promise<ResolvedSettings> {
  const backup = inst.config.cloud?.backup ?? {};
  const secrets = await store.secrets(inst.name);
  const sb = secrets.cloud?.backup ?? {};
  const isDefault = !backup.repository;
  // The embedded default keeps its own password key, so configuring another repository (with
  // its own password) never loses the key to the backups already in the default one.
  let password = (isDefault ? sb.defaultRepositoryPassword : sb.password) ?? '';
  if (!password && isDefault && opts.ensurePassword) {
    password = randomBytes(24).toString('base64url');
    await updateYamlFile(store.paths.secretsFile(inst.name), (doc) => {
      // Another writer may have set one meanwhile: never replace a password that exists.
      if (!doc.getIn(DEFAULT_PASSWORD_KEY)) setPath(doc, DEFAULT_PASSWORD_KEY, password);
    }, 0o600);
    password = (await store.secrets(inst.name)).cloud?.backup?.defaultRepositoryPassword ?? password;
  }
  const b = backup.backend ?? {};
  const settings: RepositorySettings = {
    repository: backup.repository ?? store.paths.defaultRepository(inst.name),
    password,
    ...(b.endpoint ? { endpoint: b.endpoint } : {}),
    ...(b.region ? { region: b.region } : {}),
    ...(b.port ? { port: b.port } : {}),
    ...(b.cacert ? { cacert: b.cacert } : {}),
    credentials: (sb.credentials ?? {}) as StorageCredentials,
  };
  registerSecrets(settings);
  return { settings, isDefault, retention: backup.retention ?? {}, hasPassword: password.length > 0 };
}
