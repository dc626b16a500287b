// A restore drill of the artifacts nothing loads into scratch space (a cluster backup's, an app's
// settings and roles): read back whole, as many bytes as recorded, and a tar (the instance's files)
// whole, with as many files as were put in. The passing case runs against real restic in test/backup/apps.test.ts.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ArtifactRecord } from '../../src/engine/backup/manifest.js';
import { checkReadBack } from '../../src/plugins/read-back.js';
import { tarStream } from '../../src/plugins/config/tar.js';

async function bytesOf(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const files = ['config.yaml', 'secrets.yaml', 'kubeconfig'];
const tar = await bytesOf(tarStream(files.map((name) => ({ name, content: Buffer.from(`${name}: contents\n`), mode: 0o600 }))));
const record = (kind: string, sizeBytes: number, meta: Record<string, unknown> = {}): ArtifactRecord => ({ kind, name: 'home', filename: `_cluster/${kind}-home${kind === 'etcd' ? '.db' : '.tar'}`, snapshotId: 'abcd1234', sizeBytes, addedBytes: null, meta });
const check = (a: ArtifactRecord, b: Buffer) => checkReadBack(a, Readable.from([b.subarray(0, 700), b.subarray(700)]));

describe('checkReadBack', () => {
  it('passes what was recorded', async () => {
    expect(await check(record('cluster-config', tar.length, { files }), tar)).toBe(`cluster-config:home: 3 files (config.yaml, secrets.yaml, kubeconfig), ${tar.length} bytes read back whole, as recorded`);
    const snapshot = Buffer.alloc(5000, 7);
    expect(await check(record('etcd', snapshot.length), snapshot)).toBe('etcd:home: 5000 bytes read back whole, as recorded');
  });

  it('fails a tar cut short, one of another file count, and bytes other than recorded', async () => {
    // Cut at a block boundary before the end-of-archive marker: as long as recorded, but not whole.
    const cut = tar.subarray(0, 3 * 1024);
    await expect(check(record('cluster-config', cut.length, { files }), cut)).rejects.toThrow('cluster-config:home: not a whole tar archive (no end-of-archive marker)');
    await expect(check(record('cluster-config', tar.length, { files: [...files, 'talos/generated/talosconfig'] }), tar)).rejects.toThrow('cluster-config:home: 3 files in the archive, the backup recorded 4');
    await expect(check(record('etcd', 4999), Buffer.alloc(5000))).rejects.toThrow('etcd:home: 5000 bytes read back, the backup recorded 4999');
  });
});
