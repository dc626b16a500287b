// restic's REST protocol (rest-server, `rclone serve restic`). HTTP basic credentials come from
// credentials.rest or the URI's userinfo; the full URL only travels in RESTIC_REPOSITORY (env),
// and every display of it is stripped.
import { z } from 'zod';
import type { ValidationIssue } from './types.js';
import { check, defineStoragePlugin, secretString } from './common.js';

const restCredentialsSchema = z.object(
  { username: secretString(), password: secretString() },
  { error: 'must have username and password' },
);

function parseRestUrl(uri: string): URL | undefined {
  try {
    const url = new URL(uri.slice('rest:'.length));
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A rest: URI with `user:password@` split into the URI without them and the credentials they
 * carry, so that the password is kept with the secrets (secrets.yaml), never in config.yaml.
 * Any other URI comes back as it is.
 */
export function splitRestUserinfo(uri: string): { repository: string; credentials?: { username: string; password: string } } {
  if (!uri.startsWith('rest:')) return { repository: uri };
  const url = parseRestUrl(uri);
  if (!url?.password) return { repository: uri };
  const credentials = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
  url.username = '';
  url.password = '';
  return { repository: `rest:${url.href}`, credentials };
}

export const restStorage = defineStoragePlugin({
  name: 'rest',
  description: 'A restic REST server (rest-server, rclone serve restic), with optional HTTP basic auth.',
  uriPrefix: 'rest:',
  credentialFields: ['rest.username', 'rest.password'],
  configFields: ['cacert'],
  validate(settings) {
    const issues: ValidationIssue[] = [];
    const url = parseRestUrl(settings.repository);
    if (!url) issues.push({ path: 'repository', message: 'must be rest:http(s)://host[:port]/[path]' });
    else if (url.username && !url.password) issues.push({ path: 'repository', message: 'has a user name but no password' });
    if (settings.credentials?.rest !== undefined) {
      issues.push(...check(restCredentialsSchema, settings.credentials.rest, 'credentials.rest'));
    }
    return issues;
  },
  build(settings, out) {
    const url = parseRestUrl(settings.repository)!;
    if (url.password) out.secrets.add(url.password, decodeURIComponent(url.password));
    const creds = settings.credentials.rest;
    if (creds) {
      url.username = encodeURIComponent(creds.username);
      url.password = encodeURIComponent(creds.password);
      out.secrets.add(creds.password, url.password);
    }
    out.env.RESTIC_REPOSITORY = `rest:${url.href}`;
  },
});
