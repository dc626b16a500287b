// The server's heap flags (src/util/heap.ts): random bytes streamed out of a pod through the exec
// socket into `restic backup --stdin`, in a process that has loaded what the server loads. Whether
// V8 falls into a full mark-compact every ~30 MB of chunks depends on where its heap-growing
// heuristic put the old generation's limit; --heap-growing-percent=10 puts it just above the live
// heap, where the server was in the backup benchmark, so the control falls into it every time.
// With the server's flags the chunks are left to the young generation. The launch paths (npm
// scripts, benchmarks) must pass the flags: checked here too.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimKube, type SimKube } from '../../src/sim/index.js';
import { writeRandomFile } from '../../src/sim/random.js';
import { SERVER_NODE_FLAGS } from '../../src/util/heap.js';
import { serverArgv } from '../../bench/lib-server.js';
import { appObjects } from '../kube/objects.js';

const run = promisify(execFile);
const BYTES = 384 << 20;

describe('the streaming heap', () => {
  let sim: SimKube;
  let pod: string;
  let work: string;
  let file: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'wild-heap-'));
    file = path.join(work, 'random.bin');
    writeRandomFile(file, BYTES, Buffer.alloc(1 << 20));
    sim = await startSimKube();
    sim.apply(appObjects('gitea'));
    await sim.waitForPods();
    pod = sim.runtime.store.list('pods', 'gitea')[0]!.metadata.name;
  });
  afterAll(async () => {
    await sim?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const stream = async (mode: 'default' | 'server-flags'): Promise<{ major: number; received: number }> => {
    const env = { ...process.env, RESTIC_REPOSITORY: path.join(work, `repo-${mode}`), RESTIC_PASSWORD: 'heap-test-repository-password', RESTIC_CACHE_DIR: path.join(work, 'cache') };
    await run('restic', ['init', '--quiet'], { env });
    const { stdout } = await run(process.execPath, ['--heap-growing-percent=10', ...(mode === 'server-flags' ? SERVER_NODE_FLAGS : []), '--import', 'tsx', 'test/helpers/heap-stream-child.ts', sim.kubeconfigPath, 'gitea', pod, file], { env, timeout: 120_000 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as { major: number; received: number };
  };

  it('leaves stream chunks to the scavenger instead of a full collection every few dozen MB', { timeout: 180_000 }, async () => {
    const without = await stream('default');
    const withFloor = await stream('server-flags');
    expect(without.received).toBe(BYTES);
    expect(withFloor.received).toBe(BYTES);
    // Without: about one full collection per 15-30 MB (a dozen or more here); with: a few at most.
    expect(without.major).toBeGreaterThanOrEqual(8);
    expect(withFloor.major).toBeLessThanOrEqual(3);
  });

  it('every way of starting the server passes the flags', () => {
    const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'serve', 'demo']) {
      const words = scripts[name]!.split(/\s+/);
      expect(words[0], name).toBe('node');
      for (const f of SERVER_NODE_FLAGS) expect(words, name).toContain(f);
    }
    for (const mode of ['dist', 'tsx'] as const) expect(serverArgv(mode, '/tmp').slice(0, SERVER_NODE_FLAGS.length)).toEqual([...SERVER_NODE_FLAGS]);
  });
});
