// GET /metrics read by a real Prometheus text parser over a real port, and the GraphQL views of
// backup health and per-app logical size, against the simulated cluster.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import parse, { type PrometheusFamily as ParsedFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeLabelValue, renderMetrics } from '../../src/engine/metrics.js';
import { setPath, updateYamlFile } from '../../src/wild/writer.js';
import type { Services } from '../../src/context.js';
import { ADMIN_TOKEN, READONLY_TOKEN } from '../helpers/app.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';


let s: SimApp;
let base: string;
const startedAt = Date.now();

beforeAll(async () => {
  s = await startSimApp({ apps: ['gitea'] });
  const { port } = await s.app.start();
  base = `http://127.0.0.1:${port}`;
}, 180_000);
afterAll(async () => { await s?.close(); });

async function scrape(token: string | null = READONLY_TOKEN): Promise<{ status: number; contentType: string | null; text: string }> {
  const res = await fetch(`${base}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

/** The value of the one sample of `name` whose labels include `labels`. */
function sample(families: ParsedFamily[], name: string, labels: Record<string, string>): number | undefined {
  const fam = families.find((f) => f.name === name);
  const hits = (fam?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  expect(hits.length, `${name}${JSON.stringify(labels)} matches at most one sample`).toBeLessThanOrEqual(1);
  return hits[0] ? Number(hits[0].value) : undefined;
}

interface Health { healthy: boolean; maxAgeHours: number; apps: Array<{ app: { name: string }; healthy: boolean; reason: string | null; latestCompleteAt: string | null; ageHours: number | null }> }
const HEALTH = `query($h: Int) { instance(name: "test") { backupHealth(maxAgeHours: $h) { healthy maxAgeHours apps { app { name } healthy reason latestCompleteAt ageHours } } } }`;
async function health(maxAgeHours?: number): Promise<Health> {
  const res = await s.gql<{ instance: { backupHealth: Health } }>(HEALTH, maxAgeHours === undefined ? {} : { h: maxAgeHours }, READONLY_TOKEN);
  expect(res.errors).toBeUndefined();
  return res.data!.instance.backupHealth;
}
const byApp = (h: Health) => Object.fromEntries(h.apps.map((a) => [a.app.name, a]));

async function backupApp(app: string): Promise<void> {
  const done = await s.runOperation(`mutation($app: String!) { backupApp(input: { instance: "test", app: $app }) { ${OP_FIELDS} } }`, { app });
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
}

describe('before any backup', () => {
  it('/metrics needs a token: 401 without one or with a wrong one', async () => {
    const none = await scrape(null);
    expect(none.status).toBe(401);
    expect(none.text).toBe('');
    expect((await scrape('not-a-token')).status).toBe(401);
    expect((await scrape(ADMIN_TOKEN)).status).toBe(200);
  });

  it('an uninitialised repository is down, and every app (the database server too) is unhealthy with the reason', async () => {
    const { status, contentType, text } = await scrape();
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parse(text);
    expect(sample(m, 'wild_backup_repository_up', { instance: 'test' })).toBe(0);
    expect(m.find((f) => f.name === 'wild_backup_repository_size_bytes')).toBeUndefined();

    const h = await health();
    expect(h.maxAgeHours).toBe(26);
    expect(h.healthy).toBe(false);
    expect(Object.keys(byApp(h)).sort()).toEqual(['gitea', 'postgres']);
    for (const a of h.apps) {
      expect(a.healthy).toBe(false);
      expect(a.reason).toMatch(/not initialized/);
      expect(a.latestCompleteAt).toBeNull();
    }
  });

  it('maxAgeHours is validated (1 to a year)', async () => {
    for (const bad of [0, -1, 24 * 365 + 1]) {
      const res = await s.gql(HEALTH, { h: bad });
      expect(res.data?.instance ?? null).toBeNull();
      expect(res.errors?.[0]).toMatchObject({ extensions: { code: 'VALIDATION_FAILED' } });
      expect(res.errors?.[0]?.message).toMatch(/maxAgeHours/);
    }
    expect((await health(24 * 365)).maxAgeHours).toBe(24 * 365);
  });
});

describe('after one backup of gitea', () => {
  beforeAll(async () => {
    const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
    expect(init.status).toBe('SUCCEEDED');
    const h = await health();
    for (const a of h.apps) expect(a.reason).toBe('no complete backup; no schedule backs it up (cloud.backup.schedules): it is backed up only when someone asks');
    await backupApp('gitea');
  }, 180_000);

  it('/metrics: the last backup of gitea, operation counts, repository size and ratios', async () => {
    const { status, text } = await scrape();
    expect(status).toBe(200);
    const m = parse(text);
    for (const f of m) {
      expect(f.name).toMatch(/^wild_backup_[a-z_]+$/);
      expect(f.help.length).toBeGreaterThan(0);
      expect(f.type).toBe('GAUGE');
    }
    const gitea = { instance: 'test', app: 'gitea' };
    const ts = sample(m, 'wild_backup_last_complete_backup_timestamp_seconds', gitea)!;
    expect(ts * 1000).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(ts * 1000).toBeLessThanOrEqual(Date.now());
    expect(sample(m, 'wild_backup_last_backup_duration_seconds', gitea)).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_last_backup_size_bytes', gitea)).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_last_backup_added_bytes', gitea)).toBeGreaterThan(0);
    // An installed app with no backup reads as "never": 0.
    expect(sample(m, 'wild_backup_last_complete_backup_timestamp_seconds', { instance: 'test', app: 'postgres' })).toBe(0);
    expect(sample(m, 'wild_backup_last_backup_size_bytes', { instance: 'test', app: 'postgres' })).toBeUndefined();

    expect(sample(m, 'wild_backup_operations', { instance: 'test', kind: 'BACKUP_APP', status: 'SUCCEEDED' })).toBe(1);
    expect(sample(m, 'wild_backup_operations', { instance: 'test', kind: 'INIT_REPOSITORY', status: 'SUCCEEDED' })).toBe(1);
    expect(sample(m, 'wild_backup_operations', { instance: 'test', kind: 'BACKUP_APP', status: 'FAILED' })).toBe(0);

    expect(sample(m, 'wild_backup_repository_up', { instance: 'test' })).toBe(1);
    expect(sample(m, 'wild_backup_scrape_partial', { instance: 'test' })).toBe(0);
    expect(sample(m, 'wild_backup_repository_size_bytes', { instance: 'test' })).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_repository_logical_size_bytes', { instance: 'test' })).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_repository_deduplication_ratio', { instance: 'test' })).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_repository_snapshots', { instance: 'test' })).toBeGreaterThan(0);
    // restic 0.14 (repository format 1) reports no compression: the ratio is left out, not made up.
    const stats = await s.app.services.repositories.stats(await s.app.services.store.requireInstance('test'));
    if (stats.totalUncompressedSize === undefined && stats.compressionRatio === undefined) {
      expect(m.find((f) => f.name === 'wild_backup_repository_compression_ratio')).toBeUndefined();
    }
    // No repository location, password or token in what Prometheus stores.
    expect(text).not.toContain(s.sim.dataDir);
    expect(text).not.toContain(ADMIN_TOKEN);
  });

  it("a scrape within the caches' lifetime starts no restic process", async () => {
    await scrape(); // warm
    const { spawnCount } = await countSpawns(async () => { await scrape(); await scrape(); });
    expect(spawnCount).toBe(0);
  });

  it('backupHealth: gitea is healthy, the postgres server is not; an app no schedule backs up says so', async () => {
    const h = await health();
    const apps = byApp(h);
    expect(h.healthy).toBe(false);
    const manual = 'no schedule backs it up (cloud.backup.schedules): it is backed up only when someone asks';
    expect(apps.gitea).toMatchObject({ healthy: true, reason: manual });
    expect(Date.parse(apps.gitea!.latestCompleteAt!)).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(apps.gitea!.ageHours).toBeLessThan(1);
    expect(apps.postgres).toMatchObject({ healthy: false, reason: `no complete backup; ${manual}`, latestCompleteAt: null, ageHours: null });

    const set = (schedules: unknown[]) => s.gql<{ setSchedules: { __typename: string } }>(
      `mutation($s: [ScheduleInput!]!) { setSchedules(input: { instance: "test", schedules: $s }) { __typename } }`, { s: schedules });
    try {
      // A schedule of gitea alone, and one that is not a backup: the postgres server is still manual.
      expect((await set([{ cron: '0 3 * * *', action: 'BACKUP', apps: ['gitea'] }, { cron: '0 4 * * *', action: 'CHECK' }])).data!.setSchedules.__typename).toBe('SetSchedulesPayload');
      let now = byApp(await health());
      expect(now.gitea).toMatchObject({ healthy: true, reason: null });
      expect(now.postgres!.reason).toBe(`no complete backup; ${manual}`);
      // A backup schedule without apps covers every app.
      expect((await set([{ cron: '0 3 * * *', action: 'BACKUP' }])).data!.setSchedules.__typename).toBe('SetSchedulesPayload');
      now = byApp(await health());
      expect(now.postgres!.reason).toBe('no complete backup');
      // Schedules written by hand that do not parse: none of them runs, and each app says why.
      await updateYamlFile(path.join(s.sim.instanceDir, 'config.yaml'), (doc) => setPath(doc, ['cloud', 'backup', 'schedules'], [{ cron: 'every night', action: 'backup' }]), 0o644);
      now = byApp(await health());
      expect(now.gitea!.reason).toMatch(/^no schedule runs: cloud\.backup\.schedules is invalid \(cloud\.backup\.schedules\.0\.cron: /);
    } finally {
      await set([]);
    }
  });

  it('an app whose manifest is broken is listed as unhealthy, with the reason', async () => {
    const dir = path.join(s.sim.dataDir, 'instances', 'test', 'apps', 'broken');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'manifest.yaml'), 'name: [unclosed\n');
    try {
      const broken = byApp(await health()).broken!;
      expect(broken.healthy).toBe(false);
      expect(broken.reason).toMatch(/no complete backup; the app's files are broken.*manifest\.yaml/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an app whose newest backup failed its restore drill is unhealthy, and healthy again once a drill passes', async () => {
    const svc = s.app.services;
    const inst = await svc.store.requireInstance('test');
    const newest = (await svc.backups.list(inst, { app: 'gitea', kind: 'APP', status: 'COMPLETE' }))[0]!;
    const drill = () => s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: newest.backupId });
    // The drill finds the backup other than recorded (here: the manifest the server holds says its
    // config artifact is larger than what the repository gives back).
    const config = newest.manifest!.artifacts.find((a) => a.kind === 'config')!;
    config.sizeBytes += 512;
    try {
      expect((await drill()).status).toBe('FAILED');
    } finally {
      config.sizeBytes -= 512;
    }
    const verified = async () => sample(parse((await scrape()).text), 'wild_backup_last_backup_verified', { instance: 'test', app: 'gitea' });
    expect(await verified()).toBe(0);
    const failed = byApp(await health()).gitea!;
    expect(failed.healthy).toBe(false);
    expect(failed.reason).toMatch(new RegExp(`^the newest complete backup \\(${newest.backupId}\\) failed its restore drill: config:gitea: \\d+ bytes read back, the backup recorded \\d+`));
    expect((await drill()).status).toBe('SUCCEEDED');
    expect(byApp(await health()).gitea!.healthy).toBe(true);
    expect(await verified()).toBe(1);
  });

  it('RepositoryStats.perApp: the sum of each app\'s COMPLETE backup sizes, cluster backups as null', async () => {
    await backupApp('gitea');
    await backupApp('postgres');
    const cluster = await s.runOperation(`mutation { backupCluster(input: { instance: "test" }) { ${OP_FIELDS} } }`);
    expect(cluster.status).toBe('SUCCEEDED');
    const res = await s.gql<{ instance: { backups: { edges: Array<{ node: { appName: string | null; kind: string; sizeBytes: number } }> }; repository: { stats: { perApp: Array<{ appName: string | null; logicalSize: number }> } } } }>(
      `{ instance(name: "test") { backups(status: COMPLETE) { edges { node { appName kind sizeBytes } } } repository { stats { perApp { appName logicalSize } } } } }`,
    );
    expect(res.errors).toBeUndefined();
    const expected = new Map<string | null, number>();
    const nodes = res.data!.instance.backups.edges.map((e) => e.node);
    for (const b of nodes) {
      const key = b.kind === 'CLUSTER' ? null : b.appName;
      expected.set(key, (expected.get(key) ?? 0) + b.sizeBytes);
    }
    expect(nodes.filter((b) => b.appName === 'gitea')).toHaveLength(2);
    expect(res.data!.instance.repository.stats.perApp).toEqual([
      { appName: 'gitea', logicalSize: expected.get('gitea') },
      { appName: 'postgres', logicalSize: expected.get('postgres') },
      { appName: null, logicalSize: expected.get(null) },
    ]);
    for (const p of res.data!.instance.repository.stats.perApp) expect(p.logicalSize).toBeGreaterThan(0);

    const m = parse((await scrape()).text);
    expect(sample(m, 'wild_backup_last_complete_backup_timestamp_seconds', { instance: 'test', app: 'postgres' })).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_last_complete_backup_timestamp_seconds', { instance: 'test', app: '_cluster' })).toBeGreaterThan(0);
    expect(sample(m, 'wild_backup_operations', { instance: 'test', kind: 'BACKUP_APP', status: 'SUCCEEDED' })).toBe(3);
    expect((await health()).healthy).toBe(true);
  });
});

describe('renderMetrics on its own', () => {
  it('label values are escaped so that a real parser reads them back', () => {
    const hostile = 'a "quoted" \\ back\\slash\nnew line {x="y"} # not a comment';
    const text = `# HELP t_metric x\n# TYPE t_metric gauge\nt_metric{v="${escapeLabelValue(hostile)}"} 1\n`;
    expect(parse(text)[0]!.metrics[0]!.labels!.v).toBe(hostile);
  });

  it('a repository that does not answer is reported down within the scrape budget', async () => {
    const inst = { name: 'slow', problems: [] };
    const never = new Promise<never>(() => undefined);
    const services = {
      store: { instances: async () => [inst], apps: async () => [] },
      repositories: { status: () => never, stats: () => never },
      backups: { list: () => never },
      engine: { list: () => [] },
    } as unknown as Services;
    const t0 = Date.now();
    const m = parse(await renderMetrics(services, { timeoutMs: 300 }));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(sample(m, 'wild_backup_repository_up', { instance: 'slow' })).toBe(0);
    expect(sample(m, 'wild_backup_scrape_partial', { instance: 'slow' })).toBe(1);
    expect(sample(m, 'wild_backup_operations', { instance: 'slow', kind: 'BACKUP_APP', status: 'RUNNING' })).toBe(0);
  });
});

/** Counts child processes spawned while `fn` runs (restic is the only one a scrape could start). */
async function countSpawns(fn: () => Promise<void>): Promise<{ spawnCount: number }> {
  const cp = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const original = cp.spawn;
  let spawnCount = 0;
  cp.spawn = ((...args: Parameters<typeof original>) => { spawnCount += 1; return original(...args); }) as typeof original;
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    cp.spawn = original;
    syncBuiltinESMExports();
  }
  return { spawnCount };
}
