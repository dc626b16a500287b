// A streamed answer (a subscription's event stream) waits for a slow client many times; each wait
// must leave no listener behind on the response.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { drainedOrClosed } from '../../src/http-fast.js';

it('waiting for a slow client many times leaves no listener behind', async () => {
  const chunk = Buffer.alloc(256 << 10, 0x61);
  let waits = 0;
  const counts: number[] = [];
  const server = http.createServer((_req, res) => {
    void (async () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const base = res.listenerCount('close');
      for (let i = 0; i < 64; i++) {
        if (!res.write(chunk)) { waits++; await drainedOrClosed(res); }
        counts.push(res.listenerCount('close') - base, res.listenerCount('drain'));
      }
      res.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const received = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
        let n = 0;
        // A slow reader: a pause after every chunk read, so the server waits again and again.
        res.on('data', (c: Buffer) => { n += c.length; res.pause(); setTimeout(() => res.resume(), 2); });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      }).on('error', reject);
    });
    expect(received).toBe(64 * chunk.length);
    expect(waits).toBeGreaterThan(10);
    expect(Math.max(...counts)).toBe(0);
  } finally {
    server.close();
  }
});

it('a client that goes away ends the wait', async () => {
  let waiting = false;
  let ended = false;
  const server = http.createServer((_req, res) => {
    res.writeHead(200);
    if (!res.write(Buffer.alloc(8 << 20))) {
      waiting = true;
      void drainedOrClosed(res).then(() => { ended = true; });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/' }, (res) => { res.pause(); setTimeout(() => { req.destroy(); resolve(); }, 100); });
    });
    expect(waiting).toBe(true);
    await expect.poll(() => ended, { timeout: 5000 }).toBe(true);
  } finally {
    server.close();
  }
});
