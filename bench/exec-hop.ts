// Benchmark: what the exec hop costs one stream into restic, without the rest of a backup. 1 GiB
// of random bytes (a file the pod reads) goes into `restic backup --stdin` three ways, side by
// side, a fresh local repository each time, the order rotated each round:
//
//   ours     the server's exec client (dist/kube, as the backup pipeline uses it) piping the pod's
//            stdout into restic's stdin;
//   kubectl  `kubectl exec <pod> -- cat FILE | restic backup --stdin` through the same simulated
//            cluster (Debian's kubectl as the client);
//   direct   `cat FILE | restic backup --stdin` in a shell, no cluster at all.
//
// The simulated cluster runs in its own process (bench/sim-serve.ts); CPU seconds per process
// come from /proc. `--block 10K` has the pod write in blocks of that size (`dd bs=`) instead of
// cat's 128 KiB, as tar (10 KiB records) and pg_dump (8 KiB and less) write: every write can become
// a frame of its own. Usage: npm run bench:exec-hop -- [--size 1G] [--rounds 3] [--block 10K]
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { readerCommand, startHopBench } from './lib-hop.js';
import { cpuTimes, median, parseSize, q, sh } from './lib-proc.js';

const { values: flags } = parseArgs({ options: { size: { type: 'string', default: '1G' }, rounds: { type: 'string', default: '3' }, block: { type: 'string' } } });
const SIZE = parseSize(flags.size!);
const ROUNDS = Number(flags.rounds);
const BLOCK = flags.block ? parseSize(flags.block) : undefined;
const RESTIC = 'restic backup --stdin --stdin-filename random.bin --json --quiet > /dev/null';
const { kube, client, target, sim, file, env, fresh, close } = await startHopBench('hop', SIZE);
const reader = (f: string): string[] => readerCommand(f, BLOCK);

interface Run { wall: number; client: number; restic: number; sim: number }
const runs: Record<'ours' | 'kubectl' | 'direct', Run[]> = { ours: [], kubectl: [], direct: [] };
try {
  for (let r = 0; r < ROUNDS; r++) {
    const order = (['ours', 'kubectl', 'direct'] as const).map((_, i, a) => a[(i + r) % a.length]!);
    for (const v of order) {
      await fresh();
      const s0 = cpuTimes(sim.pid!).self, me0 = cpuTimes(process.pid), t0 = performance.now();
      if (v === 'ours') {
        const restic = spawn('bash', ['-c', RESTIC], { env, stdio: ['pipe', 'inherit', 'inherit'] });
        const ex = await kube.execStream(client, { namespace: target.namespace, pod: target.pod, command: reader(file) });
        await pipeline(ex.stdout, restic.stdin!);
        await ex.done;
        await new Promise((res) => restic.once('exit', res));
      } else if (v === 'kubectl') {
        await sh(`kubectl --kubeconfig ${q(target.kubeconfig)} exec -n ${target.namespace} ${target.pod} -- ${reader(file).map(q).join(' ')} | ${RESTIC}`, env);
      } else {
        await sh(`${reader(file).map(q).join(' ')} | ${RESTIC}`, env);
      }
      const me1 = cpuTimes(process.pid);
      const run: Run = { wall: (performance.now() - t0) / 1000, client: v === 'ours' ? me1.self - me0.self : 0, restic: me1.children - me0.children, sim: cpuTimes(sim.pid!).self - s0 };
      runs[v].push(run);
      console.error(`round ${r + 1} ${v.padEnd(7)} wall ${run.wall.toFixed(2)} s, CPU: our exec client ${run.client.toFixed(2)} s, shell/restic/kubectl ${run.restic.toFixed(2)} s, simulated cluster ${run.sim.toFixed(2)} s`);
    }
  }
} finally {
  close();
}
const m = (v: keyof typeof runs, k: keyof Run): string => median(runs[v].map((x) => x[k])).toFixed(2);
console.log(`| path | wall (median of ${ROUNDS}) | CPU s: our exec client | shell pipeline (cat, kubectl, restic) | simulated cluster |`);
console.log('|---|---|---|---|---|');
for (const v of ['direct', 'kubectl', 'ours'] as const) console.log(`| ${v} | ${m(v, 'wall')} s | ${m(v, 'client')} | ${m(v, 'restic')} | ${m(v, 'sim')} |`);
console.log(`\nours / direct = ${(Number(m('ours', 'wall')) / Number(m('direct', 'wall'))).toFixed(2)}x, ours / kubectl = ${(Number(m('ours', 'wall')) / Number(m('kubectl', 'wall'))).toFixed(2)}x`);
