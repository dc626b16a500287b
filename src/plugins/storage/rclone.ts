// Any rclone remote (`rclone:remote:path`): restic starts `rclone serve restic --stdio` itself.
// Remotes are configured the rclone way, in its config file or RCLONE_CONFIG_<NAME>_* variables of
// the server's environment, which are passed through to restic and rclone.
import { defineStoragePlugin, resticOption } from './common.js';
import { StorageValidationError } from './types.js';
import { findExecutable } from './which.js';

const RCLONE_URI = /^rclone:(:?[A-Za-z0-9_.][A-Za-z0-9_. -]*):(.*)$/;

export const rcloneStorage = defineStoragePlugin({
  name: 'rclone',
  description: 'Any rclone remote (rclone:<remote>:<path>), configured in rclone.conf or RCLONE_CONFIG_* variables.',
  uriPrefix: 'rclone:',
  credentialFields: [],
  configFields: [],
  validate(settings) {
    return RCLONE_URI.test(settings.repository)
      ? []
      : [{ path: 'repository', message: 'must be rclone:<remote>:<path>' }];
  },
  async build(settings, out) {
    const rclone = await findExecutable('rclone');
    if (!rclone) throw new StorageValidationError([{ path: 'repository', message: 'rclone is not installed' }]);
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith('RCLONE_') || value === undefined) continue;
      out.env[key] = value;
      if (/PASS|SECRET|KEY|TOKEN|CREDENTIAL/i.test(key)) out.secrets.add(value);
    }
    out.env.RESTIC_REPOSITORY = settings.repository;
    out.args.push(...resticOption('rclone.program', rclone));
  },
  displayUri: (uri) => uri,
});
