// The storage contract through restic's rclone backend, with a local rclone remote defined
// only by RCLONE_CONFIG_<NAME>_TYPE in the environment (no shared rclone.conf).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/util/net.js';
import { isolatedRcloneEnv } from '../fixtures/servers/rclone.js';
import { describeBackendContract } from './contract.js';

describeBackendContract('rclone (local remote from RCLONE_CONFIG_* variables)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wb-rclone-local-'));
  const down = await freePort();
  // Test-process environment: this file runs in its own worker process.
  Object.assign(process.env, isolatedRcloneEnv(dir), {
    RCLONE_CONFIG_WBLOCAL_TYPE: 'local',
    // An sftp remote whose server is down: rclone cannot reach it.
    RCLONE_CONFIG_WBDOWN_TYPE: 'sftp',
    RCLONE_CONFIG_WBDOWN_HOST: '127.0.0.1',
    RCLONE_CONFIG_WBDOWN_PORT: String(down),
    RCLONE_CONFIG_WBDOWN_USER: 'nobody',
  });
  return {
    settings: (name) => ({ repository: `rclone:wblocal:${dir}/${name}`, credentials: {} }),
    unreachable: () => ({ repository: `rclone:wbdown:/srv/down`, credentials: {} }),
    secrets: [],
    expectChild: /rclone$/,
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});
