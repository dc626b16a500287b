// Azure Blob Storage (`azure:<container>:/<path>`), account name and key through the environment.
// restic 0.14 knows only the public cloud (and the emulator for account devstoreaccount1, fixed at
// 127.0.0.1:10000); backend.endpoint (another cloud's suffix) needs restic >= 0.15.
import { z } from 'zod';
import type { ValidationIssue } from './types.js';
import { StorageValidationError } from './types.js';
import { check, defineStoragePlugin, secretString, resticOption } from './common.js';

const azureCredentialsSchema = z.object(
  {
    accountName: z.string({ error: 'is required' }).regex(/^[a-z0-9]{3,24}$/, 'must be 3-24 lower-case letters or digits'),
    accountKey: secretString().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be the base64 account key'),
  },
  { error: 'is required (accountName and accountKey)' },
);

const AZURE_URI = /^azure:([a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?):(\/.*)?$/;

function atLeast(v: { major: number; minor: number } | undefined, major: number, minor: number): boolean {
  return v !== undefined && (v.major > major || (v.major === major && v.minor >= minor));
}

export const azureStorage = defineStoragePlugin({
  name: 'azure',
  description: 'Azure Blob Storage (azure:<container>:/<path>) with an account name and key.',
  uriPrefix: 'azure:',
  credentialFields: ['azure.accountName', 'azure.accountKey'],
  configFields: ['endpoint'],
  validate(settings) {
    const issues: ValidationIssue[] = [];
    if (!AZURE_URI.test(settings.repository)) {
      issues.push({ path: 'repository', message: 'must be azure:<container>:/<path> (container: 3-63 lower-case letters, digits, dashes)' });
    }
    issues.push(...check(azureCredentialsSchema, settings.credentials?.azure, 'credentials.azure'));
    return issues;
  },
  build(settings, out, ctx) {
    const creds = settings.credentials.azure!;
    out.env.RESTIC_REPOSITORY = settings.repository;
    out.env.AZURE_ACCOUNT_NAME = creds.accountName;
    out.env.AZURE_ACCOUNT_KEY = creds.accountKey;
    out.secrets.add(creds.accountKey);
    if (settings.endpoint) {
      const http = /^http:\/\//i.test(settings.endpoint);
      const suffix = settings.endpoint.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
      if (!atLeast(ctx.resticVersion, 0, 15) || (http && !atLeast(ctx.resticVersion, 0, 16))) {
        throw new StorageValidationError([
          { path: 'endpoint', message: `this restic cannot use a custom Azure endpoint (needs restic >= ${http ? '0.16' : '0.15'})` },
        ]);
      }
      out.env.AZURE_ENDPOINT_SUFFIX = suffix;
      if (http) out.args.push(...resticOption('azure.usehttp', 'true'));
    }
  },
});
