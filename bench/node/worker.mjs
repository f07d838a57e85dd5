// Node BullMQ peer of the worker-throughput benchmark: a Worker with a
// no-op processor, closed gracefully on SIGTERM or SIGINT.
//
//   node worker.mjs --host 127.0.0.1 --port 6379 --queue bench --concurrency 16
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';

// BullMQ as installed (pinned) in compat/, resolved the way `import 'bullmq'`
// resolves there (its package `main`: the CommonJS build).
const require = createRequire(new URL('../../compat/package.json', import.meta.url));
const { Worker } = require('bullmq');

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '6379' },
    queue: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
  },
});
if (!args.queue) {
  console.error('worker.mjs: --queue is required');
  process.exit(2);
}

const worker = new Worker(args.queue, async () => {}, {
  connection: { host: args.host, port: Number(args.port) },
  concurrency: Number(args.concurrency),
});
worker.on('error', (err) => console.error('worker.mjs: worker error:', err));

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  try {
    await worker.close();
    process.exit(0);
  } catch (err) {
    console.error('worker.mjs: close failed:', err);
    process.exit(1);
  }
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
