// The README's first command: `npm run demo` starts the simulated cluster and the server, writes
// the ready file, answers GraphQL with the printed token, and stops everything on SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dirs: string[] = [];
const started: number[] = [];
afterAll(async () => {
  // Whatever happened in the test, nothing it started outlives it.
  for (const pid of started.flatMap((p) => [p, ...descendants(p)])) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry), ...descendants(Number(entry)));
    } catch { /* gone */ }
  }
  return out;
}

describe('npm run demo', () => {
  it('serves the demo instance with the printed token and leaves nothing running after SIGTERM', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wild-demo-test-'));
    dirs.push(dir);
    await chmod(dir, 0o755); // the sim's PostgreSQL runs as the postgres user and must reach its data
    const readyFile = path.join(dir, 'ready.json');
    const child = spawn('node_modules/.bin/tsx', ['src/sim/demo.ts', '--port', '0', '--data', path.join(dir, 'data'), '--ready-file', readyFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child.pid!);
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const deadline = Date.now() + 120_000;
    while (!existsSync(readyFile)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`demo did not become ready:\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const ready = JSON.parse(readFileSync(readyFile, 'utf8')) as { graphqlUrl: string; token: string; kubeconfig: string; dataDir: string };
    expect(out).toContain(ready.token);
    const res = await fetch(ready.graphqlUrl, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.token}` },
      body: JSON.stringify({ query: '{ instances { name cluster { reachable } apps { name volumes { name } } } }' }),
    });
    const body = (await res.json()) as { data: { instances: Array<{ name: string; cluster: { reachable: boolean }; apps: Array<{ name: string; volumes: unknown[] }> }> } };
    const demo = body.data.instances[0]!;
    expect(demo.name).toBe('demo');
    expect(demo.cluster.reachable).toBe(true);
    expect(demo.apps.map((a) => a.name)).toEqual(expect.arrayContaining(['gitea', 'immich', 'ghost', 'postgres', 'mysql', 'redis']));
    expect(demo.apps.find((a) => a.name === 'immich')!.volumes).toHaveLength(2);

    const tree = descendants(child.pid!);
    expect(tree.length).toBeGreaterThan(2); // tsx, node, the database servers...
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    const isAlive = (pid: number) => { try { return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); } catch { return false; } };
    const until = Date.now() + 20_000;
    while (tree.some(isAlive) && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    const alive = tree.filter(isAlive).map((pid) => { try { return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 80)}`; } catch { return String(pid); } });
    expect(alive, 'processes left after SIGTERM').toEqual([]);
  }, 180_000);
});
