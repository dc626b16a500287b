// CLI entry: `wild-backup serve --data DIR --host 127.0.0.1 --port 4000`.
// Parses options (flags over environment), starts the server, stops cleanly on SIGINT/SIGTERM.
import './production.js'; // before anything that loads graphql
import { parseArgs } from 'node:util';
import path from 'node:path';
import { z } from 'zod';
import { buildApp } from './server.js';
import { SERVER_NODE_FLAGS, startedWithServerFlags } from './util/heap.js';

const USAGE = `usage: wild-backup serve [--data DIR] [--host HOST] [--port N] [--concurrency N]
  --data DIR        Wild Central data directory (env WILD_CENTRAL_DATA, default /var/lib/wild-central)
  --host HOST       interface to bind (env WILD_BACKUP_HOST, default 127.0.0.1)
  --port N          port (env WILD_BACKUP_PORT, default 4000; 0 picks a free one)
  --concurrency N   operations run at once (default 2)
Tokens: WILD_BACKUP_TOKEN / WILD_BACKUP_READONLY_TOKEN, or <data>/wild-backup/tokens.json (made on first start).`;

const optionsSchema = z.object({
  data: z.string().min(1),
  host: z.string().min(1),
  port: z.coerce.number().int().min(0).max(65535),
  concurrency: z.coerce.number().int().min(1).max(64),
});

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      concurrency: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || (positionals[0] ?? 'serve') !== 'serve') {
    console.log(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const parsed = optionsSchema.safeParse({
    data: values.data ?? process.env.WILD_CENTRAL_DATA ?? '/var/lib/wild-central',
    host: values.host ?? process.env.WILD_BACKUP_HOST ?? '127.0.0.1',
    port: values.port ?? process.env.WILD_BACKUP_PORT ?? 4000,
    concurrency: values.concurrency ?? 2,
  });
  if (!parsed.success) {
    for (const i of parsed.error.issues) console.error(`--${i.path.join('.')}: ${i.message}`);
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const opts = parsed.data;
  const app = await buildApp({ dataDir: path.resolve(opts.data), host: opts.host, port: opts.port, concurrency: opts.concurrency });
  const { url } = await app.start();
  console.log(`Wild Backup serving ${path.resolve(opts.data)}`);
  console.log(`GraphQL and GraphiQL: ${url}`);
  console.log(app.tokens.generated
    ? `Generated access tokens in ${app.tokens.source} (mode 0600): "admin" may change things, "readOnly" may only look.`
    : `Access tokens: ${app.tokens.source}`);
  if (!startedWithServerFlags()) {
    console.log(`Note: node was started without ${SERVER_NODE_FLAGS.join(' ')}; streams will cost more CPU in garbage collection (npm start passes it; docs/DESIGN.md).`);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping`);
    app.stop().then(() => process.exit(0), (err) => {
      console.error(err);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`wild-backup: ${(err as Error).message}`);
  process.exit(1);
});
