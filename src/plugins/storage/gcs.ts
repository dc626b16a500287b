// Google Cloud Storage (`gs:<bucket>:/<path>`): the service-account key goes to a 0600 temp file
// named by GOOGLE_APPLICATION_CREDENTIALS, removed when restic has exited.
import { z } from 'zod';
import type { ValidationIssue } from './types.js';
import { check, defineStoragePlugin, secretString } from './common.js';

const serviceAccountKeySchema = z.object({
  type: z.literal('service_account', { error: 'must be "service_account"' }),
  client_email: z.string({ error: 'is required' }).min(1),
  private_key: z.string({ error: 'is required' }).min(1),
});

const gcsCredentialsSchema = z.object(
  {
    projectId: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a Google Cloud project id').optional(),
    serviceAccountKey: secretString(),
  },
  { error: 'is required (serviceAccountKey, and projectId to create buckets)' },
);

const GS_URI = /^gs:([a-z0-9][a-z0-9._-]{1,220}[a-z0-9]):(\/.*)?$/;

function parseKey(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const gcsStorage = defineStoragePlugin({
  name: 'gcs',
  description: 'Google Cloud Storage (gs:<bucket>:/<path>) with a service-account key.',
  uriPrefix: 'gs:',
  credentialFields: ['gcs.projectId', 'gcs.serviceAccountKey'],
  configFields: [],
  validate(settings) {
    const issues: ValidationIssue[] = [];
    if (!GS_URI.test(settings.repository)) issues.push({ path: 'repository', message: 'must be gs:<bucket>:/<path>' });
    const creds = settings.credentials?.gcs;
    issues.push(...check(gcsCredentialsSchema, creds, 'credentials.gcs'));
    if (typeof creds?.serviceAccountKey === 'string' && creds.serviceAccountKey.length > 0) {
      const key = parseKey(creds.serviceAccountKey);
      if (key === undefined) {
        issues.push({ path: 'credentials.gcs.serviceAccountKey', message: 'must be the JSON key file of a service account' });
      } else {
        issues.push(...check(serviceAccountKeySchema, key, 'credentials.gcs.serviceAccountKey'));
      }
    }
    return issues;
  },
  async build(settings, out) {
    const creds = settings.credentials.gcs!;
    const keyFile = await out.files.write('gcs-key.json', creds.serviceAccountKey);
    const key = parseKey(creds.serviceAccountKey) as { private_key: string; private_key_id?: string };
    out.secrets.add(creds.serviceAccountKey, key.private_key, key.private_key_id);
    out.secrets.add(...key.private_key.split('\n').filter((l) => l.length > 8 && !l.startsWith('-----')));
    out.env.RESTIC_REPOSITORY = settings.repository;
    out.env.GOOGLE_APPLICATION_CREDENTIALS = keyFile;
    if (creds.projectId) out.env.GOOGLE_PROJECT_ID = creds.projectId;
  },
});
