// Nothing is staged on local disk during a backup: the staging directory stays empty, and the
// temp directory that the server and restic use never holds more than a few restic packs while
// hundreds of MiB stream through (a staged dump or tar would show up whole).
import { mkdtemp, readdir, lstat, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let simRoot: string;
let watchedTmp: string;
let staging: string;
const originalTmp = process.env.TMPDIR;

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    const st = await lstat(p).catch(() => null);
    if (!st) continue;
    total += st.isDirectory() ? await bytesUnder(p) : st.size;
  }
  return total;
}

beforeAll(async () => {
  simRoot = await mkdtemp(path.join(os.tmpdir(), 'wild-disk-sim-'));
  watchedTmp = await mkdtemp(path.join(os.tmpdir(), 'wild-disk-tmp-'));
  staging = path.join(simRoot, 'staging');
  await mkdir(staging);
  // From here on, this process and every restic it starts use the watched temp directory.
  process.env.TMPDIR = watchedTmp;
  s = await startSimApp({ dir: simRoot, apps: ['immich'], backup: { staging }, sizes: { photoFiles: 20, photoBytes: 160 << 20 } });
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status).toBe('SUCCEEDED');
  await writeFile(path.join(s.sim.pvcDir('immich', 'immich-pvc'), 'large-video.mp4'), randomBytes(96 << 20));
}, 180_000);

afterAll(async () => {
  await s?.close();
  process.env.TMPDIR = originalTmp;
  await rm(watchedTmp, { recursive: true, force: true });
  await rm(simRoot, { recursive: true, force: true });
});

describe('streaming backup', () => {
  it('stages nothing: the staging directory stays empty and temp space stays far below the data size', async () => {
    // The watcher sees what is written there (a control, so the check below can fail).
    await writeFile(path.join(watchedTmp, 'control'), Buffer.alloc(3 << 20));
    expect(await bytesUnder(watchedTmp)).toBe(3 << 20);
    await rm(path.join(watchedTmp, 'control'));
    let peakTmp = 0;
    let stagingSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakTmp = Math.max(peakTmp, await bytesUnder(watchedTmp));
        stagingSeen = Math.max(stagingSeen, await bytesUnder(staging));
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const rec = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "immich" }) { ${OP_FIELDS} } }`);
    sampling = false;
    await sampler;
    expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
    const streamed = rec.progress.bytesDone;
    expect(streamed).toBeGreaterThan(200 << 20);
    expect(stagingSeen).toBe(0);
    // restic assembles packs of a few MiB in temp files; a staged artifact would be >= 96 MiB.
    expect(peakTmp).toBeLessThan(48 << 20);
    console.log(`streamed ${(streamed / 2 ** 20).toFixed(0)} MiB; peak temp usage ${(peakTmp / 2 ** 20).toFixed(1)} MiB; staging ${stagingSeen} bytes`);
  }, 300_000);
});
