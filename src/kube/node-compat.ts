// @kubernetes/client-node 2.0.1 depends on undici 8, which wants Node >= 22.19 and touches two
// Node 22 APIs while merely loading. We run on Node 20 and never send through undici (http.ts is
// our HTTP library), so stand-ins that are only looked up at load time are enough. Import this
// module before @kubernetes/client-node (src/kube/client.ts does).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const zlib = require('node:zlib') as Record<string, unknown>;
if (typeof zlib.createZstdDecompress !== 'function') {
  zlib.createZstdDecompress = (): never => { throw new Error('zstd decompression needs Node.js >= 22.15'); };
}
const workerThreads = require('node:worker_threads') as Record<string, unknown>;
if (typeof workerThreads.markAsUncloneable !== 'function') {
  workerThreads.markAsUncloneable = (): void => undefined;
}
