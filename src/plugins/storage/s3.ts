// Amazon S3 and S3-compatible stores (MinIO, Wasabi, Backblaze's S3 API) through backend.endpoint.
import { z } from 'zod';
import type { RepositorySettings } from './settings.js';
import type { ValidationIssue } from './types.js';
import { check, defineStoragePlugin, endpointUrl, secretString, resticOption } from './common.js';

export const s3CredentialsSchema = z.object(
  { accessKeyId: secretString(), secretAccessKey: secretString() },
  { error: 'is required (accessKeyId and secretAccessKey)' },
);

const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,62}$/;

/**
 * Where an S3 repository lives. Accepted forms of what follows the scheme:
 * `https://host[:port]/bucket/prefix` (restic's own), `host.with.dots/bucket/prefix` (restic's own),
 * and `bucket/prefix`, which goes to backend.endpoint, else to AWS (s3.<region>.amazonaws.com).
 */
export interface S3Location {
  /** scheme://host[:port] */
  endpoint: string;
  bucket: string;
  prefix: string;
}

export function parseS3Location(rest: string, settings: RepositorySettings): S3Location | ValidationIssue[] {
  let endpoint: string;
  let path: string;
  const explicit = /^(https?:\/\/[^/]+)\/?(.*)$/i.exec(rest);
  if (explicit) {
    if (settings.endpoint) {
      return [{ path: 'endpoint', message: 'must be empty when the repository URI names its own endpoint' }];
    }
    endpoint = explicit[1] ?? '';
    path = explicit[2] ?? '';
  } else if (settings.endpoint) {
    try {
      endpoint = endpointUrl(settings.endpoint, settings.port);
    } catch {
      return [{ path: 'endpoint', message: 'must be a host name or URL such as https://minio.lan:9000' }];
    }
    path = rest;
  } else {
    const [first = '', ...others] = rest.split('/');
    if (first.includes('.') || first.includes(':')) {
      endpoint = endpointUrl(first, settings.port);
      path = others.join('/');
    } else {
      endpoint = `https://${settings.region ? `s3.${settings.region}` : 's3'}.amazonaws.com`;
      path = rest;
    }
  }
  const [bucket = '', ...prefix] = path.split('/').filter((p) => p !== '');
  if (!BUCKET.test(bucket)) {
    return [{ path: 'repository', message: 'must name a bucket: s3:<bucket>[/prefix] or s3:https://host/<bucket>[/prefix]' }];
  }
  return { endpoint, bucket, prefix: prefix.join('/') };
}

export function s3Repository(loc: S3Location): string {
  return `s3:${loc.endpoint}/${loc.bucket}${loc.prefix ? `/${loc.prefix}` : ''}`;
}

export const s3Storage = defineStoragePlugin({
  name: 's3',
  description: 'Amazon S3 or an S3-compatible store (MinIO, Wasabi, Backblaze B2 S3 API) via backend.endpoint.',
  uriPrefix: 's3:',
  credentialFields: ['s3.accessKeyId', 's3.secretAccessKey'],
  configFields: ['endpoint', 'region', 'port', 'cacert'],
  validate(settings) {
    const loc = parseS3Location(settings.repository.slice(3), settings);
    return [
      ...(Array.isArray(loc) ? loc : []),
      ...check(s3CredentialsSchema, settings.credentials?.s3, 'credentials.s3'),
    ];
  },
  build(settings, out) {
    const loc = parseS3Location(settings.repository.slice(3), settings) as S3Location;
    const creds = settings.credentials.s3!;
    out.env.RESTIC_REPOSITORY = s3Repository(loc);
    out.env.AWS_ACCESS_KEY_ID = creds.accessKeyId;
    out.env.AWS_SECRET_ACCESS_KEY = creds.secretAccessKey;
    out.secrets.add(creds.accessKeyId, creds.secretAccessKey);
    if (settings.region) out.args.push(...resticOption('s3.region', settings.region));
  },
});
