// The graph in process (yoga.fetch): instances, apps, databases, plugins, nodes, operations,
// and bad input: malformed files, hostile names, missing or wrong tokens, read-only tokens.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, READONLY_TOKEN, type TestApp } from '../helpers/app.js';
import { tickTask } from '../helpers/tasks.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await t.data.write('instances/broken/config.yaml', 'apps: [1, 2\n');
  await t.data.write('instances/home/apps/weird/manifest.yaml', 'name: weird\nrequires:\n  - name: 42\n    alias: [x]\n');
});
afterAll(async () => { await t.close(); });

describe('queries', () => {
  it('lists instances and apps with their databases from manifests and config', async () => {
    const res = await t.gql<{ instance: { name: string; apps: Array<{ name: string; namespace: string; version: string; databases: unknown[] }> } }>(`{
      instance(name: "home") { name apps { name namespace version databases { engine databaseName included reason } } }
    }`);
    expect(res.errors).toBeUndefined();
    const apps = Object.fromEntries(res.data!.instance.apps.map((a) => [a.name, a]));
    expect(apps.gitea?.databases).toEqual([{ engine: 'postgres', databaseName: 'gitea', included: true, reason: null }]);
    expect(apps.immich?.databases).toEqual([
      { engine: 'postgres', databaseName: 'immich', included: true, reason: null },
      expect.objectContaining({ engine: 'redis', included: false, reason: expect.stringContaining('cache') }),
    ]);
    expect(apps.ghost?.databases).toEqual([{ engine: 'mysql', databaseName: 'ghost', included: true, reason: null }]);
    expect(apps.postgres?.databases).toEqual([expect.objectContaining({ engine: 'postgres', databaseName: null, included: true })]);
    expect(apps.blog?.databases).toEqual([]);
    expect(apps.gitea?.namespace).toBe('gitea');
  });

  it('keeps answering when one instance and one app are broken, and says what is wrong', async () => {
    const res = await t.gql<{ instances: Array<{ name: string; problems: Array<{ file: string; path: string; message: string }>; apps: Array<{ name: string; problems: Array<{ file: string; path: string }>; databases: unknown[] }> }> }>(`{
      instances { name problems { file path message } apps { name problems { file path } databases { engine } } }
    }`);
    expect(res.errors).toBeUndefined();
    const broken = res.data!.instances.find((i) => i.name === 'broken')!;
    expect(broken.problems[0]).toMatchObject({ file: 'instances/broken/config.yaml', path: expect.stringMatching(/^line/) });
    const home = res.data!.instances.find((i) => i.name === 'home')!;
    expect(home.problems).toEqual([]);
    const weird = home.apps.find((a) => a.name === 'weird')!;
    expect(weird.problems.map((p) => p.path).sort()).toEqual(['requires.0.alias', 'requires.0.name']);
    expect(weird.problems[0]?.file).toBe('instances/home/apps/weird/manifest.yaml');
    expect(home.apps.find((a) => a.name === 'gitea')?.databases).toHaveLength(1);
  });

  it('resolves nodes by global id and returns null for unknown ones', async () => {
    const list = await t.gql<{ instance: { id: string; app: { id: string } } }>(`{ instance(name: "home") { id app(name: "gitea") { id } } }`);
    const { id: instId, app } = list.data!.instance;
    const res = await t.gql<{ a: { __typename: string; name: string }; b: { __typename: string; name: string }; c: null }>(
      `query($a: ID!, $b: ID!) { a: node(id: $a) { __typename ... on Instance { name } } b: node(id: $b) { __typename ... on App { name } } c: node(id: "bm9wZQ") { id } }`,
      { a: instId, b: app.id },
    );
    expect(res.data).toEqual({ a: { __typename: 'Instance', name: 'home' }, b: { __typename: 'App', name: 'gitea' }, c: null });
  });

  it('lists the registered database engine plugins', async () => {
    const res = await t.gql<{ plugins: { databaseEngines: Array<{ name: string }> } }>(`{ plugins { databaseEngines { name description canRestore canVerify } storageBackends { name } } }`);
    expect(res.data!.plugins.databaseEngines.map((p) => p.name)).toEqual(['postgres', 'mysql', 'redis']);
  });

  it('answers a hostile app or instance name with a validation error and touches nothing', async () => {
    for (const name of ['../../etc', 'a/b', 'x; rm -rf /', 'UPPER', 'a'.repeat(64), '\u0000']) {
      const res = await t.gql(`query($n: String!) { instance(name: "home") { app(name: $n) { name } } }`, { n: name });
      expect(res.errors?.[0]?.extensions?.code, name).toBe('VALIDATION_FAILED');
      const res2 = await t.gql(`query($n: String!) { instance(name: $n) { name } }`, { n: name });
      expect(res2.errors?.[0]?.extensions?.code, name).toBe('VALIDATION_FAILED');
    }
    const unknown = await t.gql<{ instance: { app: null } }>(`{ instance(name: "home") { app(name: "nope") { name } } }`);
    expect(unknown.data?.instance.app).toBeNull();
  });
});

describe('mutations on an instance whose config.yaml does not parse', () => {
  it('answer a ValidationError naming the file (code CONFIG_INVALID) and leave the file as it was', async () => {
    const file = path.join(t.data.dir, 'instances/broken/config.yaml');
    const secrets = path.join(t.data.dir, 'instances/broken/secrets.yaml');
    const before = await readFile(file, 'utf8');
    const secretsBefore = await readFile(secrets, 'utf8').catch(() => null);
    const sched = await t.gql<{ setSchedules: { __typename: string; code: string; message: string; issues: Array<{ path: string; message: string }> } }>(
      `mutation { setSchedules(input: { instance: "broken", schedules: [{ cron: "@daily", action: BACKUP }] }) { __typename ... on ValidationError { code message issues { path message } } ... on Error { code message } } }`,
    );
    expect(sched.errors).toBeUndefined();
    expect(sched.data!.setSchedules).toMatchObject({ __typename: 'ValidationError', code: 'CONFIG_INVALID', message: expect.stringContaining('config.yaml') });
    expect(sched.data!.setSchedules.issues[0]?.path).toMatch(/config\.yaml/);
    const cfg = await t.gql<{ updateBackupConfig: { __typename: string; code: string } }>(
      `mutation { updateBackupConfig(input: { instance: "broken", config: { repository: "/srv/wild-backups/broken", password: "a-long-enough-password-9", retention: { keepDaily: 3 } } }) { __typename ... on ValidationError { code message issues { path message } } ... on Error { code message } } }`,
    );
    expect(cfg.errors).toBeUndefined();
    // A new password is refused with the rest: secrets.yaml is not written before config.yaml.
    expect(cfg.data!.updateBackupConfig).toMatchObject({ __typename: 'ValidationError', code: 'CONFIG_INVALID', message: expect.stringMatching(/^config\.yaml: .*line 2/) });
    expect(await readFile(file, 'utf8')).toBe(before);
    expect(await readFile(secrets, 'utf8').catch(() => null)).toBe(secretsBefore);
  });
});

describe('operations', () => {
  it('lists operations with pagination and cancels one', async () => {
    const engine = t.app.services.engine;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const running = await engine.submit(tickTask({ app: 'gitea', steps: 1, gate }));
    const quick = await engine.submit(tickTask({ app: 'blog', steps: 1 }));
    await engine.waitFor(quick.id);
    const page1 = await t.gql<{ operations: { totalCount: number; edges: Array<{ cursor: string; node: { id: string; appName: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string } } }>(
      `{ operations(instance: "home", first: 1) { totalCount edges { cursor node { id appName status } } pageInfo { hasNextPage endCursor } } }`,
    );
    expect(page1.data!.operations.totalCount).toBeGreaterThanOrEqual(2);
    expect(page1.data!.operations.pageInfo.hasNextPage).toBe(true);
    const page2 = await t.gql<{ operations: { edges: Array<{ node: { appName: string } }> } }>(
      `query($after: String) { operations(instance: "home", first: 1, after: $after) { edges { node { appName } } } }`,
      { after: page1.data!.operations.pageInfo.endCursor },
    );
    expect(page2.data!.operations.edges[0]!.node.appName).not.toBe(page1.data!.operations.edges[0]!.node.appName);
    const badCursor = await t.gql(`{ operations(instance: "home", first: 1, after: "bm9wZQ") { totalCount } }`);
    expect(badCursor.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
    expect(badCursor.errors?.[0]?.message).toMatch(/not a cursor of this list/);

    const running2 = await t.gql<{ instance: { operations: { edges: Array<{ node: { id: string; status: string } }> } } }>(
      `{ instance(name: "home") { operations(status: [RUNNING]) { edges { node { id status } } } } }`,
    );
    const opGid = running2.data!.instance.operations.edges[0]!.node.id;
    const cancel = await t.gql<{ cancelOperation: { __typename: string; operation?: { status: string } } }>(
      `mutation($id: ID!) { cancelOperation(id: $id) { __typename ... on CancelOperationPayload { operation { status } } ... on Error { message code } } }`,
      { id: opGid },
    );
    expect(cancel.data!.cancelOperation.__typename).toBe('CancelOperationPayload');
    release();
    expect((await engine.waitFor(running.id)).status).toBe('CANCELLED');
    const again = await t.gql<{ cancelOperation: { __typename: string; code: string } }>(
      `mutation($id: ID!) { cancelOperation(id: $id) { __typename ... on Error { message code } } }`, { id: opGid },
    );
    expect(again.data!.cancelOperation).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });
    const missing = await t.gql<{ cancelOperation: { __typename: string } }>(`mutation { cancelOperation(id: "op-zzz-00") { __typename } }`);
    expect(missing.data!.cancelOperation.__typename).toBe('NotFoundError');
    const op = await t.gql<{ operation: { status: string; log: string[]; progress: { percent: number } } }>(
      `query($id: ID!) { operation(id: $id) { status log(last: 5) progress { percent bytesDone bytesTotal } } }`, { id: quick.id },
    );
    expect(op.data!.operation.status).toBe('SUCCEEDED');
    expect(op.data!.operation.progress.percent).toBe(100);
    expect(op.data!.operation.log.join('\n')).toContain('SUCCEEDED');
    // log(last:) as `first` is for pages: 0 answers none, a negative number is refused.
    const lines = async (last: number) => t.gql<{ operation: { log: string[] } | null }>(`query($id: ID!, $last: Int) { operation(id: $id) { log(last: $last) } }`, { id: quick.id, last });
    expect((await lines(1)).data!.operation!.log).toHaveLength(1);
    expect((await lines(0)).data!.operation!.log).toEqual([]);
    const negative = await lines(-3) as { errors?: Array<{ message: string; extensions: { code: string } }> };
    expect(negative.errors?.map((e) => e.extensions.code)).toEqual(['VALIDATION_FAILED']);
    expect(negative.errors![0]!.message).toMatch(/last: -3 is not a number of lines/);
  });
});

describe('auth and limits', () => {
  it('answers 401 without a token or with a wrong one', async () => {
    expect((await t.gql('{ instances { name } }', undefined, null)).status).toBe(401);
    expect((await t.gql('{ instances { name } }', undefined, 'wrong-token')).status).toBe(401);
  });

  it('lets a read-only token query but answers ForbiddenError to a mutation, which changes nothing', async () => {
    const engine = t.app.services.engine;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const rec = await engine.submit(tickTask({ app: 'ghost', steps: 1, gate }));
    const q = await t.gql<{ instances: unknown[] }>('{ instances { name } }', undefined, READONLY_TOKEN);
    expect(q.data!.instances.length).toBeGreaterThan(0);
    const m = await t.gql<{ cancelOperation: { __typename: string; code: string } }>(
      `mutation($id: ID!) { cancelOperation(id: $id) { __typename ... on Error { code message } } }`, { id: rec.id }, READONLY_TOKEN,
    );
    expect(m.data!.cancelOperation).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    expect(engine.get(rec.id)?.status).toBe('RUNNING');
    release();
    await engine.waitFor(rec.id);
  });

  it('refuses queries deeper than the limit', async () => {
    const q = `{ operations { edges { node { progress { phase } } } } }`;
    expect((await t.gql(q)).errors).toBeUndefined();
    const t2 = await startTestApp({ maxDepth: 3 });
    try {
      const res = await t2.gql(q);
      expect(res.errors?.[0]?.message).toMatch(/depth/i);
    } finally {
      await t2.close();
    }
  });

  it('refuses queries that cost more than the limit', async () => {
    const q = `{ instances { apps { databases { engine databaseName included reason } } } }`;
    expect((await t.gql(q)).errors).toBeUndefined();
    const t2 = await startTestApp({ maxCost: 10 });
    try {
      const res = await t2.gql(q);
      expect(res.errors?.[0]?.message).toMatch(/cost/i);
    } finally {
      await t2.close();
    }
  });

  it('masks unexpected errors and never returns a secret', async () => {
    const secrets = await readFile(path.join(t.data.instanceDir(), 'secrets.yaml'), 'utf8');
    const res = await t.gql(`{ instances { name problems { message } apps { name databases { engine databaseName reason } } } }`);
    const text = JSON.stringify(res);
    for (const line of secrets.split('\n')) {
      const value = line.split(':')[1]?.trim();
      if (value) expect(text).not.toContain(value);
    }
  });
});

describe('one server per data directory', () => {
  it('a second server on the same data directory refuses to start; after the first stops, it may', async () => {
    const { buildApp } = await import('../../src/server.js');
    await expect(buildApp({ dataDir: t.data.dir, port: 0 })).rejects.toThrow(/another Wild Backup server \(pid \d+/);
    const { tempDataDir } = await import('../helpers/data-dir.js');
    const data = await tempDataDir();
    const first = await startTestApp({ data });
    await expect(startTestApp({ data })).rejects.toThrow(/another Wild Backup server/);
    await first.close();
    const again = await startTestApp({ data });
    await again.close();
    await data.cleanup();
  });
});
