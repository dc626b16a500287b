// Artifact sources backed by local commands, to test the pipeline without a cluster.
import { spawn } from 'node:child_process';
import type { ArtifactSource } from '../../src/engine/backup/source.js';

export function commandSource(kind: string, name: string, argv: string[], estimate: number | null = null): ArtifactSource {
  return {
    artifact: { kind, name },
    extension: '.bin',
    estimate: async () => estimate,
    async open(signal) {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], signal });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
      const finished = new Promise<Record<string, unknown>>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve({ command: argv[0] }) : reject(new Error(`${argv[0]} exited with code ${code}: ${stderr.trim()}`))));
      });
      finished.catch(() => undefined);
      return { stream: child.stdout, finished };
    },
  };
}
