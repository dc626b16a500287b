// Benchmark: stream N bytes (default 2 GiB) out of a sim pod through the access layer's exec into a
// deliberately slow consumer, and report this process's peak RSS and the throughput.
// Usage: npx tsx bench/exec-stream.ts [--bytes 2G] [--rate-mib 200]   (rate: the consumer's limit, MiB/s)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execStream, kubeClientFor } from '../src/kube/index.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] ?? def : def;
}
function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2]!.toUpperCase()]!;
}
const bytes = parseSize(arg('bytes', '2G'));
const rate = Number(arg('rate-mib', '200')) * 1024 * 1024;

const vmHwmKiB = (): number => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);

const server = spawn(process.execPath, ['--import', 'tsx', 'bench/sim-serve.ts'], { stdio: ['ignore', 'pipe', 'inherit'] });
const first = await new Promise<string>((resolve, reject) => {
  createInterface({ input: server.stdout! }).once('line', resolve);
  server.once('exit', (c) => reject(new Error(`sim exited with ${c}`)));
});
const target = JSON.parse(first) as { kubeconfig: string; namespace: string; pod: string };

try {
  const client = kubeClientFor(target.kubeconfig);
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
      const due = t0 + (received / rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) setTimeout(cb, wait); else cb();
    },
  });
  const ex = await execStream(client, { namespace: target.namespace, pod: target.pod, command: ['head', '-c', String(bytes), '/dev/zero'] });
  await pipeline(ex.stdout, slow);
  await ex.done;
  const secs = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  if (received !== bytes) throw new Error(`received ${received} bytes, expected ${bytes}`);
  const mb = (n: number): string => (n / 1024 / 1024).toFixed(1);
  console.log(JSON.stringify({
    bytes, consumerLimitMiBs: rate / 1024 / 1024, seconds: secs, throughputMiBs: Number((bytes / 1024 / 1024 / secs).toFixed(1)),
    rssBeforeMiB: Number(mb(baseRss)), peakRssMiB: Number(mb(peakRss)), vmHwmMiB: Number((vmHwmKiB() / 1024).toFixed(1)), protocol: ex.protocol,
  }, null, 2));
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
}
