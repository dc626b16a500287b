// A repository in a local directory (or a mounted NAS share): "/mnt/backups/wild-cloud" or "local:/path".
import { randomBytes } from 'node:crypto';
import { isAbsolute, join } from 'node:path';
import { defineStoragePlugin } from './common.js';

function localPath(uri: string): string {
  return uri.startsWith('local:') ? uri.slice('local:'.length) : uri;
}

export const localStorage = defineStoragePlugin({
  name: 'local',
  description: 'A directory on the Wild Central device or a mounted share (the embedded default).',
  uriPrefix: '/',
  credentialFields: [],
  configFields: [],
  matches: (uri) => uri.startsWith('/') || uri.startsWith('local:'),
  validate(settings) {
    const path = localPath(settings.repository);
    if (!isAbsolute(path)) return [{ path: 'repository', message: 'a local repository must be an absolute path' }];
    if (path.includes('\0')) return [{ path: 'repository', message: 'must not contain NUL characters' }];
    return [];
  },
  build(settings, out) {
    out.env.RESTIC_REPOSITORY = settings.repository;
  },
  displayUri: (uri) => uri,
});

/** The embedded default repository of an instance (no repository configured): <instanceDir>/backups/repository. */
export function embeddedRepositoryPath(instanceDir: string): string {
  return join(instanceDir, 'backups', 'repository');
}

/** A new password for the embedded default repository (256 bits, URL-safe), to keep in secrets.yaml. */
export function generateRepositoryPassword(): string {
  return randomBytes(32).toString('base64url');
}
