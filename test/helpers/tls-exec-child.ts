// Runs in its own process (test/kube/ciphers.test.ts), so that the CPU features OpenSSL sees can be
// changed for it (OPENSSL_ia32cap): starts the simulated cluster, streams random bytes through a pod
// with execStream, and prints the client's measured AEAD order, the suite the exec negotiated and
// whether the bytes came back whole, as one JSON line.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { clientAeadOrder } from '../../src/kube/ciphers.js';
import { execStream, findReadyPod, kubeClientFor } from '../../src/kube/index.js';
import { startSimKube } from '../../src/sim/index.js';
import { appObjects } from '../kube/objects.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sim = await startSimKube();
try {
  sim.apply(appObjects('gitea'));
  await sim.waitForPods();
  const client = kubeClientFor(sim.kubeconfigPath);
  const pod = (await findReadyPod(client, 'gitea', 'app=gitea'))!.name;
  const input = randomBytes(4 << 20);
  const ex = await execStream(client, { namespace: 'gitea', pod, command: ['cat'], stdin: Readable.from([input]) });
  const chunks: Buffer[] = [];
  for await (const c of ex.stdout as AsyncIterable<Buffer>) chunks.push(c);
  await ex.done;
  process.stdout.write(JSON.stringify({ order: clientAeadOrder(), cipher: ex.tlsCipher, intact: sha(Buffer.concat(chunks)) === sha(input) }) + '\n');
} finally {
  await sim.stop();
}
