// Every argument of every mutation, tried with generated hostile values (path traversal, shell
// metacharacters, SQL, very long strings, control characters, wrong types): identifiers are
// refused with a typed error, nothing runs and nothing is written; opaque text (passwords, keys,
// paths) is refused when it carries control characters or is too long, and otherwise is stored
// as data and never executed (a canary file that the shell payloads would create never appears).
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

const CANARY = path.join(os.tmpdir(), `wild-canary-${process.pid}`);
const HOSTILE: Record<string, unknown[]> = {
  traversal: ['../../etc/passwd', '..', '/etc/shadow', '..%2F..%2Fetc'],
  shell: [`$(touch ${CANARY})`, `\`touch ${CANARY}\``, `; touch ${CANARY}`, `| touch ${CANARY}`, `& touch ${CANARY} &`],
  sql: ["x'; DROP TABLE users; --", '" OR 1=1 --', 'gitea; drop database gitea'],
  long: ['a'.repeat(100_000)],
  control: ['a\u0000b', '\u001b[2J', 'ok\r\nX-Injected: 1', '\u007f'],
  unicode: ['ｇｉｔｅａ', 'gitéa'],
  wrongType: [12345, true, { nested: 'object' }, ['list']],
};
/** Text that is data, not a name: shell or SQL characters in it are fine, control characters are not. */
const OPAQUE = new Set(['password', 'accessKeyId', 'secretAccessKey', 'privateKey', 'accountName', 'accountKey', 'projectId', 'serviceAccountKey', 'accountId', 'username', 'repository', 'cacert']);

interface MutationCase { name: string; args: string; variables: Record<string, unknown>; selection: string }

const payloadSel = `__typename ... on Error { code message }`;
const CASES: MutationCase[] = [
  { name: 'backupApp', args: '$input: BackupAppInput!', variables: { input: { instance: 'home', app: 'gitea' } }, selection: `backupApp(input: $input) { ${payloadSel} }` },
  { name: 'backupCluster', args: '$input: BackupClusterInput!', variables: { input: { instance: 'home' } }, selection: `backupCluster(input: $input) { ${payloadSel} }` },
  { name: 'restoreBackup', args: '$input: RestoreBackupInput!', variables: { input: { backupId: '20261126T101010Z-abcd', targetApp: 'gitea', components: ['DATABASES'], safetyBackup: true } }, selection: `restoreBackup(input: $input) { ${payloadSel} }` },
  { name: 'verifyBackup', args: '$id: ID!', variables: { id: '20261126T101010Z-abcd' }, selection: `verifyBackup(id: $id) { ${payloadSel} }` },
  { name: 'deleteBackup', args: '$id: ID!', variables: { id: '20261126T101010Z-abcd' }, selection: `deleteBackup(id: $id) { ${payloadSel} }` },
  { name: 'cancelOperation', args: '$id: ID!', variables: { id: 'op-abc-00' }, selection: `cancelOperation(id: $id) { ${payloadSel} }` },
  {
    name: 'updateBackupConfig', args: '$input: UpdateBackupConfigInput!', selection: `updateBackupConfig(input: $input) { ${payloadSel} }`,
    variables: { input: { instance: 'home', config: { repository: 's3:https://s3.example.com/bucket', password: 'pw-123456', retention: { keepDaily: 1 }, endpoint: 's3.example.com', region: 'eu-west-1', port: 443, credentials: { s3: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret-example' } } } } },
  },
  {
    name: 'testRepository', args: '$input: TestRepositoryInput!', selection: `testRepository(input: $input) { ${payloadSel} }`,
    variables: { input: { instance: 'home', config: { repository: 'rest:http://127.0.0.1:9/x', password: 'pw-123456', region: 'eu-west-1', port: 443 } } },
  },
  { name: 'initRepository', args: '$input: InstanceInput!', variables: { input: { instance: 'home' } }, selection: `initRepository(input: $input) { ${payloadSel} }` },
  { name: 'applyRetention', args: '$input: ApplyRetentionInput!', variables: { input: { instance: 'home', dryRun: true, app: 'gitea' } }, selection: `applyRetention(input: $input) { ${payloadSel} }` },
  { name: 'checkRepository', args: '$input: CheckRepositoryInput!', variables: { input: { instance: 'home', readDataPercent: 10 } }, selection: `checkRepository(input: $input) { ${payloadSel} }` },
  { name: 'setSchedules', args: '$input: SetSchedulesInput!', variables: { input: { instance: 'home', schedules: [{ name: 'nightly', cron: '@daily', action: 'BACKUP', apps: ['gitea'] }] } }, selection: `setSchedules(input: $input) { ${payloadSel} }` },
];

/** Every leaf of a value, as a path of keys/indices. */
function leaves(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (Array.isArray(v)) return v.flatMap((x, i) => leaves(x, [...at, i]));
  if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => leaves(x, [...at, k]));
  return [at];
}

function withValue(v: unknown, at: Array<string | number>, value: unknown): unknown {
  if (at.length === 0) return value;
  const [head, ...rest] = at;
  const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as Record<string | number, unknown>;
  copy[head!] = withValue(copy[head!], rest, value);
  return copy;
}

let t: TestApp;
let files: Record<string, string>;
const configText = async () => (await readFile(path.join(t.data.instanceDir(), 'config.yaml'), 'utf8')) + (await readFile(path.join(t.data.instanceDir(), 'secrets.yaml'), 'utf8'));

async function snapshotFiles(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (r.startsWith('wild-backup')) continue; // the server's own state (tokens, caches)
      if (e.isDirectory()) await walk(r);
      else out[r] = await readFile(path.join(dir, r), 'utf8');
    }
  }
  await walk('');
  return out;
}

beforeAll(async () => {
  t = await startTestApp({ repositoryTimeoutMs: 5000 });
  files = await snapshotFiles(t.data.dir);
});
afterAll(async () => { await t.close(); });

describe('hostile input to every mutation', () => {
  it('is refused or kept as inert data: nothing executed, nothing written, no operation started', async () => {
    let tried = 0;
    const refusedTypes = new Set(['ValidationError', 'NotFoundError']);
    const failures: string[] = [];
    for (const c of CASES) {
      const started = Date.now();
      const query = `mutation(${c.args}) { ${c.selection} }`;
      for (const leaf of leaves(c.variables)) {
        const field = String(leaf.filter((k) => typeof k === 'string').at(-1));
        for (const [category, values] of Object.entries(HOSTILE)) {
          for (const value of values) {
            const baseline = leaf.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], c.variables);
            if (category === 'wrongType' && typeof value === typeof baseline) continue; // the right type is not hostile
            tried++;
            const before = await configText();
            const res = await t.gql<Record<string, { __typename: string; code?: string }>>(query, withValue(c.variables, leaf, value) as Record<string, unknown>);
            const typename = res.data?.[c.name]?.__typename;
            const requestError = res.errors?.[0]?.extensions?.code;
            // testRepository exists to try a configuration: an unreachable one is a typed refusal too.
            const refused = (typename !== undefined && (refusedTypes.has(typename) || (c.name === 'testRepository' && typename === 'RepositoryError'))) || requestError === 'BAD_USER_INPUT' || requestError === 'VALIDATION_FAILED';
            const inertAllowed = OPAQUE.has(field) && !['control', 'long', 'wrongType'].includes(category);
            if (refused && (await configText()) !== before) failures.push(`${c.name} ${leaf.join('.')} (${category}): refused, yet config.yaml or secrets.yaml changed`);
            if (!refused && !inertAllowed) failures.push(`${c.name} ${leaf.join('.')} = ${JSON.stringify(value).slice(0, 40)} (${category}) -> ${typename ?? JSON.stringify(res.errors?.[0])}`);
            if (!refused && inertAllowed && typename && !['BackupConfigPayload', 'RepositoryStatusPayload', 'RepositoryError'].includes(typename)) {
              failures.push(`${c.name} ${leaf.join('.')}: unexpected ${typename}`);
            }
          }
        }
      }
      if (process.env.HOSTILE_TIMING) console.log(`${c.name}: ${Date.now() - started} ms`);
    }
    expect(failures, failures.slice(0, 20).join('\n')).toEqual([]);
    expect(tried).toBeGreaterThan(700);
    expect(existsSync(CANARY), 'a shell payload ran').toBe(false);
    expect(t.app.services.engine.list()).toEqual([]);
    // Only opaque values were ever accepted; the files hold nothing but what such a write may hold.
    const after = await snapshotFiles(t.data.dir);
    expect(Object.keys(after).sort()).toEqual(Object.keys(files).sort());
    console.log(`hostile input: ${tried} mutation calls tried`);
  }, 600_000);
});
