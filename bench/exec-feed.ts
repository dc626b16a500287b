// Benchmark: how restic's stdin is fed, one stream of random bytes out of a pod, with restic's own
// rusage. `bench:exec-hop` compares whole pipelines; this one looks at who pays for what. restic
// runs under `/usr/bin/time` (user and system seconds, voluntary and involuntary context switches),
// a fresh local repository each time. The simulated cluster runs in its own process. Variants:
//
//   direct          `cat FILE | restic backup --stdin` in a shell, no cluster at all;
//   ours            the server's exec client (dist/kube) piped into restic's stdin;
//   ours-null       the same exec into a sink that drops the bytes (the client's cost alone);
//   ours-batch<K>   the exec into restic, with writes gathered to K KiB (cork, then one writev);
//   parser          a frame parser written here instead of ws: slices of the TLS chunks are
//                   pushed as they arrive, without joining a frame's pieces (stdout only);
//   parser-null     the same into the sink.
//
// Usage: npm run bench:exec-feed -- [--variants direct,ours,ours-null]
//        [--rounds 3] [--size 1G] [--block 4K] [--restic-env "GOMAXPROCS=1"] [--restic-wrap "CMD ..."]
// (the client is dist/kube, built by the script). --restic-wrap puts a command in front of restic,
// e.g. one that sets O_NONBLOCK on its stdin and execs the rest.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { Socket } from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { readerCommand, startHopBench } from './lib-hop.js';
import { cpuTimes, median, parseSize, sh } from './lib-proc.js';

const { values: flags } = parseArgs({
  options: {
    variants: { type: 'string', default: 'direct,ours,ours-null' }, rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: '1G' }, block: { type: 'string' }, 'restic-env': { type: 'string', default: '' }, 'restic-wrap': { type: 'string', default: '' },
  },
});
const VARIANTS = flags.variants!.split(',');
const ROUNDS = Number(flags.rounds);
const { kube, client, target, sim, work, file, env, fresh, close } = await startHopBench('feed', parseSize(flags.size!));
const reader = readerCommand(file, flags.block);
const rusageFile = path.join(work, 'rusage.txt');
const RESTIC = `${flags['restic-env']} /usr/bin/time -o ${rusageFile} -f '%U %S %w %c' ${flags['restic-wrap']} restic backup --stdin --stdin-filename random.bin --json > /dev/null`;

/** The exec's stdout through a frame parser of our own (server frames are unmasked; stdout only). */
async function parsedExec(command: string[]): Promise<Readable> {
  const q = new URLSearchParams();
  for (const c of command) q.append('command', c);
  for (const [k, v] of [['stdin', 'false'], ['stdout', 'true'], ['stderr', 'true'], ['tty', 'false']]) q.set(k!, v!);
  const u = new URL(`${client.server}/api/v1/namespaces/${target.namespace}/pods/${target.pod}/exec?${q.toString()}`);
  const opts: https.RequestOptions = {
    method: 'GET', hostname: u.hostname, port: u.port, path: u.pathname + u.search,
    headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'v5.channel.k8s.io' },
  };
  await client.kc.applyToHTTPSOptions(opts as never);
  const socket = await new Promise<Socket>((resolve, reject) => {
    const req = https.request(opts);
    req.on('upgrade', (_res, sock: Socket, head: Buffer) => { if (head.length) sock.unshift(head); resolve(sock); });
    req.on('error', reject);
    req.end();
  });
  const out = new Readable({ highWaterMark: 1 << 20, read() { socket.resume(); } });
  const hdr = Buffer.alloc(14);
  let have = 0, need = 2, left = 0, opcode = 0, channel = -1, firstByte = false;
  socket.on('data', (chunk: Buffer) => {
    let pos = 0;
    while (pos < chunk.length) {
      if (left === 0) {
        while (have < need && pos < chunk.length) hdr[have++] = chunk[pos++]!;
        if (have < need) return;
        const len7 = hdr[1]! & 0x7f;
        const full = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
        if (need < full) { need = full; continue; }
        opcode = hdr[0]! & 0x0f;
        left = len7 === 126 ? hdr.readUInt16BE(2) : len7 === 127 ? Number(hdr.readBigUInt64BE(2)) : len7;
        have = 0;
        need = 2;
        if (opcode === 8) { out.push(null); socket.destroy(); return; }
        if (opcode === 2 && left > 0) firstByte = true;
        continue;
      }
      if (firstByte) { channel = chunk[pos++]!; left--; firstByte = false; continue; }
      const n = Math.min(left, chunk.length - pos);
      if ((opcode === 2 || opcode === 0) && channel === 1 && !out.push(chunk.subarray(pos, pos + n))) socket.pause();
      pos += n;
      left -= n;
    }
  });
  socket.on('end', () => out.push(null));
  return out;
}

/** A Writable that gathers writes to `size` bytes and hands them to `dst` as one corked batch. */
function batched(dst: Writable, size: number): Writable {
  let parts: Buffer[] = [];
  let len = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (cb: () => void): void => {
    clearTimeout(timer);
    timer = undefined;
    if (!len) return cb();
    dst.cork();
    let ok = true;
    for (const p of parts) ok = dst.write(p);
    dst.uncork();
    parts = [];
    len = 0;
    if (ok) cb(); else dst.once('drain', cb);
  };
  return new Writable({
    highWaterMark: size,
    write(c: Buffer, _e, cb) {
      parts.push(c);
      len += c.length;
      if (len >= size) flush(cb);
      else { cb(); timer ??= setTimeout(() => flush(() => undefined), 10); }
    },
    final(cb) { flush(() => { dst.end(); cb(); }); },
  });
}

const sink = (): Writable => new Writable({ write(_c, _e, cb) { cb(); } });
const startRestic = () => spawn('bash', ['-c', RESTIC], { env, stdio: ['pipe', 'inherit', 'inherit'] });

interface Row { wall: number; client: number; sim: number; restic?: { user: number; sys: number; vcs: number; ics: number } }
const rows: Record<string, Row[]> = Object.fromEntries(VARIANTS.map((v) => [v, []]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of VARIANTS.map((_, i, a) => a[(i + r) % a.length]!)) {
      await fresh();
      const s0 = cpuTimes(sim.pid!).self, c0 = process.cpuUsage(), t0 = performance.now();
      const withRestic = !v.endsWith('-null');
      rmSync(rusageFile, { force: true });
      if (v === 'direct') {
        await sh(`${reader.join(' ')} | ${RESTIC}`, env);
      } else {
        const restic = withRestic ? startRestic() : undefined;
        const exited = restic ? new Promise((res) => restic.once('exit', res)) : Promise.resolve();
        const src = v.startsWith('parser') ? await parsedExec(reader) : await kube.execStream(client, { namespace: target.namespace, pod: target.pod, command: reader });
        const stdout = 'stdout' in src ? src.stdout : src;
        const dst = !restic ? sink() : v.startsWith('ours-batch') ? batched(restic.stdin!, Number(v.slice('ours-batch'.length) || 256) << 10) : restic.stdin!;
        await pipeline(stdout, dst);
        if ('done' in src) await src.done;
        await exited;
      }
      const c1 = process.cpuUsage(c0);
      const row: Row = { wall: (performance.now() - t0) / 1000, client: (c1.user + c1.system) / 1e6, sim: cpuTimes(sim.pid!).self - s0 };
      if (withRestic) {
        const [user, sys, vcs, ics] = readFileSync(rusageFile, 'utf8').trim().split(/\s+/).map(Number);
        row.restic = { user: user!, sys: sys!, vcs: vcs!, ics: ics! };
      }
      rows[v]!.push(row);
      const rs = row.restic ? `restic ${row.restic.user.toFixed(2)} user + ${row.restic.sys.toFixed(2)} sys, ${row.restic.vcs} voluntary / ${row.restic.ics} involuntary switches` : 'no restic';
      console.error(`round ${r + 1} ${v.padEnd(14)} wall ${row.wall.toFixed(2)} s, exec client ${row.client.toFixed(2)} CPU-s, simulated cluster ${row.sim.toFixed(2)}, ${rs}`);
    }
  }
} finally {
  close();
}
const med = (xs: number[], digits = 2): string => (xs.length ? median(xs).toFixed(digits) : '-');
console.log(`| variant | wall (median of ${ROUNDS}) | exec client CPU-s | simulated cluster CPU-s | restic CPU-s | restic voluntary switches |`);
console.log('|---|---|---|---|---|---|');
for (const v of VARIANTS) {
  const rs = rows[v]!;
  const restic = rs.filter((x) => x.restic);
  console.log(`| ${v} | ${med(rs.map((x) => x.wall))} s | ${v === 'direct' ? '-' : med(rs.map((x) => x.client))} | ${v === 'direct' ? '-' : med(rs.map((x) => x.sim))} | ${med(restic.map((x) => x.restic!.user + x.restic!.sys))} | ${med(restic.map((x) => x.restic!.vcs), 0)} |`);
}
