// Benchmark of an app backup (`npm run bench`): a Wild Cloud app on the simulated cluster with a
// ~1 GiB PostgreSQL database and a ~1 GiB PVC (thousands of small files, a few large ones): gitea,
// the issue's shape (one database, one PVC), or with `--app immich` immich (its small cache PVC comes along),
// backed up three ways, side by side on the same machine in one run, each into a fresh repository:
//
//   ours    Wild Backup's backupApp over GraphQL, the server in its own process (its RSS sampled);
//   direct  the same restic pipelines run in a shell: `pg_dump | restic backup --stdin` and
//           `tar -c | restic backup --stdin` (the commands the pods run, the same restic options);
//   kubectl the direct pipelines through the simulated cluster's exec, with Debian's kubectl
//           (`kubectl exec <pod> -- pg_dump ... | restic ...`): the cost of the exec hop alone;
//   seed    the seed's way: pg_dump to a file (custom format, compressed), `tar -czf` of the
//           volume into a staging directory, then `restic backup <staging dir>`.
//
// Then the incremental cost: 1% of the PVC's files rewritten, a second backup, and the growth of
// each repository on disk (du -sb), with restic backing up the directory file by file as the limit.
// Then peak RSS of our server again at a larger size (--rss-size, default 4G).
//
// Usage: npm run bench -- [--size 1G] [--rss-size 4G|0] [--runs 3] [--quick] [--tsx] [--keep] [--out FILE]
//        [--cpu-prof DIR]  (the server writes a V8 CPU profile per run into DIR)
//        [--op-log FILE]   (appends each of our backups' operation log, timestamped, to FILE)
//        [--app gitea|immich]  (default gitea)
//        [--paths ours,direct]  (only these paths, medians printed, no report: for trying a change)
//        [--baseline DIR]  (adds the path "baseline": the server built in DIR (its dist/), e.g. a
//                           worktree of the commit before a change, rotated with the others;
//                           BENCH_BASELINE_ENV="K=V ..." sets environment for it alone)
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startSimCluster, type SimCluster } from '../src/sim/fixture.js';
import type { DemoAppName } from '../src/sim/apps.js';
import { changeFiles, growPostgres, growVolume, type DbSeedResult, type VolumePlan } from './lib-data.js';
import { childrenNamed, cpuTimes, duBytes, fmtBytes, loadAverage, median, mib, parseSize, q, run, sampleMemory, sh, vmRssKiB, type MemoryPeak } from './lib-proc.js';
import { backupApp, configureRepository, serverArgv, serverMode, startServer, type OperationDone, type ServerMode } from './lib-server.js';
import { MB, facts, findPod, list, pass, phaseDurations, secs, type PodRef } from './lib-bench.js';

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string' },
    'rss-size': { type: 'string' },
    runs: { type: 'string' },
    change: { type: 'string', default: '0.01' },
    quick: { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'op-log': { type: 'string' },
    paths: { type: 'string' },
    baseline: { type: 'string' },
    app: { type: 'string', default: 'gitea' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log('usage: npm run bench -- [--app gitea|immich] [--size 1G] [--rss-size 4G|0] [--runs 3] [--change 0.01] [--quick] [--tsx] [--keep] [--out FILE] [--cpu-prof DIR] [--op-log FILE]');
  process.exit(0);
}
const SIZE = parseSize(flags.size ?? (flags.quick ? '64M' : '1G'));
const RSS_SIZE = (flags['rss-size'] ?? (flags.quick ? '256M' : '4G')) === '0' ? 0 : parseSize(flags['rss-size'] ?? (flags.quick ? '256M' : '4G'));
const RUNS = Number(flags.runs ?? (flags.quick ? 2 : 3));
const CHANGE = Number(flags.change);
const OUT = flags.out ?? (flags.quick ? undefined : 'docs/benchmarks/backup.md');
const MODE: ServerMode = serverMode({ tsx: flags.tsx! });
const INSTANCE = 'test';
// The app's database and its data PVC (the one seeded; any other volume of the app comes along).
const APPS: Partial<Record<DemoAppName, { db: string; pvc: string; note: string }>> = {
  gitea: { db: 'gitea', pvc: 'gitea-data', note: 'one database and one PVC, the shape the issue names' },
  immich: { db: 'immich', pvc: 'immich-pvc', note: 'its small `immich-cache-pvc` comes along' },
};
const APP = flags.app as DemoAppName;
if (!APPS[APP]) throw new Error(`--app: one of ${Object.keys(APPS).join(', ')}`);
const { db: DB, pvc: PVC } = APPS[APP]!;
const TOKEN = 'bench-admin-token-0123456789abcdef';
const PASSWORD = 'bench-repository-password';
const RESTIC = 'restic';
const TARGET_TIME_RATIO = 1.15;
const TARGET_RSS_MB = 200;
const TARGET_GROWTH_RATIO = 0.2;

const t00 = performance.now();
const say = (s: string): void => console.log(`[${((performance.now() - t00) / 1000).toFixed(0).padStart(4)} s] ${s}`);

const root = mkdtempSync(path.join(os.tmpdir(), 'wild-bench-'));
chmodSync(root, 0o755); // the sim's PostgreSQL runs as the postgres user and must reach its socket dir
const reposDir = path.join(root, 'repos');
const cachesDir = path.join(root, 'restic-cache');
mkdirSync(reposDir);
mkdirSync(cachesDir);
// BENCH_NODE_FLAGS: more node flags for the server (e.g. --trace-gc).
const SERVER_ARGV = [...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), ...(flags['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(flags['cpu-prof'])}`] : []), ...serverArgv(MODE, root)];

// ---------------------------------------------------------------------------------------------
// The three paths.

interface ResticSummary { data_added?: number; total_bytes_processed?: number; snapshot_id?: string }

function summaryOf(stdout: string): ResticSummary[] {
  return stdout.split('\n').filter((l) => l.includes('"message_type":"summary"')).map((l) => JSON.parse(l) as ResticSummary);
}

function resticEnv(repo: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: PASSWORD, RESTIC_PROGRESS_FPS: '2', ...extra };
}

async function resticInit(repo: string): Promise<void> {
  await run(RESTIC, ['init'], { env: resticEnv(repo) });
}

/** The options Wild Backup gives restic (src/engine/restic/repository.ts + args.ts), for one artifact. */
function resticStdinArgs(cache: string, filename: string, kind: string, name: string, backupId: string): string {
  const tags = ['wild-backup', `instance:${INSTANCE}`, `app:${APP}`, `backup:${backupId}`, `artifact:${kind}:${name}`];
  return `${RESTIC} --json --cache-dir ${q(cache)} backup --stdin --stdin-filename ${q(filename)} --host ${INSTANCE} ${tags.map((t) => `--tag ${q(t)}`).join(' ')}`;
}

interface Sim {
  sim: SimCluster;
  pvcDir: string;
  pgEnv: Record<string, string>;
  /** The sim's PostgreSQL postmaster (its reaped backends' CPU is in its cutime). */
  postmaster: number;
  pgPod: PodRef;
  appPod: PodRef;
}



/** CPU seconds spent while a path runs, by who spent them (deltas of /proc/<pid>/stat and process.cpuUsage). */
type CpuParts = Record<string, number>;
function cpuMeter(s: Sim, serverPid?: number): { stop(): CpuParts } {
  const b0 = process.cpuUsage();
  const bc0 = cpuTimes(process.pid).children;
  const pg0 = cpuTimes(s.postmaster);
  const sv0 = serverPid ? cpuTimes(serverPid) : undefined;
  return {
    stop() {
      const b = process.cpuUsage(b0);
      const bc = cpuTimes(process.pid).children - bc0;
      const pg1 = cpuTimes(s.postmaster);
      const parts: CpuParts = {
        'postgres backend': pg1.self + pg1.children - pg0.self - pg0.children,
        'benchmark process (the simulated cluster: API server, exec framing, TLS)': (b.user + b.system) / 1e6,
      };
      if (serverPid && sv0) {
        const sv1 = cpuTimes(serverPid);
        parts['our server (node)'] = sv1.self - sv0.self;
        parts['restic (our server\'s children)'] = sv1.children - sv0.children;
        parts['pod commands (pg_dump, tar, psql, du)'] = bc;
      } else {
        parts['shell pipelines (pg_dump/tar/gzip/kubectl, restic)'] = bc;
      }
      return parts;
    },
  };
}

interface DirectRun { pgMs: number; tarMs: number; totalMs: number; dumpBytes: number; tarBytes: number; repoBytes: number; cpu: CpuParts; load: number }

const PG_DUMP = `pg_dump -U postgres --format=custom --compress=0 --no-password --dbname=${DB}`;

/**
 * The same pipelines as the pods run, in a shell: `pg_dump | restic`, then `tar | restic`; locally
 * (`via: 'local'`, the acceptance's "direct"), or through the cluster with Debian's kubectl exec.
 */
async function runDirect(s: Sim, repo: string, cache: string, via: 'local' | 'kubectl', together = false): Promise<DirectRun> {
  const env = resticEnv(repo, s.pgEnv);
  const id = `20261126T000000Z-${path.basename(repo).slice(-4)}`;
  const kc = (ns: string, p: PodRef): string => `kubectl --kubeconfig ${q(s.sim.kubeconfigPath)} exec -n ${ns} ${p.pod} -c ${p.container} -- `;
  const dumpCmd = via === 'local' ? PG_DUMP : kc('postgres', s.pgPod) + PG_DUMP;
  const tarCmd = via === 'local' ? `tar -c -f - -C ${q(s.pvcDir)} .` : `${kc(APP, s.appPod)}tar -c -f - -C ${q(s.appPod.mountPath!)} .`;
  const load = loadAverage();
  const cpu = cpuMeter(s);
  const pgLine = `${dumpCmd} | ${resticStdinArgs(cache, `${APP}/postgres-${DB}.pgdump`, 'postgres', DB, id)}`;
  const tarLine = `${tarCmd} | ${resticStdinArgs(cache, `${APP}/pvc-${PVC}.tar`, 'pvc', PVC, id)}`;
  const t0 = performance.now();
  // One after the other (the issue's baseline), or both at once (what ours does with its artifacts).
  const [pg, tar] = together ? await Promise.all([sh(pgLine, env), sh(tarLine, env)]) : [await sh(pgLine, env), await sh(tarLine, env)];
  const wallMs = performance.now() - t0;
  return {
    pgMs: pg.ms, tarMs: tar.ms, totalMs: together ? wallMs : pg.ms + tar.ms, cpu: cpu.stop(), load,
    dumpBytes: summaryOf(pg.stdout)[0]?.total_bytes_processed ?? 0,
    tarBytes: summaryOf(tar.stdout)[0]?.total_bytes_processed ?? 0,
    repoBytes: await duBytes(repo),
  };
}

interface SeedRun { dumpMs: number; tarMs: number; resticMs: number; totalMs: number; stagingBytes: number; repoBytes: number; cpu: CpuParts; load: number }

/** The seed's way: stage a compressed dump and a tar.gz, then back the staging directory up. */
async function runSeed(s: Sim, repo: string, cache: string, staging: string): Promise<SeedRun> {
  const env = resticEnv(repo, s.pgEnv);
  rmSync(staging, { recursive: true, force: true });
  const load = loadAverage();
  const cpu = cpuMeter(s);
  const t0 = performance.now();
  mkdirSync(staging, { recursive: true });
  const dump = await sh(`pg_dump -U postgres --format=custom --no-password --dbname=${DB} --file=${q(path.join(staging, `${DB}.dump`))}`, env);
  const tar = await sh(`tar -czf ${q(path.join(staging, `${PVC}.tar.gz`))} -C ${q(s.pvcDir)} .`, env);
  const stagingBytes = await duBytes(staging);
  const restic = await sh(`${RESTIC} --json --cache-dir ${q(cache)} backup --host ${INSTANCE} --tag wild-backup --tag app:${APP} ${q(staging)}`, env);
  rmSync(staging, { recursive: true, force: true });
  const totalMs = performance.now() - t0;
  return { dumpMs: dump.ms, tarMs: tar.ms, resticMs: restic.ms, totalMs, stagingBytes, repoBytes: await duBytes(repo), cpu: cpu.stop(), load };
}

interface OursRun {
  op: OperationDone; opMs: number; mem: MemoryPeak; repoBytes: number; artifacts: string[]; phaseMs: Record<string, number>;
  cpu: CpuParts; load: number;
  /** VmRSS right after the server said it was listening, KiB. */
  bootKiB: number;
}


/** From the first artifact's stream to the manifest: the streaming (planning, estimates and the manifest excluded). */
const streamingMs = (o: OursRun): number => {
  const ph = o.op.phases;
  const first = ph.find((p) => p.phase.startsWith('backing up'));
  // The manifest's write can be too short for the subscription (a few events a second) to show: the listing follows it.
  const last = ph.find((p) => ['writing manifest', 'listing snapshots', 'complete', 'succeeded'].includes(p.phase));
  return first && last ? last.atMs - first.atMs : 0;
};

/** backupApp through our server, started fresh for the run (its peak RSS is the run's). */
// --baseline: the same server argv with another build's dist/main.js.
const BASELINE = flags.baseline ? {
  argv: SERVER_ARGV.map((a) => (a === 'dist/main.js' ? path.resolve(flags.baseline!, 'dist/main.js') : a)),
  env: Object.fromEntries((process.env.BENCH_BASELINE_ENV ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
} : undefined;
if (BASELINE && MODE !== 'dist') throw new Error('--baseline compares compiled servers (dist mode)');

async function runOurs(s: Sim, repo: string, opts: { init: boolean; server?: { argv: string[]; env: Record<string, string> } }): Promise<OursRun> {
  const server = await startServer({ dataDir: s.sim.dataDir, token: TOKEN, mode: MODE, argv: opts.server?.argv ?? SERVER_ARGV, env: opts.server?.env, logFile: path.join(root, 'server.log') });
  try {
    const bootKiB = vmRssKiB(server.pid);
    if (opts.init) await configureRepository(server, INSTANCE, repo, PASSWORD);
    const load = loadAverage();
    const sampler = sampleMemory(server.pid);
    const cpu = cpuMeter(s, server.pid);
    const op = await backupApp(server, INSTANCE, APP);
    if (flags['op-log']) appendFileSync(flags['op-log'], op.log.join('\n') + '\n\n');
    const mem = sampler.stop();
    const cpuParts = cpu.stop();
    if (op.status !== 'SUCCEEDED') throw new Error(`backupApp ${op.status}: ${JSON.stringify(op.error)}\n${op.log.join('\n')}`);
    const opMs = Date.parse(op.finishedAt!) - Date.parse(op.startedAt ?? op.createdAt);
    const artifacts = op.log.filter((l) => /repository grew by/.test(l));
    return { op, opMs, mem, repoBytes: await duBytes(repo), artifacts, phaseMs: phaseDurations(op), cpu: cpuParts, load, bootKiB };
  } finally {
    await server.stop();
  }
}

const syncDisk = (): Promise<unknown> => run('sync', []);

const cpuTotal = (c: CpuParts): number => Object.values(c).reduce((a, b) => a + b, 0);
const cpuText = (c: CpuParts): string => `${cpuTotal(c).toFixed(1)} s`;

// ---------------------------------------------------------------------------------------------
// Main.

interface Results {
  facts: Record<string, string>;
  mode: ServerMode;
  serverCommand: string;
  size: number;
  db: DbSeedResult;
  volume: VolumePlan & { bytes: number; files: number };
  ours: OursRun[];
  direct: DirectRun[];
  /** The two direct pipelines at once. */
  together: DirectRun[];
  kubectl: DirectRun[];
  seed: SeedRun[];
  incremental?: {
    change: { files: number; bytes: number; of: number; large: number };
    ours: { before: number; after: number; ms: number; artifacts: string[]; mem: MemoryPeak; bootKiB: number };
    seed: { before: number; after: number; ms: number; stagingBytes: number };
    limit: { before: number; after: number; ms: number; baselineMs: number };
  };
  big?: { size: number; db: DbSeedResult; volumeBytes: number; files: number; ours: OursRun };
  /** Wall time of one restic process that reads nothing (`snapshots` on a small repository): key derivation, index. */
  resticFixedMs: number;
  totalSeconds: number;
}

async function main(): Promise<void> {
  const f = facts({ restic: [RESTIC, 'version'] });
  say(`benchmark of backupApp: size ${fmtBytes(SIZE)} (database and PVC each), ${RUNS} runs, RSS check at ${RSS_SIZE ? fmtBytes(RSS_SIZE) : 'off'}; server: ${MODE}`);
  say(`work dir ${root}`);
  let sim: SimCluster;
  try {
    sim = await startSimCluster({
      dir: path.join(root, 'sim'), instance: INSTANCE, apps: [APP], databases: ['postgres'],
      sizes: { dbRows: 1000, photoFiles: 8, photoBytes: 256 << 10, cacheBytes: 64 << 10, fileBytes: 16 << 10 },
    });
  } catch (err) {
    if (!flags.keep) rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const pg = sim.databases.postgres!;
  const postmaster = childrenNamed(process.pid, 'postgres')[0];
  if (!postmaster) throw new Error('cannot find the sim\'s PostgreSQL postmaster');
  const s: Sim = { sim, pvcDir: sim.pvcDir(APP, PVC), pgEnv: pg.execEnv(), postmaster, pgPod: findPod(sim, 'postgres'), appPod: findPod(sim, APP, PVC) };
  const res: Partial<Results> & { ours: OursRun[]; baseline: OursRun[]; direct: DirectRun[]; together: DirectRun[]; kubectl: DirectRun[]; seed: SeedRun[] } = { facts: f, mode: MODE, size: SIZE, ours: [], baseline: [], direct: [], together: [], kubectl: [], seed: [] };
  try {
    say(`seeding: ${fmtBytes(SIZE)} of rows into postgres ${DB}, ${fmtBytes(SIZE)} of files into pvc ${PVC}`);
    const t0 = performance.now();
    const vol = growVolume(s.pvcDir, SIZE);
    say(`  volume: ${vol.smallFiles} small files (${fmtBytes(vol.smallBytes)}), ${vol.largeFiles} × ${fmtBytes(vol.largeFileBytes)} in ${secs(performance.now() - t0)}`);
    res.db = await growPostgres(pg, DB, DB, SIZE, say);
    say(`  database: ${res.db.rows} rows, ${fmtBytes(res.db.dbBytes)} in ${res.db.seconds.toFixed(1)} s`);
    const volFiles = Number((await run('bash', ['-c', `find ${q(s.pvcDir)} -type f | wc -l`])).stdout.trim());
    res.volume = { ...vol, bytes: await duBytes(s.pvcDir), files: volFiles };

    // Warm the page cache the same way for everyone (the data was just written; the dump reads the table).
    say('warming up (untimed pg_dump and tar to /dev/null)');
    await sh(`pg_dump -U postgres --format=custom --compress=0 --no-password --dbname=${DB} > /dev/null; tar -c -f - -C ${q(s.pvcDir)} . > /dev/null`, { ...process.env, ...s.pgEnv });

    const all = ['ours', 'direct', 'seed', 'together', 'kubectl', 'baseline'] as const;
    const only = flags.paths?.split(',');
    const variants = all.filter((v) => (v === 'baseline' ? BASELINE !== undefined : !only || only.includes(v)));
    for (let r = 1; r <= RUNS; r++) {
      // Rotate the order each round so no path always runs first or last.
      const order = variants.map((_, i) => variants[(i + r - 1) % variants.length]!);
      for (const v of order) {
        const repo = path.join(reposDir, `${v}-${r}`);
        const cache = path.join(cachesDir, `${v}-${r}`);
        await syncDisk();
        if (v === 'ours' || v === 'baseline') {
          const o = await runOurs(s, repo, { init: true, server: v === 'baseline' ? BASELINE : undefined });
          res[v].push(o);
          say(`run ${r} ${v === 'ours' ? 'ours:   ' : 'baseline:'} ${secs(o.op.clientMs)} (operation ${secs(o.opMs)}), server peak RSS ${mib(o.mem.vmHwmKiB)}, restic peak ${mib(o.mem.resticPeakKiB)}, repo ${fmtBytes(o.repoBytes)}, CPU ${cpuText(o.cpu)} (${Object.entries(o.cpu).map(([k, v]) => `${k.split(' (')[0]} ${v.toFixed(1)}`).join(', ')}), load ${o.load}`);
          if (only) say(`  phases: ${Object.entries(o.phaseMs).map(([k, v]) => `${k} ${secs(v)}`).join(', ')}`);
          res.serverCommand = `node ${SERVER_ARGV.join(' ').replaceAll(root, '<work>')} serve --data <work>/sim/wild-central --port 0`;
        } else if (v === 'direct' || v === 'kubectl' || v === 'together') {
          await resticInit(repo);
          const d = await runDirect(s, repo, cache, v === 'kubectl' ? 'kubectl' : 'local', v === 'together');
          res[v].push(d);
          say(`run ${r} ${v.padEnd(7)} ${secs(d.totalMs)} (pg_dump|restic ${secs(d.pgMs)}, tar|restic ${secs(d.tarMs)}), dump ${fmtBytes(d.dumpBytes)}, tar ${fmtBytes(d.tarBytes)}, repo ${fmtBytes(d.repoBytes)}, CPU ${cpuText(d.cpu)} (${Object.entries(d.cpu).map(([k, v]) => `${k.split(' (')[0]} ${v.toFixed(1)}`).join(', ')}), load ${d.load}`);
        } else {
          await resticInit(repo);
          const sd = await runSeed(s, repo, cache, path.join(root, 'staging'));
          res.seed.push(sd);
          say(`run ${r} seed:    ${secs(sd.totalMs)} (dump ${secs(sd.dumpMs)}, tar.gz ${secs(sd.tarMs)}, restic ${secs(sd.resticMs)}), staging ${fmtBytes(sd.stagingBytes)}, repo ${fmtBytes(sd.repoBytes)}`);
        }
        // Keep the last round's repositories (ours, seed) for the incremental step.
        if (r < RUNS || v === 'direct' || v === 'kubectl' || v === 'together' || v === 'baseline') { rmSync(repo, { recursive: true, force: true }); rmSync(cache, { recursive: true, force: true }); }
      }
    }

    if (only) {
      const med = (xs: number[]) => (xs.length ? secs(median(xs)) : '-');
      say(`medians: ours ${med(res.ours.map((o) => o.op.clientMs))} (streaming ${med(res.ours.map(streamingMs))}), direct ${med(res.direct.map((d) => d.totalMs))}, side by side ${med(res.together.map((d) => d.totalMs))}, kubectl ${med(res.kubectl.map((d) => d.totalMs))}`);
      if (res.ours.length && res.direct.length) say(`ours / direct = ${(median(res.ours.map((o) => o.op.clientMs)) / median(res.direct.map((d) => d.totalMs))).toFixed(3)}`);
      if (res.baseline.length) {
        say(`baseline ${med(res.baseline.map((o) => o.op.clientMs))} (CPU ${secs(median(res.baseline.map((o) => cpuTotal(o.cpu) * 1000)))}); ours CPU ${secs(median(res.ours.map((o) => cpuTotal(o.cpu) * 1000)))}`);
        if (res.ours.length) say(`ours / baseline = ${(median(res.ours.map((o) => o.op.clientMs)) / median(res.baseline.map((o) => o.op.clientMs))).toFixed(3)}`);
        if (res.direct.length) say(`baseline / direct = ${(median(res.baseline.map((o) => o.op.clientMs)) / median(res.direct.map((d) => d.totalMs))).toFixed(3)}`);
      }
      return;
    }

    // What one restic process costs before it moves a byte (ours starts several per artifact).
    const probe = path.join(reposDir, 'probe');
    await resticInit(probe);
    const probes: number[] = [];
    for (let i = 0; i < 3; i++) probes.push((await run(RESTIC, ['--json', '--no-lock', '--cache-dir', path.join(cachesDir, 'probe'), 'snapshots'], { env: resticEnv(probe) })).ms);
    res.resticFixedMs = median(probes);
    rmSync(probe, { recursive: true, force: true });

    // Incremental: the last round's repositories of ours and the seed's way already hold one backup.
    say(`incremental: baseline of the file-by-file limit (pg_dump | restic --stdin, restic backup <pvc dir>)`);
    const limitRepo = path.join(reposDir, 'limit');
    const limitCache = path.join(cachesDir, 'limit');
    await resticInit(limitRepo);
    const limitBackup = async (): Promise<number> => {
      const env = resticEnv(limitRepo, s.pgEnv);
      const a = await sh(`pg_dump -U postgres --format=custom --compress=0 --no-password --dbname=${DB} | ${resticStdinArgs(limitCache, `${APP}/postgres-${DB}.pgdump`, 'postgres', DB, '20261126T000000Z-lim0')}`, env);
      const b = await sh(`${RESTIC} --json --cache-dir ${q(limitCache)} backup --host ${INSTANCE} --tag wild-backup ${q(s.pvcDir)}`, env);
      return a.ms + b.ms;
    };
    const baselineMs = await limitBackup();
    const oursRepo = path.join(reposDir, `ours-${RUNS}`);
    const seedRepo = path.join(reposDir, `seed-${RUNS}`);
    const before = { ours: await duBytes(oursRepo), seed: await duBytes(seedRepo), limit: await duBytes(limitRepo) };
    const change = changeFiles(s.pvcDir, CHANGE, 42);
    say(`incremental: rewrote ${change.files} of ${change.of} files (${fmtBytes(change.bytes)}, ${change.large} large)`);
    await syncDisk();
    const o2 = await runOurs(s, oursRepo, { init: false });
    await syncDisk();
    const sd2 = await runSeed(s, seedRepo, path.join(cachesDir, `seed-${RUNS}`), path.join(root, 'staging'));
    await syncDisk();
    const limitMs = await limitBackup();
    res.incremental = {
      change,
      ours: { before: before.ours, after: o2.repoBytes, ms: o2.op.clientMs, artifacts: o2.artifacts, mem: o2.mem, bootKiB: o2.bootKiB },
      seed: { before: before.seed, after: sd2.repoBytes, ms: sd2.totalMs, stagingBytes: sd2.stagingBytes },
      limit: { before: before.limit, after: await duBytes(limitRepo), ms: limitMs, baselineMs },
    };
    const inc = res.incremental;
    say(`incremental growth: ours ${fmtBytes(inc.ours.after - inc.ours.before)}, seed ${fmtBytes(inc.seed.after - inc.seed.before)}, file by file ${fmtBytes(inc.limit.after - inc.limit.before)}`);
    for (const d of [oursRepo, seedRepo, limitRepo]) rmSync(d, { recursive: true, force: true });
    rmSync(cachesDir, { recursive: true, force: true });
    mkdirSync(cachesDir);

    if (RSS_SIZE > 0) {
      say(`RSS at ${fmtBytes(RSS_SIZE)}: growing the database and the volume`);
      const v2 = growVolume(s.pvcDir, RSS_SIZE);
      const db2 = await growPostgres(pg, DB, DB, RSS_SIZE, say);
      const volumeBytes = await duBytes(s.pvcDir);
      const files = Number((await run('bash', ['-c', `find ${q(s.pvcDir)} -type f | wc -l`])).stdout.trim());
      say(`  volume ${fmtBytes(volumeBytes)} (${files} files; ${v2.largeFiles} large), database ${fmtBytes(db2.dbBytes)} (${db2.rows} rows)`);
      await syncDisk();
      const big = await runOurs(s, path.join(reposDir, 'ours-big'), { init: true });
      say(`  ours at ${fmtBytes(RSS_SIZE)}: ${secs(big.op.clientMs)}, server peak RSS ${mib(big.mem.vmHwmKiB)}, restic peak ${mib(big.mem.resticPeakKiB)}`);
      res.big = { size: RSS_SIZE, db: db2, volumeBytes, files, ours: big };
      rmSync(path.join(reposDir, 'ours-big'), { recursive: true, force: true });
    }
  } finally {
    await sim.stop();
    if (!flags.keep) rmSync(root, { recursive: true, force: true });
    else say(`kept ${root}`);
  }
  res.totalSeconds = (performance.now() - t00) / 1000;
  const report = render(res as Results);
  console.log('\n' + report);
  if (OUT) {
    writeFileSync(OUT, report);
    say(`written to ${OUT}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const MODE_TEXT: Record<ServerMode, string> = {
  dist: 'the project build, dist/',
  bundle: 'compiled by the benchmark with esbuild (src/main.ts bundled, packages external), as there is no dist/main.js',
  tsx: 'TypeScript through tsx, forced with --tsx: the transpiler adds ~90 MB of RSS',
};

/** Snapshots our last timed backup wrote (its artifacts and the manifest). */
const lastOursArtifacts = (r: Results): number => r.ours[r.ours.length - 1]!.artifacts.length + 1;


function render(r: Results): string {
  const argv = process.argv.slice(2);
  const cmd = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const oursMs = r.ours.map((o) => o.op.clientMs);
  const oursOpMs = r.ours.map((o) => o.opMs);
  const directMs = r.direct.map((d) => d.totalMs);
  const seedMs = r.seed.map((d) => d.totalMs);
  const ratio = median(oursMs) / median(directMs);
  const bigPeak = r.big ? MB(r.big.ours.mem.vmHwmKiB) : undefined;
  const inc = r.incremental;
  const growth = inc ? { ours: inc.ours.after - inc.ours.before, seed: inc.seed.after - inc.seed.before, limit: inc.limit.after - inc.limit.before } : undefined;
  const dump = median(r.direct.map((d) => d.dumpBytes));
  const tar = median(r.direct.map((d) => d.tarBytes));
  const L: string[] = [];
  L.push('# Backup benchmark: one app, a PostgreSQL database and a PVC', '');
  L.push(`Measured ${r.facts.date} at commit ${r.facts.commit}, in one run, on one machine, side by side.`, '');
  L.push('## Command', '', '```sh', cmd, '```', '');
  L.push('## Machine and tools', '');
  L.push('| | |', '|---|---|');
  for (const k of ['os', 'cpu', 'memory', 'tmp', 'node', 'restic'] as const) L.push(`| ${k} | ${r.facts[k]} |`);
  L.push(`| server | \`${r.serverCommand}\` (${MODE_TEXT[r.mode]}) |`);
  L.push('');
  L.push('## Data', '');
  L.push(`The sim's \`${APP}\` app (PostgreSQL database \`${DB}\`, PVC \`${PVC}\`: ${APPS[APP]!.note}), seeded by bench/lib-data.ts:`, '');
  L.push(`- database: ${fmtBytes(r.db.dbBytes)} (pg_database_size), ${r.db.rows.toLocaleString('en')} text rows of ~1 KiB; \`pg_dump --format=custom --compress=0\` is ${fmtBytes(dump)};`);
  L.push(`- PVC: ${fmtBytes(r.volume.bytes)} in ${r.volume.files.toLocaleString('en')} files: ${r.volume.smallFiles.toLocaleString('en')} photos of 16-240 KiB (${fmtBytes(r.volume.smallBytes)}), ${r.volume.largeFiles} videos of ${fmtBytes(r.volume.largeFileBytes)}, random bytes; its tar is ${fmtBytes(tar)}.`);
  L.push('');
  L.push('## Wall time (fresh repository each run)', '');
  L.push(`${r.ours.length} runs each, the order rotated each round, \`sync\` before each; medians.`, '');
  L.push('| path | what runs | runs | median |', '|---|---|---|---|');
  L.push(`| direct | \`pg_dump --format=custom --compress=0 … \\| restic backup --stdin …\` | ${list(r.direct.map((d) => d.pgMs), secs)} | ${secs(median(r.direct.map((d) => d.pgMs)))} |`);
  L.push(`| direct | \`tar -c -f - -C <pvc> . \\| restic backup --stdin …\` | ${list(r.direct.map((d) => d.tarMs), secs)} | ${secs(median(r.direct.map((d) => d.tarMs)))} |`);
  L.push(`| **direct, both** | the sum of the two pipelines | ${list(directMs, secs)} | **${secs(median(directMs))}** |`);
  const togetherMs = r.together.map((d) => d.totalMs);
  L.push(`| **direct, side by side** | the two pipelines started together in the shell, wall time until both ended | ${list(togetherMs, secs)} | **${secs(median(togetherMs))}** |`);
  const kubeMs = r.kubectl.map((d) => d.totalMs);
  L.push(`| via kubectl | \`kubectl exec <postgres pod> -- pg_dump … \\| restic backup --stdin …\` | ${list(r.kubectl.map((d) => d.pgMs), secs)} | ${secs(median(r.kubectl.map((d) => d.pgMs)))} |`);
  L.push(`| via kubectl | \`kubectl exec <${APP} pod> -- tar -c … \\| restic backup --stdin …\` | ${list(r.kubectl.map((d) => d.tarMs), secs)} | ${secs(median(r.kubectl.map((d) => d.tarMs)))} |`);
  L.push(`| **via kubectl, both** | the same two pipelines through the simulated cluster's exec (Debian's kubectl as the client) | ${list(kubeMs, secs)} | **${secs(median(kubeMs))}** |`);
  L.push(`| **ours** | \`backupApp\` over HTTP, mutation sent to operation seen SUCCEEDED (its subscription) | ${list(oursMs, secs)} | **${secs(median(oursMs))}** |`);
  L.push(`| ours | the operation's own startedAt → finishedAt | ${list(oursOpMs, secs)} | ${secs(median(oursOpMs))} |`);
  L.push(`| ours | of which streaming: the first artifact started to the manifest (all ${lastOursArtifacts(r) - 1} artifacts, up to 3 at once) | ${list(r.ours.map(streamingMs), secs)} | ${secs(median(r.ours.map(streamingMs)))} |`);
  L.push(`| seed | \`pg_dump --format=custom\` (compressed) to a file | ${list(r.seed.map((d) => d.dumpMs), secs)} | ${secs(median(r.seed.map((d) => d.dumpMs)))} |`);
  L.push(`| seed | \`tar -czf\` of the PVC into the staging dir | ${list(r.seed.map((d) => d.tarMs), secs)} | ${secs(median(r.seed.map((d) => d.tarMs)))} |`);
  L.push(`| seed | \`restic backup <staging dir>\` | ${list(r.seed.map((d) => d.resticMs), secs)} | ${secs(median(r.seed.map((d) => d.resticMs)))} |`);
  L.push(`| **seed, all** | the three, staging ${fmtBytes(median(r.seed.map((d) => d.stagingBytes)))} on local disk | ${list(seedMs, secs)} | **${secs(median(seedMs))}** |`);
  L.push('');
  L.push(`- ours / direct (one pipeline after the other, the issue's baseline) = **${ratio.toFixed(3)}×** (target ≤ ${TARGET_TIME_RATIO}×): ${pass(ratio <= TARGET_TIME_RATIO)}.`);
  const ratioTogether = median(oursMs) / median(togetherMs);
  L.push(`- ours / direct side by side (the same two pipelines run at once, as ours runs its artifacts) = **${ratioTogether.toFixed(3)}×**: ${ratioTogether <= TARGET_TIME_RATIO ? `also within ${TARGET_TIME_RATIO}×` : `over ${TARGET_TIME_RATIO}× against this stricter baseline`}.`);
  const listing = ', and one `restic snapshots` listing after it, which the operation does not wait for (the full ids come from the names of the copies in restic\'s cache)';
  L.push(`- one restic process costs ${secs(r.resticFixedMs)} of wall time before it reads a byte (scrypt key derivation, index); ours starts ${lastOursArtifacts(r)} before the operation succeeds (a snapshot each, the manifest included)${listing}; the direct path 2; ours overlaps the small ones with the big streams.`);
  L.push(`- via kubectl / direct = ${(median(kubeMs) / median(directMs)).toFixed(3)}×: what the exec hop of the simulated cluster costs on this machine without our server; ours / via kubectl = ${(median(oursMs) / median(kubeMs)).toFixed(3)}×.`);
  L.push(`- ours' streaming alone / direct = ${(median(r.ours.map(streamingMs)) / median(directMs)).toFixed(3)}×; the rest is planning, estimates and the manifest (below).`);
  L.push(`- seed / direct = ${(median(seedMs) / median(directMs)).toFixed(2)}×; ours / seed = ${(median(oursMs) / median(seedMs)).toFixed(2)}×.`);
  L.push(`- throughput of ours: ${(((dump + tar) / 1024 / 1024) / (median(oursMs) / 1000)).toFixed(0)} MiB/s of dump and tar; direct: ${(((dump + tar) / 1024 / 1024) / (median(directMs) / 1000)).toFixed(0)} MiB/s.`);
  L.push('');
  const lastOurs = r.ours[r.ours.length - 1]!;
  L.push('Where our operation spends its time (last run; phases as its subscription delivered them, seconds after the mutation):', '');
  L.push('| phase | from | to | seconds |', '|---|---|---|---|');
  const ph = lastOurs.op.phases;
  ph.forEach((p, i) => {
    const end = i + 1 < ph.length ? ph[i + 1]!.atMs : lastOurs.op.clientMs;
    L.push(`| ${p.phase} | ${(p.atMs / 1000).toFixed(1)} | ${(end / 1000).toFixed(1)} | ${((end - p.atMs) / 1000).toFixed(1)} |`);
  });
  L.push('');
  L.push('## CPU seconds spent per backup (mean of the runs)', '');
  L.push('From /proc/<pid>/stat (utime+stime, and cutime+cstime of reaped children) of the server, the benchmark process (which hosts the simulated cluster) and the sim\'s PostgreSQL postmaster, taken around each backup. The machine has 2 cores, so the wall time cannot go below CPU seconds / 2.', '');
  const cpuRows: Array<[string, CpuParts[], number[]]> = [
    ['direct', r.direct.map((d) => d.cpu), directMs], ['direct, side by side', r.together.map((d) => d.cpu), togetherMs], ['via kubectl', r.kubectl.map((d) => d.cpu), kubeMs],
    ['ours', r.ours.map((o) => o.cpu), oursMs], ['seed', r.seed.map((d) => d.cpu), seedMs],
  ];
  L.push('| path | CPU total | of which | wall (median) | load average before each run |', '|---|---|---|---|---|');
  const loads: Record<string, number[]> = { direct: r.direct.map((d) => d.load), 'direct, side by side': r.together.map((d) => d.load), 'via kubectl': r.kubectl.map((d) => d.load), ours: r.ours.map((o) => o.load), seed: r.seed.map((d) => d.load) };
  for (const [name, cs, walls] of cpuRows) {
    if (cs.length === 0) continue;
    const keys = Object.keys(cs[0]!);
    const mean = (k: string): number => cs.reduce((a, c) => a + (c[k] ?? 0), 0) / cs.length;
    const total = cs.reduce((a, c) => a + cpuTotal(c), 0) / cs.length;
    L.push(`| ${name} | ${total.toFixed(1)} s | ${keys.map((k) => `${k} ${mean(k).toFixed(1)} s`).join('; ')} | ${secs(median(walls))} | ${loads[name]!.map((x) => x.toFixed(2)).join(', ')} |`);
  }
  L.push('');
  L.push('The load averages include work of others on this shared machine (other test suites may run at the same time); the rotation of the order spreads it over all paths.', '');
  L.push('## Memory of the server (its own process; VmHWM from /proc/<pid>/status; restic children sampled once a second)', '');
  L.push('| data | runs | peak RSS (VmHWM) per run | RSS after start-up | RSS before the backup (after init) | restic child peak | target |', '|---|---|---|---|---|---|---|');
  const mems = [...r.ours.map((o) => o.mem), ...(inc ? [inc.ours.mem] : [])];
  const mb0 = (n: number): string => `${n.toFixed(0)} MB`;
  const boots = [...r.ours.map((o) => o.bootKiB), ...(inc ? [inc.ours.bootKiB] : [])];
  L.push(`| ${fmtBytes(r.db.dbBytes)} database + ${fmtBytes(r.volume.bytes)} PVC (${r.ours.length} timed runs${inc ? ' + the incremental one' : ''}) | ${mems.length} | ${list(mems.map((m) => MB(m.vmHwmKiB)), mb0)} | ${list(boots.map(MB), mb0)} | ${list(mems.map((m) => MB(m.startKiB)), mb0)} | ${list(mems.map((m) => MB(m.resticPeakKiB)), mb0)} | < ${TARGET_RSS_MB} MB: ${pass(Math.max(...mems.map((m) => MB(m.vmHwmKiB))) < TARGET_RSS_MB)} |`);
  if (r.big && bigPeak !== undefined) {
    L.push(`| ${fmtBytes(r.big.db.dbBytes)} database + ${fmtBytes(r.big.volumeBytes)} PVC (${r.big.files.toLocaleString('en')} files) | 1 | ${bigPeak.toFixed(0)} MB | ${MB(r.big.ours.bootKiB).toFixed(0)} MB | ${MB(r.big.ours.mem.startKiB).toFixed(0)} MB | ${MB(r.big.ours.mem.resticPeakKiB).toFixed(0)} MB | < ${TARGET_RSS_MB} MB: ${pass(bigPeak < TARGET_RSS_MB)} |`);
    L.push('');
    const b = r.big.ours;
    L.push(`At ${fmtBytes(r.big.size)} the backup took ${secs(b.op.clientMs)} (${(((r.big.db.dbBytes + r.big.volumeBytes) / 1024 / 1024) / (b.op.clientMs / 1000)).toFixed(0)} MiB/s of database and volume; streaming ${secs(streamingMs(b))}, estimating ${secs(b.phaseMs.estimating ?? 0)}), CPU ${cpuText(b.cpu)} (${Object.entries(b.cpu).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join('; ')}), load average ${b.load.toFixed(2)} before.`);
  }
  L.push('');
  L.push('MB = 10^6 bytes. The server is started fresh for each run, so VmHWM is that run\'s peak (start-up included).', '');
  if (inc && growth) {
    L.push(`## Incremental cost: ${inc.change.files} of ${inc.change.of.toLocaleString('en')} PVC files rewritten (${(CHANGE * 100).toFixed(0)}%, ${fmtBytes(inc.change.bytes)})`, '');
    L.push('A second backup of the whole app into the repository of the first; growth = `du -sb` of the repository after − before. The repositories are in restic repository format 2, compressed (zstd, `auto`): growth is what is stored after compression and deduplication.', '');
    L.push('| path | second backup | repository before | after | growth | growth / changed bytes |', '|---|---|---|---|---|---|');
    const row = (name: string, g: { before: number; after: number; ms: number }): string =>
      `| ${name} | ${secs(g.ms)} | ${fmtBytes(g.before)} | ${fmtBytes(g.after)} | **${fmtBytes(g.after - g.before)}** | ${((g.after - g.before) / inc.change.bytes).toFixed(1)}× |`;
    L.push(row('ours (dump and tar streamed into `restic backup --stdin`)', inc.ours));
    L.push(row('seed (compressed dump + tar.gz staged, `restic backup <dir>`)', inc.seed));
    L.push(row('limit (dump streamed, `restic backup <pvc dir>` file by file)', inc.limit));
    L.push('');
    const g = growth.ours / growth.seed;
    L.push(`- ours / seed = **${g.toFixed(3)}** (target < ${TARGET_GROWTH_RATIO}): ${pass(g < TARGET_GROWTH_RATIO)}; ours / limit = ${(growth.ours / growth.limit).toFixed(1)}×.`);
    L.push('- what our second backup added, per artifact (its log):', '');
    for (const a of inc.ours.artifacts) L.push(`  - ${a}`);
    L.push('');
  }
  L.push('## What is compared', '');
  L.push('- **ours** is the whole `backupApp` operation through the real server (a separate `node` process, talking to the simulated cluster over the Kubernetes API and exec WebSockets): planning, size estimates (database size, `du`), the database dump with its row counts taken in the snapshot it dumps, the roles dump, the PVCs of the app, the app config and the manifest, each its own `restic backup --stdin`, and the snapshot-id lookups restic 0.14 needs. **direct** is only the two big pipelines, run locally; so ours carries every fixed cost the direct line does not.');
  L.push('- The simulated cluster (API server, TLS, exec framing) runs in the benchmark process on the same two cores: on a real cluster the kubelet and API server do that work on other machines. The direct and seed paths run `pg_dump` and `tar` locally with no exec hop at all; **via kubectl** runs the direct pipelines through the same simulated exec with Debian\'s kubectl, to show what the hop costs here without our server.');
  L.push('- Same restic binary and options for all: `--json`, a fresh `--cache-dir`, `RESTIC_PROGRESS_FPS=2`, the same host and tags; a fresh local repository each run; the seed path reads its two files from a staging directory on the same disk.');
  L.push('- The seed path dumps with pg_dump\'s default compression (the seed dumps "in compressed custom format") and tars with gzip, as the seed did.');
  L.push('');
  L.push(`Total benchmark time: ${(r.totalSeconds / 60).toFixed(1)} min.`, '');
  return L.join('\n');
}

await main();
