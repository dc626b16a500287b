// The simulated MariaDB says why it did not start (its error log goes away with the test's
// directory), and a port that another process took before the server bound it is the reason a
// start chooses another port: what the retry reads is real MariaDB's own line.
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MariadbServer } from '../../src/sim/databases.js';

let dir = '';
let taken: Server;
let port = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wild-mariadb-port-'));
  taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  port = (taken.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => taken.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

it('a port taken by another process: the start fails with MariaDB\'s own reason, which a chosen port is chosen again for', async () => {
  const db = new MariadbServer('mysql', 'mysql', path.join(dir, 'data'), path.join(dir, 'run'), 'pw');
  db.port = port; // a port kept from an earlier start: not chosen again
  try {
    await expect(db.start()).rejects.toThrow(/exited during start-up .*(Address already in use|Bind on TCP\/IP port)/i);
  } finally {
    await db.stop();
  }
}, 120_000);

it('a port it chose itself that is then taken: it starts on another', async () => {
  // The first free port it is offered is the taken one, as when another test file's server bound it first.
  class Offered extends MariadbServer {
    offered = 0;
    protected override pickPort(): Promise<number> {
      return this.offered++ === 0 ? Promise.resolve(port) : super.pickPort();
    }
  }
  const db = new Offered('mysql', 'mysql', path.join(dir, 'data2'), path.join(dir, 'run2'), 'pw');
  try {
    await db.start();
    expect(db.offered).toBe(2);
    expect(db.port).not.toBe(port);
    expect((await db.query('select 1')).trim()).toBe('1');
  } finally {
    await db.stop();
  }
}, 120_000);
