// The storage contract against a local directory repository.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackendContract } from './contract.js';

describeBackendContract('local', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wb-local-'));
  return {
    settings: (name) => ({ repository: join(dir, name), credentials: {} }),
    secrets: [],
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});
