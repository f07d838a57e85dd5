// Node BullMQ producer of the worker-throughput benchmark: adds --jobs no-op
// jobs with Queue.addBulk in chunks of --chunk, and prints one JSON line
// {"added": N, "seconds": S} where S covers only the addBulk calls (not
// Node's start-up or the connection).
//
//   node enqueue.mjs --host 127.0.0.1 --port 6379 --queue bench --jobs 100000 --chunk 1000
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';

// BullMQ as installed (pinned) in compat/, resolved the way `import 'bullmq'`
// resolves there (its package `main`: the CommonJS build).
const require = createRequire(new URL('../../compat/package.json', import.meta.url));
const { Queue } = require('bullmq');

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '6379' },
    queue: { type: 'string' },
    jobs: { type: 'string', default: '100000' },
    chunk: { type: 'string', default: '1000' },
  },
});
if (!args.queue) {
  console.error('enqueue.mjs: --queue is required');
  process.exit(2);
}
const jobs = Number(args.jobs);
const chunk = Math.max(1, Number(args.chunk));

const queue = new Queue(args.queue, {
  connection: { host: args.host, port: Number(args.port) },
});
await queue.waitUntilReady();

let added = 0;
const started = process.hrtime.bigint();
while (added < jobs) {
  const n = Math.min(chunk, jobs - added);
  const batch = Array.from({ length: n }, () => ({
    name: 'noop',
    data: {},
    opts: { removeOnComplete: true },
  }));
  const result = await queue.addBulk(batch);
  added += result.length;
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;

await queue.close();
console.log(JSON.stringify({ added, seconds }));
