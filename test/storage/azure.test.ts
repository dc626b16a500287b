// The storage contract against the azurite emulator (blob service). restic 0.14 reaches the
// emulator only as account devstoreaccount1 at 127.0.0.1:10000; any other account name goes to
// <account>.blob.core.windows.net, which is unreachable here (no DNS), and the client's time
// bound turns that into a typed error.
import { describeBackendContract } from './contract.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../fixtures/servers/azurite.js';

describeBackendContract('azure (azurite emulator)', async () => {
  const azurite = await startAzurite();
  return {
    settings: (name) => ({ repository: `azure:wildbackup:/${name}`, credentials: { azure: { accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY } } }),
    unreachable: () => ({ repository: 'azure:wildbackup:/down', credentials: { azure: { accountName: 'wildnosuchaccount', accountKey: AZURITE_KEY } } }),
    // The emulator key is public; nothing secret to scan for beyond the repository passwords.
    secrets: [],
    teardown: () => azurite.stop(),
  };
});
