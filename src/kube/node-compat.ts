// No longer imported by src/kube: it loads nothing of @kubernetes/client-node at run time (type-only
// imports; see docs/design/kube-sim.md "Memory"). Kept for whoever still loads client-node's runtime
// on Node 20 (bench/lib-server.ts preloads it for its esbuild bundle): client-node 2.0.1 depends on
// undici 8, which wants Node >= 22.19 and touches two Node 22 APIs while merely loading; stand-ins
// that are only looked up at load time are enough. Import it before @kubernetes/client-node.
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
