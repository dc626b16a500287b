// One server per data directory: operations, locks and restic caches assume it. A second server
// pointed at the same directory refuses to start and names the first one's pid.
import { open, readFile, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<state>/server.lock`; a lock whose process is gone is taken over. Returns the release. */
export async function lockDataDir(stateDir: string): Promise<() => Promise<void>> {
  const file = path.join(stateDir, 'server.lock');
  await mkdir(stateDir, { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
        if (owner === process.pid) await unlink(file).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (pid > 0 && alive(pid)) {
        throw new DataDirInUseError(`another Wild Backup server (pid ${pid}${pid === process.pid ? ', this process' : ''}) is serving this data directory (${file})`);
      }
      await unlink(file).catch(() => undefined); // its owner died: take over
    }
  }
  throw new DataDirInUseError(`could not take ${file}`);
}
