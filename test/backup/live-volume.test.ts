// A running app writes to its volume while the backup reads it (a log appended, a photo
// uploaded). GNU tar then says "file changed as we read it" and exits 1, yet its archive is whole:
// the backup is COMPLETE, the file is held as tar read it, the warning names it (operation log,
// message, BackupArtifact.warnings), and every other file is exact. Any other exit 1 stays a failure.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ResticRepository } from '../../src/engine/restic/index.js';
import { tarChangedWhileRead } from '../../src/plugins/volumes/pvc.js';
import { treeDigest, untar } from '../helpers/compare.js';
import { OP_FIELDS, useSimApp } from '../helpers/sim-app.js';

const sim = useSimApp(['website']);

describe("a live app's volume", () => {
  it('is backed up COMPLETE while a file of it is being appended, with a warning naming that file', async () => {
    const s = sim();
    const pvc = s.sim.pvcDir('website', 'website-content');
    const log = path.join(pvc, 'app.log');
    await writeFile(log, Buffer.alloc(32 << 20, 0x61));
    // Appends all the time the backup runs: tar reads 32 MiB of it, and it changes meanwhile.
    const writer = spawn('sh', ['-c', 'while :; do printf "line\\n" >> "$1"; done', 'sh', log], { stdio: 'ignore' });
    let done;
    try {
      done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`);
    } finally {
      writer.kill('SIGKILL');
    }
    expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
    expect(done.message).toContain('warnings for pvc:website-content');
    const lines = await s.app.services.engine.logTail(done.id, 200);
    expect(lines.find((l) => l.includes('pvc:website-content: warning:')), lines.join('\n')).toMatch(/1 file changed while tar read it \(the app was writing\): \.\/app\.log/);

    const res = await s.gql<{ instance: { app: { latestBackup: { status: string; artifacts: Array<{ kind: string; warnings: string[]; snapshot: { snapshotId: string; paths: string[] } }> } } } }>(
      `{ instance(name: "test") { app(name: "website") { latestBackup { status artifacts { kind warnings snapshot { snapshotId paths } } } } } }`);
    const backup = res.data!.instance.app.latestBackup;
    expect(backup.status).toBe('COMPLETE');
    const pvcArt = backup.artifacts.find((a) => a.kind === 'pvc')!;
    expect(pvcArt.warnings).toHaveLength(1);
    expect(pvcArt.warnings[0]).toContain('./app.log');
    expect(backup.artifacts.filter((a) => a.kind !== 'pvc').every((a) => a.warnings.length === 0)).toBe(true);

    // The archive is whole: every other file exactly as on the volume, the log as tar read it.
    const repo: ResticRepository = await s.app.services.repositories.open(await s.app.services.store.requireInstance('test'));
    const out = await mkdtemp(path.join(tmpdir(), 'wild-live-'));
    try {
      await untar(repo.dump(pvcArt.snapshot.snapshotId, pvcArt.snapshot.paths[0]!), out);
      const isLog = (rel: string) => rel === 'app.log';
      expect(await treeDigest(out, { skip: isLog })).toEqual(await treeDigest(pvc, { skip: isLog }));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('which exit 1 of tar is taken', () => {
  it("only GNU tar's warnings for files changed, shrunk or removed while read", () => {
    const changed = 'tar: ./a.log: file changed as we read it\ntar: ./b\\:c: File shrank by 1 byte; padding with zeros\ntar: ./d: File removed before we read it\n';
    expect(tarChangedWhileRead(1, changed)).toEqual([expect.stringMatching(/^3 files changed while tar read them \(the app was writing\): \.\/a\.log, \.\/b\\:c, \.\/d;/)]);
    const many = Array.from({ length: 12 }, (_, i) => `tar: ./f${i}: file changed as we read it`).join('\n');
    expect(tarChangedWhileRead(1, many)![0]).toContain('./f9 and 2 more');
    expect(tarChangedWhileRead(1, 'tar: .: file changed as we read it\n')![0]).toContain("(the app was writing): the volume's top directory;");
    // Anything else is a failure: another tar line, busybox's errors, another exit code, nothing said.
    expect(tarChangedWhileRead(1, `${changed}tar: ./e: Cannot open: Permission denied\n`)).toBeNull();
    expect(tarChangedWhileRead(1, "tar: can't open './x': Permission denied\n")).toBeNull();
    expect(tarChangedWhileRead(2, changed)).toBeNull();
    expect(tarChangedWhileRead(1, '')).toBeNull();
    // A stderr tail kept full (64 KiB) may start inside a line: that line alone is let go.
    const full = 'ged as we read it\n' + 'tar: ./g: file changed as we read it\n'.repeat(Math.ceil((64 << 10) / 36));
    expect(tarChangedWhileRead(1, full)).not.toBeNull();
    expect(tarChangedWhileRead(1, 'ged as we read it\ntar: ./g: file changed as we read it\n')).toBeNull();
  });
});
