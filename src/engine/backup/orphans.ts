// After a crash, the restic processes the dead server started may still run: a `restic backup
// --stdin` whose input closed would even commit a truncated snapshot. Recovery stops them first.
import { readdir, readFile } from 'node:fs/promises';

async function cmdlineOf(pid: string): Promise<string[] | null> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** pids of restic processes whose arguments carry the tag `backup:<id>`. */
export async function resticProcessesOf(backupId: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const argv = await cmdlineOf(pid);
    if (!argv || !argv[0]?.endsWith('restic')) continue;
    if (argv.some((a, i) => a === `backup:${backupId}` && argv[i - 1] === '--tag')) out.push(Number(pid));
  }
  return out;
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** Interrupts them (restic then stores nothing), waits, and kills what is left after 10 s. */
export async function stopOrphanedRestic(backupId: string, log: (l: string) => void): Promise<void> {
  const pids = await resticProcessesOf(backupId);
  if (pids.length === 0) return;
  for (const pid of pids) { try { process.kill(pid, 'SIGINT'); } catch { /* gone */ } }
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(alive)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  log(`stopped ${pids.length} restic process(es) left by the interrupted backup ${backupId}`);
}
