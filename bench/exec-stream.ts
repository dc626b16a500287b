// Benchmark: stream N bytes (default 2 GiB) out of a sim pod through the access layer's exec into a
// deliberately slow consumer, and report the client process's peak RSS and the throughput, with the
// access layer compiled (`dist/`, from `npm run build`) and under tsx. Results: docs/benchmarks/exec.md.
//
// Usage: npx tsx bench/exec-stream.ts [--bytes 2G] [--rate-mib 200] [--runs 3] [--mode both|dist|tsx] [--no-build]
//   --rate-mib  the consumer's limit in MiB/s
//   --mode      dist: node on the tsc output (no transpiler in the process); tsx: node --import tsx on src
//   --no-build  measure dist/ as it is (default: compile src with tsconfig.build.json, as `npm run build`
//               does, into a private tmp/bench-exec-<pid>/dist, removed afterwards)
//
// Each measurement is a fresh child process (its own VmHWM); the simulated cluster runs in one more
// process (bench/sim-serve.ts), so the figures are those of the client (the Wild Backup side) alone.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

type KubeModule = typeof import('../src/kube/index.js');
type Mode = 'dist' | 'tsx';
interface Target { kubeconfig: string; namespace: string; pod: string }
interface Result {
  mode: Mode; bytes: number; seconds: number; throughputMiBs: number;
  rssStartMiB: number; rssLoadedMiB: number; rssBeforeMiB: number; peakRssMiB: number; vmHwmMiB: number; protocol: string;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] ?? def : def;
}
function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2]!.toUpperCase()]!;
}
const mib = (n: number): number => Number((n / 1024 / 1024).toFixed(1));
const vmHwmKiB = (): number => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);

/** One measurement, in this (fresh) process: load the access layer, stream, print a JSON line. */
async function child(): Promise<void> {
  const rssStart = process.memoryUsage().rss;
  const kube = (await import(arg('kube', ''))) as KubeModule;
  const target = JSON.parse(arg('target', '{}')) as Target;
  const bytes = parseSize(arg('bytes', '2G'));
  const rate = Number(arg('rate-mib', '200')) * 1024 * 1024;
  const client = kube.kubeClientFor(target.kubeconfig);
  const rssLoaded = process.memoryUsage().rss;
  // Warm up: one small exec (handshake, TLS, protocol negotiation) before the baseline is taken.
  await kube.execText(client, { namespace: target.namespace, pod: target.pod, command: ['true'] });
  const baseRss = process.memoryUsage().rss;
  let peakRss = baseRss;
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 50);
  let received = 0;
  const t0 = Date.now();
  // A slow consumer: it accepts at most `rate` bytes per second, like a slow disk or network upload.
  const slow = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      const wait = t0 + (received / rate) * 1000 - Date.now();
      if (wait > 0) setTimeout(cb, wait); else cb();
    },
  });
  const ex = await kube.execStream(client, { namespace: target.namespace, pod: target.pod, command: ['head', '-c', String(bytes), '/dev/zero'] });
  await pipeline(ex.stdout, slow);
  await ex.done;
  const secs = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  if (received !== bytes) throw new Error(`received ${received} bytes, expected ${bytes}`);
  const r: Omit<Result, 'mode'> = {
    bytes, seconds: secs, throughputMiBs: Number((bytes / 1024 / 1024 / secs).toFixed(1)),
    rssStartMiB: mib(rssStart), rssLoadedMiB: mib(rssLoaded), rssBeforeMiB: mib(baseRss), peakRssMiB: mib(peakRss),
    vmHwmMiB: Number((vmHwmKiB() / 1024).toFixed(1)), protocol: ex.protocol,
  };
  process.stdout.write(JSON.stringify(r) + '\n');
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };

async function main(): Promise<void> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  process.chdir(root);
  const mode = arg('mode', 'both');
  const modes: Mode[] = mode === 'both' ? ['dist', 'tsx'] : [mode as Mode];
  const runs = Number(arg('runs', '3'));
  const pass = ['--bytes', arg('bytes', '2G'), '--rate-mib', arg('rate-mib', '200')];

  const work = mkdtempSync(path.join(os.tmpdir(), 'wild-bench-exec-'));
  const argvOf: Record<Mode, string[]> = { dist: [], tsx: [] };
  // The build of `npm run build` (tsconfig.build.json), into a private directory under tmp/ (so a
  // concurrent `npm run build` in the same tree cannot remove it mid-run; node_modules resolves from
  // there); --no-build measures dist/ as it is.
  let dist = path.resolve('dist');
  if (modes.includes('dist')) {
    if (!process.argv.includes('--no-build')) {
      dist = path.resolve(`tmp/bench-exec-${process.pid}/dist`);
      console.error(`bench: tsc -p tsconfig.build.json --outDir ${path.relative(root, dist)}`);
      execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', dist], { stdio: ['ignore', 'inherit', 'inherit'] });
    }
    // This script without types (the compiled child must not load a transpiler); it imports dist/kube.
    const ts = (await import('typescript')).default;
    const js = ts.transpileModule(readFileSync(fileURLToPath(import.meta.url), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    writeFileSync(path.join(work, 'exec-stream.mjs'), js);
    argvOf.dist = [path.join(work, 'exec-stream.mjs'), '--kube', pathToFileURL(path.join(dist, 'kube/index.js')).href];
  }
  argvOf.tsx = ['--import', 'tsx', 'bench/exec-stream.ts', '--kube', pathToFileURL(path.resolve('src/kube/index.ts')).href];

  const server = spawn(process.execPath, ['--import', 'tsx', 'bench/sim-serve.ts'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const results: Result[] = [];
  try {
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once('line', resolve);
      server.once('exit', (c) => reject(new Error(`sim exited with ${c}`)));
    });
    for (let i = 0; i < runs; i++) {
      for (const m of modes) {
        const out = await run(process.execPath, [...argvOf[m], '--child', '--target', first.trim(), ...pass]);
        const r = { mode: m, ...(JSON.parse(out.trim().split('\n').pop()!) as Omit<Result, 'mode'>) };
        results.push(r);
        console.error(`bench: run ${i + 1}/${runs} ${m}: peak ${r.peakRssMiB} MiB (VmHWM ${r.vmHwmMiB}), loaded ${r.rssLoadedMiB}, ${r.throughputMiBs} MiB/s`);
      }
    }
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rmSync(work, { recursive: true, force: true });
    if (dist !== path.resolve('dist')) rmSync(path.dirname(dist), { recursive: true, force: true });
  }
  const summary = Object.fromEntries(modes.map((m) => {
    const rs = results.filter((r) => r.mode === m);
    const med = (k: keyof Omit<Result, 'mode' | 'protocol'>): number => median(rs.map((r) => r[k]));
    return [m, {
      runs: rs.length, bytes: rs[0]?.bytes, medianSeconds: med('seconds'), medianThroughputMiBs: med('throughputMiBs'),
      medianRssStartMiB: med('rssStartMiB'), medianRssLoadedMiB: med('rssLoadedMiB'), medianRssBeforeMiB: med('rssBeforeMiB'),
      medianPeakRssMiB: med('peakRssMiB'), medianVmHwmMiB: med('vmHwmMiB'), peakRssMiB: rs.map((r) => r.peakRssMiB), protocol: rs[0]?.protocol,
    }];
  }));
  console.log(JSON.stringify({ node: process.version, consumerLimitMiBs: Number(arg('rate-mib', '200')), results: summary }, null, 2));
}

if (process.argv.includes('--child')) await child();
else await main();
