// Malicious or malformed app manifests (instances/<n>/apps/<app>/manifest.yaml), through GraphQL:
// wrong types, a root that is not a mapping, binary garbage, a huge file, an anchor bomb, deep
// nesting, a FIFO and a symlink to a device, __proto__ keys, and 30,000 keys in one mapping
// (which yaml's own duplicate-key check took minutes of the event loop to read). Each broken app
// says what is wrong with it (file, path, message) and cannot be backed up; the other apps, and
// the server, answer as before and within a bound.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const GOOD = ['blog', 'ghost', 'gitea', 'immich', 'mysql', 'postgres', 'redis'];

const billionLaughs = (() => {
  const lines = ['name: bomb', 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]`);
  return lines.join('\n') + '\n';
})();
// yaml's own check took ~35 s of a blocked event loop for this many keys (quadratic); now ~1 s.
const KEYS = 30_000;
const manyKeys = (dup: boolean) => `name: ${dup ? 'manydup' : 'many'}\n${Array.from({ length: KEYS }, (_, i) => `k${i}: 1`).join('\n')}\n${dup ? 'k7: 2\n' : ''}`;

/** app -> manifest text, and what its problem must say (null: the manifest is fine). */
const CASES: Record<string, { text: string | Buffer; problem: RegExp | null; path?: string }> = {
  wrongtypes: { text: 'name: wrongtypes\nversion: [1, 2]\ndescription: {a: 1}\nrequires: {postgres: true}\n', problem: /expected/i, path: 'description' },
  badrequire: { text: 'name: badrequire\nrequires:\n  - name: 7\n  - {}\n  - "postgres"\n', problem: /expected/i, path: 'requires.0.name' },
  rootlist: { text: '- name: rootlist\n- x\n', problem: /expected object/i, path: '' },
  rootscalar: { text: 'just a string\n', problem: /expected object/i, path: '' },
  garbage: { text: Buffer.concat([Buffer.from('name: garbage\n'), randomBytes(64 << 10)]), problem: /./ },
  huge: { text: `name: huge\ndescription: "${'x'.repeat(2 << 20)}"\n`, problem: /larger than the 1048576-byte limit/ },
  bomb: { text: billionLaughs, problem: /alias/i },
  deep: { text: `name: deep\nd: ${'['.repeat(5_000)}${']'.repeat(5_000)}\n`, problem: /Maximum call stack|nested too deeply/i },
  proto: { text: 'name: proto\n__proto__: {polluted: true}\nconstructor: {prototype: {polluted: true}}\n', problem: null },
  many: { text: manyKeys(false), problem: null },
  manydup: { text: manyKeys(true), problem: /Map keys must be unique \("k7" repeats\)/, path: `line ${KEYS + 2}` },
  othername: { text: 'name: gitea\nrequires: [{name: postgres}]\n', problem: /is "gitea" but the app directory is "othername"/, path: 'name' },
  dupkeys: { text: 'name: dupkeys\nrequires: []\nrequires: [{name: postgres}]\n', problem: /Map keys must be unique/ },
};

beforeAll(async () => {
  t = await startTestApp();
  for (const [app, c] of Object.entries(CASES)) await t.data.write(`instances/home/apps/${app}/manifest.yaml`, c.text as string);
  // Files that are not files: reading them would block (a FIFO) or never end (a device).
  await mkdir(path.join(t.data.instanceDir(), 'apps', 'fifo'), { recursive: true });
  execFileSync('mkfifo', [path.join(t.data.instanceDir(), 'apps', 'fifo', 'manifest.yaml')]);
  await mkdir(path.join(t.data.instanceDir(), 'apps', 'zero'), { recursive: true });
  await symlink('/dev/zero', path.join(t.data.instanceDir(), 'apps', 'zero', 'manifest.yaml'));
}, 60_000);
afterAll(async () => { await t?.close(); });

interface AppView { name: string; version: string | null; problems: Array<{ file: string; path: string; message: string }>; databases: Array<{ engine: string }> }
const QUERY = `{ instances { name problems { message } apps { name version problems { file path message } databases { engine } } } }`;

describe('hostile app manifests', () => {
  it('each broken app names its problem, the others and the server answer as before, within a bound', async () => {
    const started = Date.now();
    const res = await t.gql<{ instances: Array<{ name: string; problems: unknown[]; apps: AppView[] }> }>(QUERY);
    const firstMs = Date.now() - started;
    expect(res.errors).toBeUndefined();
    const home = res.data!.instances.find((i) => i.name === 'home')!;
    expect(home.problems).toEqual([]);
    const apps = Object.fromEntries(home.apps.map((a) => [a.name, a]));
    const failures: string[] = [];
    for (const [name, c] of Object.entries(CASES)) {
      const a = apps[name];
      if (!a) { failures.push(`${name}: not listed`); continue; }
      if (c.problem === null) {
        if (a.problems.length) failures.push(`${name}: unexpected problems ${JSON.stringify(a.problems)}`);
        continue;
      }
      const p = a.problems.find((x) => c.problem!.test(x.message) && (c.path === undefined || x.path === c.path));
      if (!p) failures.push(`${name}: ${JSON.stringify(a.problems).slice(0, 300)}`);
      else if (p.file !== `instances/home/apps/${name}/manifest.yaml`) failures.push(`${name}: names ${p.file}`);
      if (a.version !== null) failures.push(`${name}: a broken manifest has no version`);
    }
    for (const name of ['fifo', 'zero']) {
      if (!apps[name]?.problems.some((p) => /is not a regular file/.test(p.message))) failures.push(`${name}: ${JSON.stringify(apps[name])}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
    for (const name of GOOD) expect(apps[name]?.problems, name).toEqual([]);
    expect(apps.gitea!.databases).toEqual([{ engine: 'postgres' }]);
    expect(apps.gitea!.version).toBe('1.0.0');
    expect(({} as Record<string, unknown>).polluted, 'no prototype pollution').toBeUndefined();
    // A mapping of 30,000 keys is linear work now (the server was blocked ~35 s before, unloaded).
    expect(firstMs).toBeLessThan(15_000);

    // Broken files are remembered like good ones: asking again does not parse them again.
    const again = Date.now();
    const res2 = await t.gql(QUERY);
    expect(res2.errors).toBeUndefined();
    expect(Date.now() - again).toBeLessThan(Math.max(2_000, firstMs / 3));
  }, 60_000);

  it('a broken app cannot be backed up: a validation error naming the file; a good one is not refused for it', async () => {
    for (const app of ['bomb', 'huge', 'wrongtypes', 'fifo']) {
      const res = await t.gql<{ backupApp: { __typename: string; message: string } }>(
        `mutation($app: String!) { backupApp(input: { instance: "home", app: $app }) { __typename ... on Error { message } } }`, { app });
      expect(res.data!.backupApp.__typename, app).toBe('ValidationError');
      expect(res.data!.backupApp.message).toContain(`instances/home/apps/${app}/manifest.yaml`);
    }
    const ok = await t.gql<{ instance: { app: { problems: unknown[]; databases: unknown[] } } }>(`{ instance(name: "home") { app(name: "immich") { problems { message } databases { engine } } } }`);
    expect(ok.data!.instance.app.problems).toEqual([]);
  });
});
