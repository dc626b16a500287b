// A restore that fails after its PVC swap puts the volume back as it was, the root directory's mode
// included: the swap gives the root the backup's mode, and the swap back gives it its own again.
import { chmod, mkdir, rename, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { treeDigest } from '../helpers/compare.js';
import { OP_FIELDS, backupLatest, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

beforeAll(async () => {
  s = await startSimApp({ apps: ['website'] });
  await initRepository(s);
}, 180_000);
afterAll(async () => {
  if (s) s.sim.kube.runtime.execGate = undefined;
  await s?.close();
});

const rootMode = async (dir: string) => ((await stat(dir)).mode & 0o7777).toString(8);

it("a restore that fails after the PVC swap leaves the volume root's mode as it was", async () => {
  const pvc = s.sim.pvcDir('website', 'website-content');
  await chmod(pvc, 0o750);
  const b = await backupLatest(s, 'website');
  // After the backup: another root mode, and the contents move on.
  await chmod(pvc, 0o711);
  await writeFile(path.join(pvc, 'written-after-the-backup.html'), 'new');
  const filesBefore = await treeDigest(pvc);
  expect(await rootMode(pvc)).toBe('711');

  // The failure comes after the swap: the restore applies the backed-up config once the data is
  // swapped in, and config.yaml is a directory by then (neither read nor written).
  const configFile = s.app.services.store.paths.configFile('test');
  const aside = `${configFile}.test-aside`;
  let swapSeen = false;
  s.sim.kube.runtime.execGate = (command) => {
    if (command[0] !== 'sh' || !String(command[2]).includes('.wild-backup-phase-b') || !String(command[2]).startsWith('set -e; cd "$1"; m=')) return undefined;
    s.sim.kube.runtime.execGate = undefined;
    swapSeen = true;
    return rename(configFile, aside).then(() => mkdir(configFile));
  };
  let rec;
  try {
    rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: b.id });
  } finally {
    s.sim.kube.runtime.execGate = undefined;
    if (swapSeen) {
      await rmdir(configFile);
      await rename(aside, configFile);
    }
  }
  expect(swapSeen, 'the PVC swap ran').toBe(true);
  expect(rec.status).toBe('FAILED');
  const op = await s.gql<{ operation: { log: string[] } }>(`query($id: ID!) { operation(id: $id) { log(last: 50) } }`, { id: rec.id });
  const log = op.data!.operation.log.join('\n');
  // The operation log names the volume and where its replaced data waits, in words (not a JSON dump).
  expect(log).toMatch(/swapped in pvc:website-content; the data it replaced is kept as \.wild-backup-old-[0-9a-f]+ until the restore is done/);
  expect(log).not.toMatch(/swapped in .*\{"kind"/);
  expect(log).toMatch(/restore failed/);

  expect(await rootMode(pvc)).toBe('711');
  expect(await treeDigest(pvc)).toEqual(filesBefore);
}, 180_000);

it("a restore that succeeds gives the volume root the backup's mode and leaves no working directory", async () => {
  const pvc = s.sim.pvcDir('website', 'website-content');
  await chmod(pvc, 0o750);
  const b = await backupLatest(s, 'website');
  const filesAtBackup = await treeDigest(pvc);
  await chmod(pvc, 0o711);
  await writeFile(path.join(pvc, 'written-after-the-backup-2.html'), 'new');
  const rec = await s.runOperation(`mutation($id: ID!) { restoreBackup(input: { backupId: $id, safetyBackup: false }) { ${OP_FIELDS} } }`, { id: b.id });
  expect(rec.status, JSON.stringify(rec.error)).toBe('SUCCEEDED');
  expect(await rootMode(pvc)).toBe('750');
  expect(await treeDigest(pvc)).toEqual(filesAtBackup);
}, 180_000);
