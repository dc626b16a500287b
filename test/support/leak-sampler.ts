// The argv sampler of the secret-leak harness: a small process forked by the global setup that
// reads /proc/<pid>/cmdline of every process of this test run (vitest's descendants and its
// session) every TICK_MS, for the whole run, and compares it with every registered secret.
// What any user on the machine can read in `ps` must never carry a password or key.
// Cmdlines are kept (deduplicated, bounded) only to re-check them against secrets registered later.
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { LeakDetector, type SecretKind } from './leak-detector.js';
import { LEAK_RUN_ENV, appendFinding, runFile, type LeakFinding, type SamplerStatus } from './leak-run.js';

const TICK_MS = Number(process.env.WILD_LEAK_SAMPLER_TICK_MS ?? 25);
const RING_ENTRIES = 5_000;
const RING_CHARS = 4 << 20;

const dir = process.env[LEAK_RUN_ENV];
if (!dir) throw new Error(`${LEAK_RUN_ENV} is not set`);
const runDir: string = dir;

const self = process.pid;
const root = process.ppid;
const rootSid = statOf(root)?.sid ?? -1;

const detector = new LeakDetector();
const status: SamplerStatus = { pid: self, ticks: 0, processesChecked: 0, cmdlinesScanned: 0, secrets: 0, updatedAt: Date.now() };
/** pid -> the vitest worker it descends from (0: not under a worker) and its last cmdline */
const ours = new Map<number, { worker: number; cmdline: string }>();
const foreign = new Set<number>();
const ring = new Map<string, { pid: number; worker: number }>();
let ringChars = 0;
const reported = new Set<string>();
let registryOffset = 0;
let registryRest = '';

function statOf(pid: number): { ppid: number; sid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), sid: Number(fields[3]) };
  } catch {
    return null;
  }
}

/** Values registered since the last call (workers append to secrets.jsonl). */
function readRegistrations(): Set<string> {
  const added = new Set<string>();
  const file = runFile(runDir, 'secrets.jsonl');
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return added;
  }
  if (size <= registryOffset) return added;
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(size - registryOffset);
    readSync(fd, buf, 0, buf.length, registryOffset);
    registryOffset = size;
    const lines = (registryRest + buf.toString('utf8')).split('\n');
    registryRest = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const { v, k } = JSON.parse(line) as { v: string; k: SecretKind | 'plain' };
        if (k === 'plain') detector.remove(v);
        else if (detector.add(v, k)) added.add(v);
      } catch {
        // not a registration
      }
    }
  } finally {
    closeSync(fd);
  }
  status.secrets = detector.size;
  return added;
}

function check(cmdline: string, pid: number, worker: number, only?: ReadonlySet<string>): void {
  status.cmdlinesScanned++;
  for (const m of detector.scan(cmdline, only)) {
    const key = `${m.kind}:${m.hint}:${m.kind === 'canary' ? '' : pid}`;
    if (reported.has(key)) continue;
    reported.add(key);
    if (m.kind === 'canary') {
      writeFileSync(runFile(runDir, 'sightings.jsonl'), JSON.stringify({ channel: 'argv', hint: m.hint, pid }) + '\n', { flag: 'a', mode: 0o600 });
      continue;
    }
    const argv0 = basename(cmdline.split(' ')[0] ?? '?');
    const finding: LeakFinding = { channel: 'argv', where: `argv of process ${pid} (${argv0})${worker ? ` under vitest worker ${worker}` : ''}`, workerPid: worker || undefined, hint: m.hint, excerpt: m.excerpt };
    appendFinding(runDir, finding);
  }
}

function remember(cmdline: string, pid: number, worker: number): void {
  if (ring.has(cmdline)) return;
  ring.set(cmdline, { pid, worker });
  ringChars += cmdline.length;
  while (ring.size > RING_ENTRIES || ringChars > RING_CHARS) {
    const [oldest] = ring.keys();
    ring.delete(oldest!);
    ringChars -= oldest!.length;
  }
}

function tick(): void {
  const added = readRegistrations();
  // Cmdlines seen before these values were registered get a second look, for them only.
  if (added.size) for (const [cmdline, p] of ring) check(cmdline, p.pid, p.worker, added);
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return;
  }
  const alive = new Set<number>();
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    alive.add(pid);
    if (pid === self || foreign.has(pid)) continue;
    let entry = ours.get(pid);
    if (!entry) {
      const st = statOf(pid);
      if (!st) continue;
      const parent = ours.get(st.ppid);
      if (pid === root || st.ppid === root) entry = { worker: pid === root ? 0 : pid, cmdline: '' };
      else if (parent) entry = { worker: parent.worker, cmdline: '' };
      else if (st.sid === rootSid && st.ppid !== self) entry = { worker: 0, cmdline: '' };
      else {
        foreign.add(pid);
        continue;
      }
      ours.set(pid, entry);
    }
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ').trim();
    } catch {
      continue;
    }
    status.processesChecked++;
    if (cmdline === entry.cmdline || !cmdline) continue;
    entry.cmdline = cmdline;
    check(cmdline, pid, entry.worker);
    remember(cmdline, pid, entry.worker);
  }
  for (const pid of ours.keys()) if (!alive.has(pid)) ours.delete(pid);
  for (const pid of foreign) if (!alive.has(pid)) foreign.delete(pid);
  status.ticks++;
}

function writeStatus(): void {
  status.updatedAt = Date.now();
  writeFileSync(runFile(runDir, 'sampler.json'), JSON.stringify(status));
}

let lastStatus = 0;
const timer = setInterval(() => {
  tick();
  if (Date.now() - lastStatus > 500) {
    writeStatus();
    lastStatus = Date.now();
  }
}, TICK_MS);

process.on('message', (msg: { type?: string }) => {
  if (msg?.type !== 'stop') return;
  clearInterval(timer);
  tick();
  writeStatus();
  process.send?.({ type: 'stopped', status }, () => process.exit(0));
});
// vitest gone without a teardown: nothing left to watch.
process.on('disconnect', () => process.exit(0));
tick();
writeStatus();
