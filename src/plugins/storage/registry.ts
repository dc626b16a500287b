// The storage backends Wild Backup knows, and the choice of one from a repository URI.
// Adding a backend is adding its module and one line below.
import { azureStorage } from './azure.js';
import { b2Storage } from './b2.js';
import { commonIssues, stripUrlUserinfo } from './common.js';
import { gcsStorage } from './gcs.js';
import { localStorage } from './local.js';
import { rcloneStorage } from './rclone.js';
import { restStorage } from './rest.js';
import { s3Storage } from './s3.js';
import type { RepositorySettings } from './settings.js';
import { sftpStorage } from './sftp.js';
import { StorageValidationError, type StorageBackendName, type StoragePlugin, type ValidationIssue } from './types.js';

export const storagePlugins: readonly StoragePlugin[] = [
  localStorage,
  s3Storage,
  b2Storage,
  sftpStorage,
  restStorage,
  rcloneStorage,
  azureStorage,
  gcsStorage,
];

export function storagePlugin(name: StorageBackendName): StoragePlugin {
  const plugin = storagePlugins.find((p) => p.name === name);
  if (!plugin) throw new Error(`no storage plugin named ${name}`);
  return plugin;
}

function unknownSchemeIssue(uri: unknown): ValidationIssue {
  if (typeof uri !== 'string' || uri === '') return { path: 'repository', message: 'is required' };
  // Name the scheme only: the rest of an unknown URI may hold a credential.
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]{0,20}):/.exec(uri)?.[1];
  const known = storagePlugins.map((p) => p.uriPrefix).join(', ');
  return {
    path: 'repository',
    message: scheme
      ? `unknown repository scheme "${scheme}:"; use one of ${known}`
      : `is neither an absolute path nor a known scheme (${known})`,
  };
}

/** The plugin for a repository URI, or undefined. */
export function findPluginForUri(uri: string): StoragePlugin | undefined {
  return typeof uri === 'string' ? storagePlugins.find((p) => p.matches(uri)) : undefined;
}

/** The plugin for a repository URI; throws StorageValidationError (path `repository`) for an unknown scheme. */
export function pluginForUri(uri: string): StoragePlugin {
  const plugin = findPluginForUri(uri);
  if (!plugin) throw new StorageValidationError([unknownSchemeIssue(uri)]);
  return plugin;
}

/** Every problem of the settings, each with its path; empty when restic can be started with them. */
export function validateRepositorySettings(settings: RepositorySettings): ValidationIssue[] {
  const plugin = findPluginForUri(settings?.repository);
  if (plugin) return plugin.validate(settings);
  const others = commonIssues(settings).filter((i) => i.path !== 'repository');
  return [unknownSchemeIssue(settings?.repository), ...others];
}

/** Strips credentials from any repository URI, known scheme or not. */
export function displayRepositoryUri(uri: string): string {
  const plugin = findPluginForUri(uri);
  return plugin ? plugin.displayUri(uri) : stripUrlUserinfo(uri);
}

export { embeddedRepositoryPath, generateRepositoryPassword } from './local.js';
export type { RepositorySettings, StorageCredentials } from './settings.js';
export type { StoragePlugin, StorageBackendName, ValidationIssue, PreparedBackend, PrepareContext } from './types.js';
export { StorageValidationError } from './types.js';
