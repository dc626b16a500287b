// The config artifact's tar is read whole before anything is restored from it; a tar that is cut
// short or too big fails that read with its reason, never the server.
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { expect, it } from 'vitest';
import { readAppConfig, tarFiles } from '../../src/engine/restore/config.js';

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) p.entry({ name, size: body.length }, body);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const config = Buffer.from('apps:\n  gitea:\n    domain: git.example.org\n'.repeat(100));

it('reads every file of a whole tar', async () => {
  const files = await tarFiles(Readable.from([await tarOf({ 'config.yaml': config, 'secrets.yaml': Buffer.from('x: 1\n') })]));
  expect([...files.keys()]).toEqual(['config.yaml', 'secrets.yaml']);
  expect(files.get('config.yaml')!.content.equals(config)).toBe(true);
});

it('a tar cut inside an entry fails the read, not the process', async () => {
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown): void => { unhandled.push(err); };
  process.on('uncaughtException', onUncaught);
  try {
    const whole = await tarOf({ 'config.yaml': config });
    await expect(tarFiles(Readable.from([whole.subarray(0, 512 + 1000)]))).rejects.toThrow(/unexpected end/i);
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});

it('a tar bigger than the limit fails the read with that reason', async () => {
  const big = await tarOf({ 'config.yaml': Buffer.alloc(64 << 10, 0x61) });
  await expect(tarFiles(Readable.from([big]), 16 << 10)).rejects.toThrow(/larger than expected/);
});

it("an app file outside the app directory fails the read: a damaged artifact writes nowhere else", async () => {
  const one = Buffer.from('apps:\n  gitea:\n    domain: git.example.org\n');
  for (const name of ['app/../../../etc/cron.d/x', 'app/patches/../../secrets.yaml', 'app/..']) {
    const tar = await tarOf({ 'config.yaml': one, [name]: Buffer.from('x') });
    await expect(readAppConfig('gitea', Readable.from([tar])), name).rejects.toThrow(/outside the app directory/);
  }
  const ok = await readAppConfig('gitea', Readable.from([await tarOf({ 'config.yaml': one, 'app/manifest.yaml': Buffer.from('name: gitea\n'), 'app/patches/a.yaml': Buffer.from('a: 1\n') })]));
  expect(ok.dir.map((f) => f.path)).toEqual(['manifest.yaml', 'patches/a.yaml']);
  expect(ok.config).toEqual({ domain: 'git.example.org' });
});
