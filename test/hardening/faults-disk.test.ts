// The repository's disk fills up: a local repository on a 64 MiB tmpfs. A backup bigger than the
// space left fails with code REPOSITORY_FULL and a message naming the artifact and the full disk
// (also when the disk is full before restic can even write its lock: not "locked"); no snapshot
// of it stays, no restic, exec socket or restic temp file is left; the earlier backup still
// verifies by a restore drill and `restic check` reads all data; once space is freed, a backup
// succeeds. Mounting needs root (see the report in docs): without it this file fails, it never skips.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, statfs, writeFile, open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClientFor, listPods, HELPER_LABEL } from '../../src/kube/index.js';
import { OP_FIELDS, startSimApp, type SimApp } from '../helpers/sim-app.js';
import { backupsOf, expectBackupLeftNothing, startOperation } from '../helpers/faults.js';

const SIZE = 64 << 20;
let s: SimApp;
let mnt = '';
let mounted = false;
let watchedTmp = '';
let firstBackup = '';
const originalTmp = process.env.TMPDIR;
const backupWebsite = `mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`;

async function freeBytes(): Promise<number> {
  const st = await statfs(mnt);
  return st.bavail * st.bsize;
}

/** Files under dir (recursively) whose name matches. */
async function filesMatching(dir: string, re: RegExp): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile() && re.test(e.name)) out.push(e.name);
  return out;
}

beforeAll(async () => {
  mnt = await mkdtemp(path.join(os.tmpdir(), 'wild-full-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE},mode=0700`, 'tmpfs', mnt], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    throw new Error(`this test needs a small filesystem for the repository and mounts a ${SIZE >> 20} MiB tmpfs at ${mnt}, `
      + `which needs root (or CAP_SYS_ADMIN); it cannot run here: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`);
  }
  watchedTmp = await mkdtemp(path.join(os.tmpdir(), 'wild-full-tmp-'));
  process.env.TMPDIR = watchedTmp; // restic's temp packs go here: none may be left behind
  s = await startSimApp(
    { apps: ['website'], backup: { repository: path.join(mnt, 'repo') }, backupSecrets: { password: 'full-disk-repo-password' } },
    { stallTimeoutMs: 30_000 },
  );
  const init = await s.runOperation(`mutation { initRepository(input: { instance: "test" }) { ${OP_FIELDS} } }`);
  expect(init.status, JSON.stringify(init.error)).toBe('SUCCEEDED');
  const first = await s.runOperation(backupWebsite);
  expect(first.status, JSON.stringify(first.error)).toBe('SUCCEEDED');
  firstBackup = first.backupId!;
}, 120_000);

afterAll(async () => {
  await s?.close();
  process.env.TMPDIR = originalTmp;
  if (mounted) execFileSync('umount', ['-l', mnt]);
  if (mnt) await rm(mnt, { recursive: true, force: true });
  if (watchedTmp) await rm(watchedTmp, { recursive: true, force: true });
});

describe('the repository disk fills up', () => {
  it('mid-backup: FAILED naming the artifact and the full disk, nothing left, the earlier backup intact; after freeing space a backup succeeds', async () => {
    // Leave 12 MiB, then back up 40 MiB that does not compress or deduplicate.
    const ballast = path.join(mnt, 'ballast');
    await writeFile(ballast, Buffer.alloc(Math.max(0, (await freeBytes()) - (12 << 20))));
    await writeFile(path.join(s.sim.pvcDir('website', 'website-content'), 'big.bin'), randomBytes(40 << 20));

    const rec = await s.app.services.engine.waitFor(await startOperation(s, backupWebsite));
    expect(rec.status).toBe('FAILED');
    expect(rec.error?.code).toBe('REPOSITORY_FULL');
    expect(rec.error?.message).toMatch(/^pvc:website-content: the repository at .* is out of space: .*no space left on device/);
    await expectBackupLeftNothing(s, rec, 'website');
    expect(await s.app.services.backups.leftovers.list('test')).toEqual([]);
    expect(await filesMatching(watchedTmp, /^restic-temp/), 'no restic temp file left').toEqual([]);
    expect(await filesMatching(path.join(mnt, 'repo'), /-tmp-/), 'no half-written file in the repository').toEqual([]);
    expect(await listPods(kubeClientFor(s.sim.kubeconfigPath), 'website', `${HELPER_LABEL}=true`)).toEqual([]);

    // The disk entirely full: restic cannot even write its lock. That is a full disk, not a lock.
    const fh = await open(path.join(mnt, 'ballast2'), 'w');
    try {
      for (;;) await fh.write(Buffer.alloc(1 << 20));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      await fh.close();
    }
    const full = await s.app.services.engine.waitFor(await startOperation(s, backupWebsite));
    expect(full.status).toBe('FAILED');
    expect(full.error?.code).toBe('REPOSITORY_FULL');
    expect(full.error?.message).toMatch(/out of space/);
    expect(full.error?.message).not.toMatch(/locked/);
    await rm(path.join(mnt, 'ballast2'));
    await expectBackupLeftNothing(s, full, 'website');

    // The backup taken before the disk filled is whole: it restores (a drill) and check reads every pack.
    const verify = await s.runOperation(`mutation($id: ID!) { verifyBackup(id: $id) { ${OP_FIELDS} } }`, { id: firstBackup });
    expect(verify.status, JSON.stringify(verify.error)).toBe('SUCCEEDED');
    const check = await s.runOperation(`mutation { checkRepository(input: { instance: "test", readDataPercent: 100 }) { ${OP_FIELDS} } }`);
    expect(check.status, JSON.stringify(check.error)).toBe('SUCCEEDED');

    // Space freed: the same backup now completes.
    await rm(ballast);
    const again = await s.runOperation(backupWebsite);
    expect(again.status, JSON.stringify(again.error)).toBe('SUCCEEDED');
    const list = await backupsOf(s, 'website');
    expect(list.filter((b) => b.status === 'COMPLETE').map((b) => b.backupId).sort()).toEqual([firstBackup, again.backupId].sort());
    expect(list.map((b) => b.backupId)).not.toContain(rec.backupId);
  }, 120_000);
});
