// `npm run demo`: a simulated Wild Cloud instance plus the Wild Backup server against it.
// Flags: --port N (GraphQL server port), --data DIR (Wild Central data dir + cluster state; default a
// new directory), --ready-file PATH (JSON {graphqlUrl, token, kubeconfig, dataDir} once all answers).
// SIGINT/SIGTERM stop every process it started.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSimCluster, type SimCluster } from './fixture.js';
import { buildApp, type WildBackupApp } from '../server.js';

interface Flags { port?: number; data?: string; readyFile?: string }

function parseFlags(argv: string[]): Flags {
  const f: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [k, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = (): string => { const v = inline ?? argv[++i]; if (v === undefined) throw new Error(`${k} needs a value`); return v; };
    if (k === '--port') { f.port = Number(val()); if (!Number.isInteger(f.port) || f.port < 0 || f.port > 65535) throw new Error('--port must be a port number'); }
    else if (k === '--data') f.data = path.resolve(val());
    else if (k === '--ready-file') f.readyFile = path.resolve(val());
    else if (k === '--help' || k === '-h') { console.log('usage: npm run demo -- [--port N] [--data DIR] [--ready-file PATH]'); process.exit(0); }
    else throw new Error(`unknown flag ${a}`);
  }
  return f;
}


async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const root = flags.data ?? mkdtempSync(path.join(os.tmpdir(), 'wild-backup-demo-'));
  mkdirSync(root, { recursive: true });
  console.log(`demo: starting the simulated Wild Cloud cluster in ${root} ...`);
  let sim: SimCluster | undefined;
  let server: WildBackupApp | undefined;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('demo: stopping ...');
    await server?.stop().catch((e: unknown) => console.error('demo: server stop failed:', e));
    await sim?.stop().catch((e: unknown) => console.error('demo: sim stop failed:', e));
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    // The cluster state lives inside the data dir; a re-run with the same --data starts afresh.
    for (const sub of ['cluster', 'wild-central']) rmSync(path.join(root, sub), { recursive: true, force: true });
    sim = await startSimCluster({ dir: root, instance: 'demo', sizes: { dbRows: 2000, photoFiles: 200, photoBytes: 64 << 20 } });
    console.log(`demo: cluster up (${sim.apiUrl}), instance "demo" with apps: ${sim.apps.join(', ')}`);
    const token = process.env.WILD_BACKUP_TOKEN ?? randomBytes(24).toString('base64url');

    server = await buildApp({
      dataDir: sim.dataDir, host: '127.0.0.1', port: flags.port ?? 4000,
      env: { ...process.env, WILD_BACKUP_TOKEN: token },
    });
    const graphqlUrl = (await server.start()).url;
    const ready = { graphqlUrl, token, kubeconfig: sim.kubeconfigPath, dataDir: sim.dataDir };
    if (flags.readyFile) {
      const tmp = `${flags.readyFile}.tmp`;
      writeFileSync(tmp, JSON.stringify(ready, null, 2) + '\n', { mode: 0o600 });
      renameSync(tmp, flags.readyFile);
    }
    console.log('');
    console.log(`  GraphiQL:   ${graphqlUrl}?token=${token}`);
    console.log(`  Token:      ${token}   (Authorization: Bearer <token>)`);
    console.log(`  Kubeconfig: ${sim.kubeconfigPath}   (kubectl --kubeconfig ... get pods -A)`);
    console.log(`  Data dir:   ${sim.dataDir}   (WILD_CENTRAL_DATA)`);
    console.log('\n  Ctrl-C stops everything.');
  } catch (err) {
    console.error('demo: failed:', err);
    await stop(1);
  }
}

void main();
