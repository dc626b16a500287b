// A Wild Backup server in a child process (tests that kill it with SIGKILL, as a crash would).
import { spawn, type ChildProcess } from 'node:child_process';
import { ADMIN_TOKEN, READONLY_TOKEN } from './app.js';

/** Starts `wild-backup serve` on the data directory; resolves with the process and its GraphQL URL once it listens. */
export async function spawnServer(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const env = { WILD_BACKUP_TOKEN: ADMIN_TOKEN, WILD_BACKUP_READONLY_TOKEN: READONLY_TOKEN };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--data', dataDir, '--port', '0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /GraphQL and GraphiQL: (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.stderr!.resume();
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  return { child, url };
}

/** SIGKILL, as a crash; resolves once the process is gone. */
export function killServer(child: ChildProcess): Promise<void> {
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  return gone;
}

/** A GraphQL request to the server at `url` with the admin token; its data. */
export async function gqlAt<T>(url: string, query: string, variables?: Record<string, unknown>): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ query, variables }) });
  return ((await res.json()) as { data: T }).data;
}
