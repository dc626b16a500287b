// Shared checks of the fault tests (test/hardening/faults-*.test.ts): processes of this test
// process found through /proc, waiting for an operation to stream an artifact, "nothing left", and
// directories made immutable (a disk that takes no write).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { openExecSockets } from '../../src/kube/index.js';
import type { OperationRecord } from '../../src/engine/operations/index.js';
import type { SimApp } from './sim-app.js';

export interface ChildProcessInfo { pid: number; comm: string; argv: string[] }

/**
 * Direct children of this process (the server runs in process: its restic are our children).
 * Read synchronously: the fault tests kill what they find, and a slow scan of /proc under load
 * gave a short-lived restic time to finish between being found and being killed.
 */
export async function childProcesses(parent = process.pid): Promise<ChildProcessInfo[]> {
  const out: ChildProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const [state, ppid] = stat.slice(close + 2).split(' ');
      if (Number(ppid) !== parent || state === 'Z') continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.push({ pid: Number(name), comm, argv });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

export async function resticChildren(parent = process.pid): Promise<ChildProcessInfo[]> {
  return (await childProcesses(parent)).filter((p) => p.comm === 'restic');
}

/**
 * Stops (SIGSTOP) the server's restic whose argv holds every one of `words` once it has moved
 * `minBytes` (/proc/<pid>/io: `rchar` for a backup reading its stdin, `wchar` for a dump writing
 * its stdout; polled every few ms): a fault can then land mid-stream however fast the machine
 * streams. `resume` sends SIGCONT. `parent`: the server's pid when it is not this process.
 */
export async function pauseResticOnce(
  words: string[], counter: 'rchar' | 'wchar', minBytes: number, opts: { parent?: number; timeoutMs?: number } = {},
): Promise<{ pid: number; resume: () => void }> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = (await resticChildren(opts.parent)).find((p) => words.every((w) => p.argv.includes(w)));
    if (found) {
      try {
        const moved = Number(new RegExp(`^${counter}: (\\d+)$`, 'm').exec(readFileSync(`/proc/${found.pid}/io`, 'utf8'))?.[1] ?? 0);
        if (moved >= minBytes) {
          process.kill(found.pid, 'SIGSTOP');
          return { pid: found.pid, resume: () => { try { process.kill(found.pid, 'SIGCONT'); } catch { /* gone */ } } };
        }
      } catch {
        // it ended meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 3));
  }
  throw new Error(`no restic ${words.join(' ')} reached ${counter} ${minBytes} within ${timeoutMs} ms`);
}

/**
 * Resolves once the operation's progress shows `artifact` with at least `minBytes` done; `alone`:
 * once it is the only one streaming (the small artifacts beside it are written).
 */
export async function whenStreaming(s: SimApp, opId: string, artifact: string, minBytes: number, opts: { alone?: boolean } = {}): Promise<void> {
  for await (const ev of s.app.services.pubsub.subscribe(`operation:${opId}`, { bufferSize: 10_000 })) {
    const p = ev.operation.progress;
    if ((opts.alone ? p.phase === `backing up ${artifact}` : p.phase.includes(artifact)) && p.bytesDone >= minBytes) return;
    if (ev.type === 'FINISHED') throw new Error(`finished before streaming ${artifact}: ${ev.operation.status} ${JSON.stringify(ev.operation.error)}`);
  }
}

export async function startOperation(s: SimApp, mutation: string, variables?: Record<string, unknown>): Promise<string> {
  const res = await s.gql<Record<string, { __typename: string; operation?: { operationId: string }; message?: string }>>(mutation, variables);
  const payload = Object.values(res.data ?? {})[0];
  if (!payload?.operation) throw new Error(`no operation: ${JSON.stringify(res)}`);
  return payload.operation.operationId;
}

/** Backups of an app as GraphQL lists them (fresh from the repository). */
export async function backupsOf(s: SimApp, app: string, instance = 'test'): Promise<Array<{ backupId: string; status: string }>> {
  s.app.services.repositories.invalidate(instance);
  const res = await s.gql<{ instance: { app: { backups: { edges: Array<{ node: { backupId: string; status: string } }> } } } }>(
    `query($i: String!, $app: String!) { instance(name: $i) { app(name: $app) { backups(first: 100) { edges { node { backupId status } } } } } }`, { i: instance, app });
  if (!res.data) throw new Error(JSON.stringify(res.errors));
  return res.data.instance.app.backups.edges.map((e) => e.node);
}

/** A failed backup left no snapshot, no listed backup, no exec socket and no restic process. */
export async function expectBackupLeftNothing(s: SimApp, rec: OperationRecord, app: string, instance = 'test'): Promise<void> {
  expect(rec.backupId, 'the operation names its backup id').toBeTruthy();
  const inst = await s.app.services.store.requireInstance(instance);
  const repo = await s.app.services.repositories.open(inst);
  expect(await repo.snapshots({ tags: [`backup:${rec.backupId}`], refresh: true }), 'no snapshot of the failed backup').toEqual([]);
  expect((await backupsOf(s, app, instance)).map((b) => b.backupId)).not.toContain(rec.backupId);
  await expectNoProcessesLeft();
}

export async function expectNoProcessesLeft(): Promise<void> {
  expect(openExecSockets(), 'no exec socket left open').toBe(0);
  // A killed restic is reaped a moment after its stream failed.
  await expect.poll(async () => (await resticChildren()).map((p) => p.argv.join(' ')), { timeout: 10_000, interval: 100 }).toEqual([]);
}

/**
 * The lock files of a local repository. Not the temp file restic writes one as and renames: a
 * restic interrupted while it saves its lock (a loaded machine, where a stream's bytes wait in the
 * socket before restic has locked) leaves that file, which restic does not take for a lock
 * (DESIGN.md, Faults).
 */
export async function lockFiles(repoDir: string): Promise<string[]> {
  return (await readdir(path.join(repoDir, 'locks')).catch(() => [] as string[])).filter((f) => !f.includes('-tmp-'));
}

/** `chattr +i` / `-i` of a directory: nothing can be made, removed or renamed in it, root or not. */
export function immutable(dir: string, on: boolean): void {
  execFileSync('chattr', [on ? '+i' : '-i', dir], { stdio: 'ignore' });
}

/** Whether this file system lets root make a directory immutable (ext4 and xfs do; tmpfs and overlayfs do not). */
export function immutableDirsWork(): boolean {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wild-chattr-'));
  try {
    immutable(dir, true);
    let refused = false;
    try {
      writeFileSync(path.join(dir, 'probe'), '');
    } catch {
      refused = true;
    }
    immutable(dir, false);
    return refused;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
