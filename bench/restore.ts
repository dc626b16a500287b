// Benchmark of an app restore (`npm run bench`, after the backup benchmark; alone: `npm run
// bench:restore`): the sim's immich app with a ~1 GiB PostgreSQL database and a ~1 GiB PVC
// (thousands of small files, a few large ones; bench/lib-data.ts), backed up once through the
// server, then restored side by side on the same machine in one run, the order rotated each round:
//
//   ours    Wild Backup's restoreBackup over GraphQL (safetyBackup: false, the like-for-like
//           figure), the server in its own process (its RSS sampled), mutation to SUCCEEDED; and
//           once with the default safety backup on, as an extra line;
//   direct  `restic dump <snap> <file> | pg_restore` into a fresh database on the same PostgreSQL
//           server, and `restic dump <snap> <file> | tar -x` into an empty directory, in a shell;
//   kubectl the direct pipelines through the simulated cluster's exec with Debian's kubectl
//           (`restic dump … | kubectl exec -i <pod> -- pg_restore …`): the cost of the exec hop alone.
//
// Usage: node --import tsx bench/restore.ts [--size 1G] [--runs 3] [--quick] [--tsx | --bundle] [--keep]
//        [--restore-out FILE] [--no-safety] [--no-kubectl]   (--rss-size, --change and --out are accepted and ignored,
//        so `npm run bench -- …` can hand the backup benchmark's flags to both)
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startSimCluster, type SimCluster } from '../src/sim/fixture.js';
import { growPostgres, growVolume, type DbSeedResult, type VolumePlan } from './lib-data.js';
import { childrenNamed, cpuTimes, duBytes, fmtBytes, loadAverage, median, mib, parseSize, q, run, sampleMemory, sh, vmRssKiB, type MemoryPeak } from './lib-proc.js';
import { backupApp, configureRepository, restoreBackup, serverArgv, serverMode, startServer, type OperationDone, type ServerMode } from './lib-server.js';
import { MB, facts, findPod, list, pass, phaseDurations, secs, type PodRef } from './lib-bench.js';

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string' },
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
    bundle: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'no-safety': { type: 'boolean', default: false },
    'no-kubectl': { type: 'boolean', default: false },
    // The backup benchmark's own options (npm run bench passes the same argv to both).
    'rss-size': { type: 'string' },
    change: { type: 'string' },
    out: { type: 'string' }, // the backup report's file: this one's is --restore-out
    'restore-out': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log('usage: node --import tsx bench/restore.ts [--size 1G] [--runs 3] [--quick] [--tsx | --bundle] [--keep] [--restore-out FILE] [--no-safety] [--no-kubectl]');
  process.exit(0);
}
const SIZE = parseSize(flags.size ?? (flags.quick ? '64M' : '1G'));
const RUNS = Number(flags.runs ?? (flags.quick ? 2 : 3));
// --out names the backup benchmark's report when both run from npm run bench: this one has --restore-out.
const OUT = flags['restore-out'] ?? (flags.quick ? undefined : 'docs/benchmarks/restore.md');
// --bundle: the current src/ compiled with esbuild even when a dist/ exists (it may be stale).
const MODE: ServerMode = flags.bundle && !flags.tsx ? 'bundle' : serverMode({ tsx: flags.tsx! });
const INSTANCE = 'test';
const APP = 'immich';
const DB = 'immich';
const PVC = 'immich-pvc';
const TOKEN = 'bench-admin-token-0123456789abcdef';
const PASSWORD = 'bench-repository-password';
const RESTIC = 'restic';
const TARGET_TIME_RATIO = 1.2;
const TARGET_RSS_MB = 200;

const t00 = performance.now();
const say = (s: string): void => console.log(`[${((performance.now() - t00) / 1000).toFixed(0).padStart(4)} s] ${s}`);

const root = mkdtempSync(path.join(os.tmpdir(), 'wild-bench-restore-'));
chmodSync(root, 0o755); // the sim's PostgreSQL runs as the postgres user and must reach its socket dir
const REPO = path.join(root, 'repository');
const DIRECT_CACHE = path.join(root, 'restic-cache-direct');
// WILD_BENCH_PROFILE=<dir>: the server writes a V8 CPU profile there (where its CPU goes).
const SERVER_ARGV = [...(process.env.WILD_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WILD_BENCH_PROFILE}`] : []), ...serverArgv(MODE, root)];


// ---------------------------------------------------------------------------------------------
// The sim, and who spends the CPU.

interface Sim {
  sim: SimCluster;
  pvcDir: string;
  pgEnv: Record<string, string>;
  postmaster: number;
}



type CpuParts = Record<string, number>;
const SIM_CPU = 'benchmark process (the simulated cluster: API server, exec framing, TLS)';

/** CPU seconds spent while a path runs, by who spent them (deltas of /proc/<pid>/stat and process.cpuUsage). */
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
        [SIM_CPU]: (b.user + b.system) / 1e6,
      };
      if (serverPid && sv0) {
        const sv1 = cpuTimes(serverPid);
        parts['our server (node)'] = sv1.self - sv0.self;
        parts['restic (our server\'s children)'] = sv1.children - sv0.children;
        parts['pod commands (pg_restore, tar, psql, sh)'] = bc;
      } else {
        parts['shell pipelines (restic, pg_restore, tar, kubectl)'] = bc;
      }
      return parts;
    },
  };
}
const cpuTotal = (c: CpuParts): number => Object.values(c).reduce((a, b) => a + b, 0);

function resticEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', RESTIC_REPOSITORY: REPO, RESTIC_PASSWORD: PASSWORD, ...extra };
}

const syncDisk = (): Promise<unknown> => run('sync', []);

// ---------------------------------------------------------------------------------------------
// The paths.

interface Artifact { snapshotId: string; file: string; bytes: number }
interface Artifacts { dump: Artifact; tar: Artifact }

/** The backup's two big artifacts, from restic's own listing (the tags our backup writes). */
async function artifactsOf(backupId: string): Promise<Artifacts> {
  const r = await run(RESTIC, ['--json', '--no-lock', '--cache-dir', DIRECT_CACHE, 'snapshots', '--tag', `backup:${backupId}`], { env: resticEnv() });
  const snaps = JSON.parse(r.stdout) as Array<{ id: string; paths: string[]; tags?: string[] }>;
  const find = (tag: string): { id: string; file: string } => {
    const s = snaps.find((x) => x.tags?.includes(tag));
    if (!s) throw new Error(`backup ${backupId} has no snapshot tagged ${tag}`);
    return { id: s.id, file: s.paths[0]! };
  };
  const size = async (a: { id: string; file: string }): Promise<Artifact> => {
    const ls = await run(RESTIC, ['--json', '--no-lock', '--cache-dir', DIRECT_CACHE, 'ls', a.id], { env: resticEnv() });
    const node = ls.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { path?: string; size?: number }).find((n) => n.path === a.file);
    return { snapshotId: a.id, file: a.file, bytes: node?.size ?? 0 };
  };
  return { dump: await size(find(`artifact:postgres:${DB}`)), tar: await size(find(`artifact:pvc:${PVC}`)) };
}

interface DirectRun { pgMs: number; tarMs: number; totalMs: number; cpu: CpuParts; load: number }

const resticDump = (a: Artifact): string => `${RESTIC} --cache-dir ${q(DIRECT_CACHE)} dump ${a.snapshotId} ${q(a.file)}`;
/** The options our restorer gives pg_restore (src/plugins/databases/postgres-restore.ts), in place. */
const pgRestore = (db: string): string => `pg_restore -U postgres --dbname=${db} --exit-on-error --no-password`;
/** And tar (src/plugins/volumes/pvc-restore.ts). */
const tarX = (dir: string): string => `tar -x -p -f - -C ${q(dir)}`;

/**
 * The two pipelines in a shell: `restic dump | pg_restore` into a fresh database (created in the
 * timed part, as ours creates its side database), `restic dump | tar -x` into an empty directory;
 * locally, or through the simulated cluster's exec with kubectl.
 */
async function runDirect(s: Sim, a: Artifacts, via: 'local' | 'kubectl', tag: string, together = false): Promise<DirectRun> {
  const env = resticEnv(s.pgEnv);
  const db = `bench_${tag}`;
  const kc = (ns: string, p: PodRef): string => `kubectl --kubeconfig ${q(s.sim.kubeconfigPath)} exec -i -n ${ns} ${p.pod} -c ${p.container} -- `;
  let dir: string;
  let tarCmd: string;
  let pgCmd: string;
  const create = `psql -U postgres -X -q -v ON_ERROR_STOP=1 --dbname=postgres -c ${q(`create database ${db} owner ${DB}`)}`;
  if (via === 'local') {
    dir = path.join(root, `extract-${tag}`);
    tarCmd = tarX(dir);
    pgCmd = `${create} && ${resticDump(a.dump)} | ${pgRestore(db)}`;
  } else {
    const pgPod = findPod(s.sim, 'postgres');
    const appPod = findPod(s.sim, APP, PVC);
    // On the volume itself (the pod sees only its mounts); removed again after the run.
    dir = path.join(s.pvcDir, `.bench-extract-${tag}`);
    tarCmd = `${kc(APP, appPod)}${tarX(path.posix.join(appPod.mountPath!, `.bench-extract-${tag}`))}`;
    pgCmd = `${kc('postgres', pgPod)}${create} && ${resticDump(a.dump)} | ${kc('postgres', pgPod)}${pgRestore(db)}`;
  }
  mkdirSync(dir, { recursive: true });
  try {
    await syncDisk();
    const load = loadAverage();
    const cpu = cpuMeter(s);
    const tarLine = `${resticDump(a.tar)} | ${tarCmd}`;
    const t0 = performance.now();
    // One after the other (the issue's baseline), or both at once (as ours restores its artifacts).
    const [pg, tar] = together ? await Promise.all([sh(pgCmd, env), sh(tarLine, env)]) : [await sh(pgCmd, env), await sh(tarLine, env)];
    const wallMs = performance.now() - t0;
    const cpuParts = cpu.stop();
    return { pgMs: pg.ms, tarMs: tar.ms, totalMs: together ? wallMs : pg.ms + tar.ms, cpu: cpuParts, load };
  } finally {
    await sh(`psql -U postgres -X -q --dbname=postgres -c ${q(`drop database if exists ${db}`)}`, env).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface OursRun {
  op: OperationDone; mem: MemoryPeak; cpu: CpuParts; load: number; bootKiB: number; safety: boolean;
  phaseMs: Record<string, number>;
}


/** The safety backup: from its phase to the first phase of the restore proper (the backup reports its own phases in between). */
function safetyMs(o: OursRun): number {
  const ph = o.op.phases;
  // The safety backup's own phases (estimating, backing up …) follow 'safety backup' at once, which
  // the subscription (a few events a second) may never show: it runs from the operation's start to quiescing.
  const i = Math.max(0, ph.findIndex((p) => p.phase === 'safety backup'));
  const end = ph.slice(i + 1).find((p) => p.phase === 'quiescing' || p.phase.startsWith('restoring '));
  return (end?.atMs ?? o.op.clientMs) - (ph[i]?.atMs ?? 0);
}

/**
 * The data artifacts' restore (what the direct pipelines do, side by side in ours, each with its
 * side check): from the first `restoring …` phase to `swapping in`. The subscription sends a few
 * events a second, so a short `swapping in` may never show: then to the first phase after the
 * restoring ones (`cleaning up`), which adds the swap's fraction of a second. 0 when no
 * `restoring …` phase showed at all.
 */
const bigPhasesMs = (o: OursRun): number => {
  const ph = o.op.phases;
  const first = ph.findIndex((p) => p.phase.startsWith('restoring '));
  const end = first < 0 ? undefined : ph.slice(first).find((p) => !p.phase.startsWith('restoring '));
  return end ? end.atMs - ph[first]!.atMs : 0;
};

/** restoreBackup through our server, started fresh for the run (its peak RSS is the run's). */
async function runOurs(s: Sim, backupId: string, safety: boolean): Promise<OursRun> {
  const server = await startServer({ dataDir: s.sim.dataDir, token: TOKEN, mode: MODE, argv: SERVER_ARGV, logFile: path.join(root, 'server.log') });
  try {
    const bootKiB = vmRssKiB(server.pid);
    // As a user picks the backup first: the server lists the app's backups (its catalog loads:
    // `restic snapshots` and the manifests) before the timed mutation.
    await server.gql(`query($i: String!, $a: String!) { instance(name: $i) { app(name: $a) { latestBackup { id } } } }`, { i: INSTANCE, a: APP });
    await syncDisk();
    const load = loadAverage();
    const sampler = sampleMemory(server.pid);
    const cpu = cpuMeter(s, server.pid);
    const op = await restoreBackup(server, backupId, { safetyBackup: safety });
    const mem = sampler.stop();
    const cpuParts = cpu.stop();
    if (op.status !== 'SUCCEEDED') throw new Error(`restoreBackup ${op.status}: ${JSON.stringify(op.error)}\n${op.log.join('\n')}`);
    return { op, mem, cpu: cpuParts, load, bootKiB, safety, phaseMs: phaseDurations(op) };
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Main.

interface Results {
  facts: Record<string, string>;
  serverCommand: string;
  db: DbSeedResult;
  volume: VolumePlan & { bytes: number; files: number };
  backupMs: number;
  artifacts: Artifacts;
  ours: OursRun[];
  safety?: OursRun;
  direct: DirectRun[];
  /** The two direct pipelines at once. */
  together: DirectRun[];
  kubectl: DirectRun[];
  kubectlError?: string;
  resticFixedMs: number;
  totalSeconds: number;
}

async function main(): Promise<void> {
  const f = facts({ restic: [RESTIC, 'version'], pg_restore: ['pg_restore', '--version'], tar: ['tar', '--version'] });
  say(`benchmark of restoreBackup: size ${fmtBytes(SIZE)} (database and PVC each), ${RUNS} runs; server: ${MODE}`);
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
  const s: Sim = { sim, pvcDir: sim.pvcDir(APP, PVC), pgEnv: pg.execEnv(), postmaster };
  const res: Partial<Results> & { ours: OursRun[]; direct: DirectRun[]; together: DirectRun[]; kubectl: DirectRun[] } = { facts: f, ours: [], direct: [], together: [], kubectl: [] };
  try {
    say(`seeding: ${fmtBytes(SIZE)} of rows into postgres ${DB}, ${fmtBytes(SIZE)} of files into pvc ${PVC}`);
    const t0 = performance.now();
    const vol = growVolume(s.pvcDir, SIZE);
    say(`  volume: ${vol.smallFiles} small files (${fmtBytes(vol.smallBytes)}), ${vol.largeFiles} × ${fmtBytes(vol.largeFileBytes)} in ${secs(performance.now() - t0)}`);
    res.db = await growPostgres(pg, DB, DB, SIZE, say);
    say(`  database: ${res.db.rows} rows, ${fmtBytes(res.db.dbBytes)} in ${res.db.seconds.toFixed(1)} s`);
    const volFiles = Number((await run('bash', ['-c', `find ${q(s.pvcDir)} -type f | wc -l`])).stdout.trim());
    res.volume = { ...vol, bytes: await duBytes(s.pvcDir), files: volFiles };

    say('backing up the app through the server (the backup every path restores)');
    const setup = await startServer({ dataDir: sim.dataDir, token: TOKEN, mode: MODE, argv: SERVER_ARGV, logFile: path.join(root, 'server.log') });
    let backupId: string;
    try {
      await configureRepository(setup, INSTANCE, REPO, PASSWORD);
      const b = await backupApp(setup, INSTANCE, APP);
      if (b.status !== 'SUCCEEDED' || !b.backupId) throw new Error(`backupApp ${b.status}: ${JSON.stringify(b.error)}`);
      backupId = b.backupId;
      res.backupMs = b.clientMs;
      say(`  backup ${backupId} in ${secs(b.clientMs)}`);
    } finally {
      await setup.stop();
    }
    res.serverCommand = `node ${SERVER_ARGV.join(' ').replaceAll(root, '<work>')} serve --data <work>/sim/wild-central --port 0`;
    res.artifacts = await artifactsOf(backupId);
    say(`  dump ${res.artifacts.dump.file} ${fmtBytes(res.artifacts.dump.bytes)}, tar ${res.artifacts.tar.file} ${fmtBytes(res.artifacts.tar.bytes)}`);

    // Warm the repository's files in the page cache the same way for everyone.
    say('warming up (untimed restic dump of both to /dev/null)');
    await sh(`${resticDump(res.artifacts.dump)} > /dev/null; ${resticDump(res.artifacts.tar)} > /dev/null`, resticEnv());

    const variants = (flags['no-kubectl'] ? ['ours', 'direct', 'together'] : ['ours', 'direct', 'together', 'kubectl']) as Array<'ours' | 'direct' | 'together' | 'kubectl'>;
    for (let r = 1; r <= RUNS; r++) {
      const order = variants.map((_, i) => variants[(i + r - 1) % variants.length]!);
      for (const v of order) {
        if (v === 'ours') {
          const o = await runOurs(s, backupId, false);
          res.ours.push(o);
          say(`run ${r} ours:    ${secs(o.op.clientMs)} (restoring the artifacts ${secs(bigPhasesMs(o))}), server peak RSS ${mib(o.mem.vmHwmKiB)}, restic peak ${mib(o.mem.resticPeakKiB)}, CPU ${cpuTotal(o.cpu).toFixed(1)} s, load ${o.load}`);
        } else if (v === 'kubectl' && res.kubectlError) {
          continue;
        } else {
          try {
            const d = await runDirect(s, res.artifacts, v === 'kubectl' ? 'kubectl' : 'local', `${v}_${r}`, v === 'together');
            res[v].push(d);
            say(`run ${r} ${v.padEnd(7)} ${secs(d.totalMs)} (dump|pg_restore ${secs(d.pgMs)}, dump|tar -x ${secs(d.tarMs)}), CPU ${cpuTotal(d.cpu).toFixed(1)} s, load ${d.load}`);
          } catch (err) {
            if (v !== 'kubectl') throw err;
            res.kubectlError = (err as Error).message.split('\n')[0]!.slice(0, 300);
            say(`run ${r} kubectl: failed, left out: ${res.kubectlError}`);
          }
        }
      }
    }
    if (!flags['no-safety']) {
      say('ours with the default safety backup (once)');
      const o = await runOurs(s, backupId, true);
      res.safety = o;
      say(`  ours + safety backup: ${secs(o.op.clientMs)} (safety backup ${secs(safetyMs(o))}), server peak RSS ${mib(o.mem.vmHwmKiB)}`);
    }

    // What one restic process costs before it moves a byte.
    const probes: number[] = [];
    for (let i = 0; i < 3; i++) probes.push((await run(RESTIC, ['--json', '--no-lock', '--cache-dir', DIRECT_CACHE, 'snapshots', '--tag', 'none'], { env: resticEnv() })).ms);
    res.resticFixedMs = median(probes);
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
  bundle: 'src/ compiled by the benchmark with esbuild (src/main.ts bundled, packages external): no dist/main.js, or --bundle',
  tsx: 'TypeScript through tsx, forced with --tsx: the transpiler adds ~90 MB of RSS',
};


function phaseTable(L: string[], o: OursRun): void {
  L.push('| phase | from | to | seconds |', '|---|---|---|---|');
  const ph = o.op.phases;
  ph.forEach((p, i) => {
    const end = i + 1 < ph.length ? ph[i + 1]!.atMs : o.op.clientMs;
    L.push(`| ${p.phase} | ${(p.atMs / 1000).toFixed(1)} | ${(end / 1000).toFixed(1)} | ${((end - p.atMs) / 1000).toFixed(1)} |`);
  });
  L.push('');
}

function render(r: Results): string {
  const argv = process.argv.slice(2);
  const cmd = `node --import tsx bench/restore.ts${argv.length ? ` ${argv.join(' ')}` : ''}   # the second half of npm run bench; alone: npm run bench:restore`;
  const oursMs = r.ours.map((o) => o.op.clientMs);
  const directMs = r.direct.map((d) => d.totalMs);
  const kubeMs = r.kubectl.map((d) => d.totalMs);
  const ratio = median(oursMs) / median(directMs);
  const last = r.ours[r.ours.length - 1]!;
  const peaks = [...r.ours, ...(r.safety ? [r.safety] : [])].map((o) => MB(o.mem.vmHwmKiB));
  const L: string[] = [];
  L.push('# Restore benchmark: one app, a PostgreSQL database and a PVC', '');
  L.push(`Measured ${r.facts.date} at commit ${r.facts.commit}, in one run, on one machine, side by side.`, '');
  L.push('## Command', '', '```sh', cmd, '```', '');
  L.push('## Machine and tools', '');
  L.push('| | |', '|---|---|');
  for (const k of ['os', 'cpu', 'memory', 'tmp', 'node', 'restic', 'pg_restore', 'tar'] as const) L.push(`| ${k} | ${r.facts[k]} |`);
  L.push(`| server | \`${r.serverCommand}\` (${MODE_TEXT[MODE]}) |`);
  L.push('');
  L.push('## Data', '');
  L.push(`The sim's \`immich\` app (PostgreSQL database \`${DB}\`, PVC \`${PVC}\`; its small \`immich-cache-pvc\`, the roles dump and the app config come along), seeded by bench/lib-data.ts as for the backup benchmark, then backed up once through the server (${secs(r.backupMs)}); every path restores that backup from the same local repository:`, '');
  L.push(`- database: ${fmtBytes(r.db.dbBytes)} (pg_database_size), ${r.db.rows.toLocaleString('en')} text rows of ~1 KiB, one table with a primary key; its dump (\`pg_dump --format=custom --compress=0\`) is ${fmtBytes(r.artifacts.dump.bytes)};`);
  L.push(`- PVC: ${fmtBytes(r.volume.bytes)} in ${r.volume.files.toLocaleString('en')} files: ${r.volume.smallFiles.toLocaleString('en')} photos of 16-240 KiB (${fmtBytes(r.volume.smallBytes)}), ${r.volume.largeFiles} videos of ${fmtBytes(r.volume.largeFileBytes)}, random bytes; its tar is ${fmtBytes(r.artifacts.tar.bytes)}.`);
  L.push('');
  L.push('## Wall time', '');
  L.push(`${r.ours.length} runs each, the order rotated each round, \`sync\` before each; medians.`, '');
  L.push('| path | what runs | runs | median |', '|---|---|---|---|');
  L.push(`| direct | \`createdb\` + \`restic dump <snap> ${r.artifacts.dump.file} \\| pg_restore --dbname=<fresh> --exit-on-error\` | ${list(r.direct.map((d) => d.pgMs), secs)} | ${secs(median(r.direct.map((d) => d.pgMs)))} |`);
  L.push(`| direct | \`restic dump <snap> ${r.artifacts.tar.file} \\| tar -x -p -f - -C <empty dir>\` | ${list(r.direct.map((d) => d.tarMs), secs)} | ${secs(median(r.direct.map((d) => d.tarMs)))} |`);
  L.push(`| **direct, both** | the sum of the two pipelines | ${list(directMs, secs)} | **${secs(median(directMs))}** |`);
  const togetherMs = r.together.map((d) => d.totalMs);
  if (togetherMs.length) L.push(`| **direct, side by side** | the two pipelines started together in the shell, wall time until both ended | ${list(togetherMs, secs)} | **${secs(median(togetherMs))}** |`);
  if (r.kubectl.length) {
    L.push(`| via kubectl | \`restic dump … \\| kubectl exec -i <postgres pod> -- pg_restore …\` | ${list(r.kubectl.map((d) => d.pgMs), secs)} | ${secs(median(r.kubectl.map((d) => d.pgMs)))} |`);
    L.push(`| via kubectl | \`restic dump … \\| kubectl exec -i <immich pod> -- tar -x …\` | ${list(r.kubectl.map((d) => d.tarMs), secs)} | ${secs(median(r.kubectl.map((d) => d.tarMs)))} |`);
    L.push(`| **via kubectl, both** | the same two pipelines through the simulated cluster's exec (Debian's kubectl as the client) | ${list(kubeMs, secs)} | **${secs(median(kubeMs))}** |`);
  } else if (r.kubectlError) {
    L.push(`| via kubectl | left out: ${r.kubectlError.replace(/\|/g, '\\|')} | | |`);
  }
  L.push(`| **ours** | \`restoreBackup(safetyBackup: false)\` over HTTP, mutation sent to operation seen SUCCEEDED (its subscription) | ${list(oursMs, secs)} | **${secs(median(oursMs))}** |`);
  L.push(`| ours | of which restoring the artifacts (side by side, up to 3 at once; first \`restoring …\` phase to \`swapping in\` or the next phase shown, side checks included) | ${list(r.ours.map(bigPhasesMs), secs)} | ${secs(median(r.ours.map(bigPhasesMs)))} |`);
  if (r.safety) L.push(`| ours, extra | \`restoreBackup\` with the default safety backup on (one run), of which the safety backup ${secs(safetyMs(r.safety))} | ${secs(r.safety.op.clientMs)} | ${secs(r.safety.op.clientMs)} |`);
  L.push('');
  L.push(`- the mutation was answered after ${list(r.ours.map((o) => o.op.phases[0]?.atMs ?? 0), secs)} (the subscription's first event; the server had listed the app's backups before, untimed, as a user picking the backup does).`);
  L.push(`- ours (safety backup off) / direct = **${ratio.toFixed(3)}×** (target ≤ ${TARGET_TIME_RATIO}×): ${pass(ratio <= TARGET_TIME_RATIO)}.`);
  if (r.together.length) {
    const rt = median(oursMs) / median(r.together.map((d) => d.totalMs));
    L.push(`- ours / direct side by side (the same two pipelines at once, as ours restores its artifacts) = **${rt.toFixed(3)}×**: ${rt <= TARGET_TIME_RATIO ? `also within ${TARGET_TIME_RATIO}×` : `over ${TARGET_TIME_RATIO}× against this stricter baseline`}.`);
  }
  L.push(`- restoring the artifacts alone (ours' phases) / direct = ${(median(r.ours.map(bigPhasesMs)) / median(directMs)).toFixed(3)}×: the streaming and the checks, side by side in ours and one after the other in the direct pipelines; the rest of ours is fixed costs (quiescing, swapping in, removing the old data, scaling back).`);
  if (r.kubectl.length) L.push(`- via kubectl / direct = ${(median(kubeMs) / median(directMs)).toFixed(3)}×: what the exec hop of the simulated cluster costs on this machine without our server; ours / via kubectl = ${(median(oursMs) / median(kubeMs)).toFixed(3)}×.`);
  if (r.safety) L.push(`- with the safety backup (the default) / direct = ${(r.safety.op.clientMs / median(directMs)).toFixed(2)}×: a restore then also backs up the current state first (a backup of the same data is the backup benchmark's figure).`);
  // Log lines carry a timestamp first.
  const restored = /restoring backup \S+ of \S+ into \S+: (.*)$/.exec(last.op.log.find((l) => l.includes(' restoring backup ') || l.startsWith('restoring backup ')) ?? '')?.[1]?.split(', ') ?? [];
  L.push(`- one restic process costs ${secs(r.resticFixedMs)} of wall time before it reads a byte (scrypt key derivation, index); ours runs one \`restic dump\` per artifact${restored.length ? ` (${restored.length}: ${restored.join(', ')})` : ''}, the direct path 2.`);
  L.push(`- throughput of ours: ${(((r.artifacts.dump.bytes + r.artifacts.tar.bytes) / 1024 / 1024) / (median(oursMs) / 1000)).toFixed(0)} MiB/s of dump and tar; direct: ${(((r.artifacts.dump.bytes + r.artifacts.tar.bytes) / 1024 / 1024) / (median(directMs) / 1000)).toFixed(0)} MiB/s.`);
  L.push('');
  L.push('Where our restore spends its time (last run, safety backup off; phases as its subscription delivered them, seconds after the mutation):', '');
  phaseTable(L, last);
  if (r.safety) {
    L.push('With the safety backup (the extra run):', '');
    phaseTable(L, r.safety);
  }
  L.push('## CPU seconds spent per restore (mean of the runs)', '');
  L.push('From /proc/<pid>/stat (utime+stime, and cutime+cstime of reaped children) of the server, the benchmark process (which hosts the simulated cluster; the pod commands are its children) and the sim\'s PostgreSQL postmaster (its backends: COPY, index builds), taken around each restore. The machine has 2 cores, so the wall time cannot go below CPU seconds / 2.', '');
  L.push('| path | CPU total | of which | wall (median) | load average before each run |', '|---|---|---|---|---|');
  const rows: Array<[string, Array<{ cpu: CpuParts; load: number }>, number[]]> = [
    ['direct', r.direct, directMs], ['direct, side by side', r.together, r.together.map((d) => d.totalMs)], ['via kubectl', r.kubectl, kubeMs], ['ours', r.ours, oursMs],
    ...(r.safety ? [['ours + safety backup', [r.safety], [r.safety.op.clientMs]] as [string, Array<{ cpu: CpuParts; load: number }>, number[]]] : []),
  ];
  for (const [name, runs, walls] of rows) {
    if (runs.length === 0) continue;
    const keys = Object.keys(runs[0]!.cpu);
    const mean = (k: string): number => runs.reduce((a, c) => a + (c.cpu[k] ?? 0), 0) / runs.length;
    const total = runs.reduce((a, c) => a + cpuTotal(c.cpu), 0) / runs.length;
    L.push(`| ${name} | ${total.toFixed(1)} s | ${keys.map((k) => `${k} ${mean(k).toFixed(1)} s`).join('; ')} | ${secs(median(walls))} | ${runs.map((x) => x.load.toFixed(2)).join(', ')} |`);
  }
  L.push('');
  L.push('The load averages include work of others on this shared machine; the rotation of the order spreads it over all paths.', '');
  L.push('## Memory of the server (its own process; VmHWM from /proc/<pid>/status; restic children sampled once a second)', '');
  L.push('| runs | peak RSS (VmHWM) per run | RSS after start-up | restic child peak | target |', '|---|---|---|---|---|');
  const all = [...r.ours, ...(r.safety ? [r.safety] : [])];
  const mb0 = (n: number): string => `${n.toFixed(0)} MB`;
  L.push(`| ${r.ours.length} restores${r.safety ? ' + 1 with the safety backup (last)' : ''} | ${list(peaks, mb0)} | ${list(all.map((o) => MB(o.bootKiB)), mb0)} | ${list(all.map((o) => MB(o.mem.resticPeakKiB)), mb0)} | < ${TARGET_RSS_MB} MB: ${pass(Math.max(...peaks) < TARGET_RSS_MB)} |`);
  L.push('');
  L.push('MB = 10^6 bytes. The server is started fresh for each run, so VmHWM is that run\'s peak (start-up included); restic\'s own memory is a separate process and not counted.', '');
  L.push('## What is compared', '');
  L.push('- **ours** is the whole `restoreBackup` operation through the real server (a separate `node` process, talking to the simulated cluster over the Kubernetes API and exec WebSockets): quiescing the app (scale to 0, pods gone), the roles dump (missing roles only), the database into a side database (`pg_restore` from restic\'s stream through exec stdin) checked against the manifest\'s row counts, both PVCs extracted by a helper pod beside the live data (the tar listing checked as it passes), the app config, the swap (database renames, directory moves), dropping the old database and removing the old files, and scaling the app back. **direct** is only the two big pipelines into a fresh database and an empty directory, run locally, with the old data left alone; so ours carries every fixed cost the direct line does not.');
  L.push('- The simulated cluster (API server, TLS, exec framing) runs in the benchmark process on the same two cores: on a real cluster the kubelet and API server do that work on other machines. **via kubectl** runs the direct pipelines through the same simulated exec with Debian\'s kubectl, to show what the hop costs here without our server.');
  L.push('- Same restic binary for all, the same repository (the page cache warmed by one untimed dump of each artifact); `pg_restore` and `tar` with the options our restorers use.');
  L.push('');
  L.push(`Total benchmark time: ${(r.totalSeconds / 60).toFixed(1)} min.`, '');
  return L.join('\n');
}

await main();
