// Runs in its own process (test/util/heap.test.ts), started with or without the server's node flags:
// loads what the server loads, then streams FILE out of a pod into `restic backup --stdin` (the
// repository and its password come in the environment), and prints the full garbage collections
// it took and the bytes it moved as one JSON line.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import '../../src/schema/index.js';
import 'graphql-yoga';
import { execStream, kubeClientFor } from '../../src/kube/index.js';

const [kubeconfig, namespace, pod, file] = process.argv.slice(2) as [string, string, string, string];
let major = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
  }
}).observe({ entryTypes: ['gc'] });

const client = kubeClientFor(kubeconfig);
const ex = await execStream(client, { namespace, pod, command: ['cat', file] });
const restic = spawn('restic', ['backup', '--stdin', '--stdin-filename', 'data', '--quiet', '--json'], { stdio: ['pipe', 'ignore', 'inherit'] });
let received = 0;
ex.stdout.on('data', (c: Buffer) => { received += c.length; });
const exited = new Promise<number | null>((r) => restic.once('exit', r));
await pipeline(ex.stdout, restic.stdin);
await ex.done;
if ((await exited) !== 0) throw new Error('restic failed');
await new Promise((r) => setTimeout(r, 100));
process.stdout.write(JSON.stringify({ major, received }) + '\n');
process.exit(0);
