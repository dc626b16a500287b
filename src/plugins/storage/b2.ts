// Backblaze B2. As in the seed, `b2:bucket/path` goes through B2's S3-compatible API
// (credentials.s3 + backend.endpoint or backend.region); with credentials.b2 alone it uses
// restic's native b2 backend (B2_ACCOUNT_ID / B2_ACCOUNT_KEY).
import { z } from 'zod';
import type { RepositorySettings } from './settings.js';
import type { ValidationIssue } from './types.js';
import { check, defineStoragePlugin, endpointUrl, secretString, resticOption } from './common.js';
import { s3CredentialsSchema, s3Repository } from './s3.js';

const b2CredentialsSchema = z.object(
  { accountId: secretString(), accountKey: secretString() },
  { error: 'is required (accountId and accountKey)' },
);

const BUCKET = /^[A-Za-z0-9-]{6,50}$/;

interface B2Location {
  bucket: string;
  prefix: string;
}

/** Accepts restic's `b2:bucket:path` and the seed's `b2:bucket/path`. */
function parseB2(uri: string): B2Location | undefined {
  const rest = uri.slice('b2:'.length);
  const m = /^([^:/]+)[:/]?(.*)$/.exec(rest);
  if (!m || !BUCKET.test(m[1] ?? '')) return undefined;
  return { bucket: m[1] ?? '', prefix: (m[2] ?? '').split('/').filter(Boolean).join('/') };
}

type B2Mode = 's3' | 'native';
function modeOf(settings: RepositorySettings): B2Mode {
  return settings.credentials?.b2 && !settings.credentials?.s3 ? 'native' : 's3';
}

function s3Endpoint(settings: RepositorySettings): string | undefined {
  if (settings.endpoint) return endpointUrl(settings.endpoint, settings.port);
  if (settings.region) return `https://s3.${settings.region}.backblazeb2.com`;
  return undefined;
}

export const b2Storage = defineStoragePlugin({
  name: 'b2',
  description:
    'Backblaze B2: through its S3-compatible API (credentials.s3 + endpoint or region), or restic\'s native b2 backend (credentials.b2).',
  uriPrefix: 'b2:',
  credentialFields: ['s3.accessKeyId', 's3.secretAccessKey', 'b2.accountId', 'b2.accountKey'],
  configFields: ['endpoint', 'region', 'port', 'cacert'],
  validate(settings) {
    const issues: ValidationIssue[] = [];
    if (!parseB2(settings.repository)) {
      issues.push({ path: 'repository', message: 'must be b2:<bucket>[/path] (bucket: 6-50 letters, digits or dashes)' });
    }
    if (modeOf(settings) === 'native') {
      issues.push(...check(b2CredentialsSchema, settings.credentials.b2, 'credentials.b2'));
      return issues;
    }
    if (!settings.credentials?.s3) {
      issues.push({ path: 'credentials.s3', message: 'is required (or credentials.b2 for the native B2 API)' });
    } else {
      issues.push(...check(s3CredentialsSchema, settings.credentials.s3, 'credentials.s3'));
    }
    try {
      if (!s3Endpoint(settings)) {
        issues.push({ path: 'endpoint', message: "is required for B2's S3 API (e.g. s3.us-west-004.backblazeb2.com), or set region" });
      }
    } catch {
      issues.push({ path: 'endpoint', message: 'must be a host name or URL' });
    }
    return issues;
  },
  build(settings, out) {
    const loc = parseB2(settings.repository)!;
    if (modeOf(settings) === 'native') {
      const creds = settings.credentials.b2!;
      out.env.RESTIC_REPOSITORY = `b2:${loc.bucket}:${loc.prefix}`;
      out.env.B2_ACCOUNT_ID = creds.accountId;
      out.env.B2_ACCOUNT_KEY = creds.accountKey;
      out.secrets.add(creds.accountId, creds.accountKey);
      return;
    }
    const creds = settings.credentials.s3!;
    out.env.RESTIC_REPOSITORY = s3Repository({ endpoint: s3Endpoint(settings)!, ...loc });
    out.env.AWS_ACCESS_KEY_ID = creds.accessKeyId;
    out.env.AWS_SECRET_ACCESS_KEY = creds.secretAccessKey;
    out.secrets.add(creds.accessKeyId, creds.secretAccessKey);
    if (settings.region) out.args.push(...resticOption('s3.region', settings.region));
  },
});
