// Bearer tokens (ARCHITECTURE.md §8): an admin token that may change things and a read-only one
// that may query and subscribe. From the environment, or a 0600 token file made on first start.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat, chmod } from 'node:fs/promises';
import type { DataPaths } from './wild/paths.js';
import { writeFileAtomic } from './wild/writer.js';
import type { Role } from './context.js';

export interface Tokens {
  admin: string;
  readOnly: string;
  /** Where the tokens came from, for the start-up message (never the values). */
  source: string;
  /** True when this start generated the token file. */
  generated: boolean;
}

const newToken = () => randomBytes(32).toString('base64url');

/**
 * WILD_BACKUP_TOKEN (admin) and WILD_BACKUP_READONLY_TOKEN take precedence; otherwise the token
 * file in the data directory's state folder, generated 0600 on the first start.
 */
export async function loadTokens(paths: DataPaths, env: NodeJS.ProcessEnv = process.env): Promise<Tokens> {
  let fileTokens: { admin?: string; readOnly?: string } = {};
  let generated = false;
  const file = paths.tokenFile;
  try {
    fileTokens = JSON.parse(await readFile(file, 'utf8')) as typeof fileTokens;
    if ((await stat(file)).mode & 0o077) await chmod(file, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the token file ${file}: ${(err as Error).message}`);
  }
  if (!fileTokens.admin || !fileTokens.readOnly) {
    fileTokens = { admin: fileTokens.admin ?? newToken(), readOnly: fileTokens.readOnly ?? newToken() };
    await writeFileAtomic(file, JSON.stringify(fileTokens, null, 2) + '\n', 0o600);
    generated = true;
  }
  const admin = env.WILD_BACKUP_TOKEN || fileTokens.admin || newToken();
  const readOnly = env.WILD_BACKUP_READONLY_TOKEN || fileTokens.readOnly || newToken();
  if (admin === readOnly) throw new Error('the admin and read-only tokens must differ');
  return {
    admin,
    readOnly,
    source: env.WILD_BACKUP_TOKEN ? 'WILD_BACKUP_TOKEN' : file,
    generated,
  };
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The role a presented credential grants, or null. Accepts "Bearer <t>" or the bare token. */
export function roleFor(tokens: Pick<Tokens, 'admin' | 'readOnly'>, authorization: unknown): Role | null {
  if (typeof authorization !== 'string' || authorization.length > 1024) return null;
  const token = authorization.replace(/^Bearer\s+/i, '').trim();
  if (!token) return null;
  if (same(token, tokens.admin)) return 'admin';
  if (same(token, tokens.readOnly)) return 'readonly';
  return null;
}
