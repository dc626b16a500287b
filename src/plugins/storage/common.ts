// Shared pieces of the storage plugins: the settings checks every backend makes, zod issue
// conversion, 0600 temp files for keys, and URL userinfo stripping.
import { mkdir, mkdtemp, rm, writeFile, access } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { SecretSet } from '../../util/redact.js';
import type { RepositorySettings } from './settings.js';
import {
  StorageValidationError,
  type PrepareContext,
  type PreparedBackend,
  type StorageBackendName,
  type StoragePlugin,
  type ValidationIssue,
} from './types.js';

/** Converts zod issues to ours, prefixing each path (`credentials.s3` + `secretAccessKey`). */
export function issuesFromZod(error: z.ZodError, prefix = ''): ValidationIssue[] {
  return error.issues.map((issue) => {
    const rest = issue.path.map(String).join('.');
    const path = [prefix, rest].filter(Boolean).join('.') || '(settings)';
    return { path, message: issue.message };
  });
}

/** Validates `value` with `schema`; returns the issues under `prefix`, or none. */
export function check(schema: z.ZodType, value: unknown, prefix: string): ValidationIssue[] {
  const result = schema.safeParse(value);
  return result.success ? [] : issuesFromZod(result.error, prefix);
}

const required = (what = 'is required') => ({ error: what });

/** A non-empty string; the message never echoes the value (it may be a secret). */
export const secretString = () => z.string(required()).min(1, 'must not be empty');

const commonSchema = z.object({
  repository: z.string(required()).min(1, 'is required'),
  password: z.string(required('is required (the restic repository password)')).min(1, 'must not be empty'),
  endpoint: z.string().min(1, 'must not be empty').optional(),
  region: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a region name such as us-east-1').optional(),
  port: z.number().int('must be an integer').min(1, 'must be 1-65535').max(65535, 'must be 1-65535').optional(),
  cacert: z.string().refine(isAbsolute, 'must be an absolute path to a PEM file').optional(),
  credentials: z.object({}).loose().optional(),
});

/** The checks every backend makes, whatever its URI. */
export function commonIssues(settings: RepositorySettings): ValidationIssue[] {
  if (typeof settings !== 'object' || settings === null) {
    return [{ path: '(settings)', message: 'must be an object' }];
  }
  return check(commonSchema, settings, '');
}

/**
 * Temp files for key material: one 0700 directory under `<dataDir>/tmp` per restic invocation,
 * files 0600, all removed by cleanup().
 */
export class SecretFiles {
  private dir: string | undefined;
  constructor(private readonly dataDir: string) {}

  async write(name: string, content: string): Promise<string> {
    if (!this.dir) {
      const root = join(this.dataDir, 'tmp');
      await mkdir(root, { recursive: true, mode: 0o700 });
      this.dir = await mkdtemp(join(root, 'restic-'));
    }
    const path = join(this.dir, name);
    await writeFile(path, content, { mode: 0o600, flag: 'wx' });
    return path;
  }

  async cleanup(): Promise<void> {
    const dir = this.dir;
    this.dir = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** Removes `user:password@` (and a bare `user@`) after `scheme://` anywhere in the text. */
export function stripUrlUserinfo(uri: string): string {
  return uri.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1');
}

/**
 * `-o key=value` for restic. restic reads -o as a pflag string slice, which parses each value as
 * CSV: a comma would split it and a quote would break it, so such values are CSV-quoted.
 */
export function resticOption(key: string, value: string): string[] {
  const kv = `${key}=${value}`;
  return ['-o', /[",]/.test(kv) ? `"${kv.replace(/"/g, '""')}"` : kv];
}

/** Joins an endpoint (with or without scheme) and an optional port into `scheme://host[:port]`. */
export function endpointUrl(endpoint: string, port: number | undefined, defaultScheme = 'https'): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${defaultScheme}://${endpoint}`;
  const url = new URL(withScheme);
  if (port !== undefined && url.port === '') url.port = String(port);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

export interface BuildOutput {
  env: Record<string, string>;
  args: string[];
  secrets: SecretSet;
  files: SecretFiles;
  diagnostics?: () => Promise<string>;
}

/** What a backend module provides; defineStoragePlugin adds the shared checks and plumbing. */
export interface StoragePluginSpec {
  name: StorageBackendName;
  description: string;
  uriPrefix: string;
  credentialFields: string[];
  configFields: string[];
  matches?: (uri: string) => boolean;
  /** Backend-specific problems (URI form, credentials); the common ones are checked already. */
  validate(settings: RepositorySettings): ValidationIssue[];
  /** Fills env/args/secrets for valid settings; key files through `files`. */
  build(
    settings: RepositorySettings,
    out: BuildOutput,
    ctx: PrepareContext,
  ): Promise<void> | void;
  displayUri?: (uri: string) => string;
}

export function defineStoragePlugin(spec: StoragePluginSpec): StoragePlugin {
  const matches = spec.matches ?? ((uri: string) => uri.startsWith(spec.uriPrefix));
  const validate = (settings: RepositorySettings): ValidationIssue[] => {
    const common = commonIssues(settings);
    if (common.some((i) => i.path === '(settings)')) return common;
    const own = typeof settings.repository === 'string' ? spec.validate(settings) : [];
    return [...common, ...own];
  };
  return {
    name: spec.name,
    description: spec.description,
    uriPrefix: spec.uriPrefix,
    credentialFields: spec.credentialFields,
    configFields: spec.configFields,
    matches,
    validate,
    displayUri: spec.displayUri ?? stripUrlUserinfo,
    async prepare(settings: RepositorySettings, ctx: PrepareContext): Promise<PreparedBackend> {
      const issues = validate(settings);
      if (issues.length > 0) throw new StorageValidationError(issues);
      if (settings.cacert) {
        try {
          await access(settings.cacert);
        } catch {
          throw new StorageValidationError([{ path: 'cacert', message: 'file not found' }]);
        }
      }
      const files = new SecretFiles(ctx.dataDir);
      const out: BuildOutput = { env: {}, args: [], secrets: new SecretSet(), files };
      out.secrets.add(settings.password);
      if (settings.cacert) out.args.push('--cacert', settings.cacert);
      try {
        await spec.build(settings, out, ctx);
      } catch (err) {
        await files.cleanup();
        throw err;
      }
      return { env: out.env, args: out.args, secrets: out.secrets, diagnostics: out.diagnostics, cleanup: () => files.cleanup() };
    },
  };
}
