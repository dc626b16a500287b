// A stopped app's volume is read through a helper pod; its size estimate (the progress's total, its
// percent and ETA) is that volume's `du` in the same helper pod, not the claim's capacity: a 1 GiB
// claim holding a few MB would show a percent and an ETA off by hundreds of times.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeClientFor, listWorkloads, scaleAndWait } from '../../src/kube/index.js';
import { OP_FIELDS, initRepository, startSimApp, type SimApp } from '../helpers/sim-app.js';

let s: SimApp;

beforeAll(async () => {
  s = await startSimApp({ apps: ['website', 'gitea'] });
  await initRepository(s);
}, 180_000);
afterAll(async () => { await s?.close(); });

it("estimates a stopped app's volume by `du` in its helper pod, not by the claim's capacity", async () => {
  const pvc = s.sim.pvcDir('website', 'website-content');
  await writeFile(path.join(pvc, 'big.bin'), Buffer.alloc(3 << 20, 7));
  const client = kubeClientFor(s.sim.kubeconfigPath);
  for (const w of await listWorkloads(client, 'website')) await scaleAndWait(client, w, 0, { timeoutMs: 30_000 });
  const du = Number(spawnSync('du', ['-s', '-k', pvc], { encoding: 'utf8' }).stdout.split(/\s+/)[0]) * 1024;
  expect(du).toBeGreaterThan(3 << 20);

  const done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "website" }) { ${OP_FIELDS} } }`);
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  const log = await s.app.services.engine.logTail(done.id, 200);
  expect(log.find((l) => l.includes('pvc:website-content: about')), log.join('\n')).toContain(`pvc:website-content: about ${du} bytes`);
  // The artifact is the volume's files (the claim is 1 GiB).
  const res = await s.gql<{ instance: { app: { latestBackup: { artifacts: Array<{ kind: string; sizeBytes: number }> } } } }>(
    `{ instance(name: "test") { app(name: "website") { latestBackup { artifacts { kind sizeBytes } } } } }`);
  const art = res.data!.instance.app.latestBackup.artifacts.find((a) => a.kind === 'pvc')!;
  expect(art.sizeBytes).toBeGreaterThan(3 << 20);
  expect(art.sizeBytes).toBeLessThan(2 * du);
}, 180_000);

it("a small stopped volume whose stream ends before its du ran is estimated at the bytes it streamed, not at its claim's capacity", async () => {
  const client = kubeClientFor(s.sim.kubeconfigPath);
  for (const w of await listWorkloads(client, 'gitea')) await scaleAndWait(client, w, 0, { timeoutMs: 30_000 });
  // du runs once the helper pod has streamed the volume and gone; the roles' dump, held longer,
  // keeps the backup going meanwhile (a backup that ends first stops its estimates).
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  s.sim.kube.runtime.execGate = (command) => (command[0] === 'du' ? sleep(2000) : command.includes('--roles-only') ? sleep(4000) : undefined);
  let done;
  try {
    done = await s.runOperation(`mutation { backupApp(input: { instance: "test", app: "gitea" }) { ${OP_FIELDS} } }`);
  } finally {
    s.sim.kube.runtime.execGate = undefined;
  }
  expect(done.status, JSON.stringify(done.error)).toBe('SUCCEEDED');
  const svc = s.app.services;
  const pvc = (await svc.backups.get(await svc.store.requireInstance('test'), done.backupId!))!.manifest!.artifacts.find((a) => a.kind === 'pvc')!;
  const log = await svc.engine.logTail(done.id, 200);
  expect(log.find((l) => l.includes('pvc:gitea-data: about')), log.join('\n')).toContain(`pvc:gitea-data: about ${pvc.sizeBytes} bytes`);
}, 180_000);
