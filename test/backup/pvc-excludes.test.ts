// A PVC backup leaves out what a restore or a drill left at the volume root (its side directory and
// the old entries it kept, after a crash or a failed clean-up): otherwise every later backup carries
// a full copy and a later restore brings it back. Only the root is excluded: a user's directory of
// the same name deeper in the tree is data like any other.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ResticRepository } from '../../src/engine/restic/index.js';
import { OP_FIELDS, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;
let repo: ResticRepository;

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
  repo = await s.app.services.repositories.open(await s.app.services.store.requireInstance('test'));
}, 180_000);
afterAll(async () => { await s?.close(); });

/** The member names of a tar stream (`tar -t`). */
function tarNames(stream: Readable): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-t', '-f', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    tar.stdout.on('data', (c: Buffer) => { out += c.toString('utf8'); });
    tar.stderr.on('data', (c: Buffer) => { err += c.toString('utf8'); });
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolve(out.split('\n').filter(Boolean)) : reject(new Error(`tar -t: ${code}: ${err}`))));
    stream.on('error', (e) => { tar.kill(); reject(e); });
    stream.pipe(tar.stdin);
  });
}

it("leaves a restore's working directories at the volume root out of the PVC's tar, and keeps same-named ones deeper", async () => {
  const pvc = s.sim.pvcDir('website', 'website-content');
  const put = async (rel: string, text: string) => {
    await mkdir(path.dirname(path.join(pvc, rel)), { recursive: true });
    await writeFile(path.join(pvc, rel), text);
  };
  await put('.wild-backup-restore-x1/a', 'a copy left by a crashed drill');
  await put('.wild-backup-old-x1/b', 'old entries left by a failed commit');
  await put('sub/.wild-backup-restore-keep/c', "the user's own file");

  const done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`);
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  const res = await s.gql<{ instance: { app: { latestBackup: { artifacts: Array<{ kind: string; name: string; snapshot: { snapshotId: string; paths: string[] } }> } } } }>(
    `{ instance(name: "test") { app(name: "website") { latestBackup { artifacts { kind name snapshot { snapshotId paths } } } } } }`);
  const art = res.data!.instance.app.latestBackup.artifacts.find((a) => a.kind === 'pvc' && a.name === 'website-content')!;
  expect(art, 'the pvc artifact').toBeDefined();

  const names = await tarNames(repo.dump(art.snapshot.snapshotId, art.snapshot.paths[0]!));
  expect(names.filter((n) => /^(\.\/)?\.wild-backup-(restore|old)-/.test(n))).toEqual([]);
  expect(names).toContain('./sub/.wild-backup-restore-keep/c');
  // The rest of the volume is there as usual.
  expect(names).toContain('./sub/');
  expect(names.length).toBeGreaterThan(3);
}, 180_000);
