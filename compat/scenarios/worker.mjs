// A Node BullMQ Worker that prints one line per job it processes and stops
// cleanly on SIGTERM.
// params: { queue, concurrency?, name?, lockDuration?, stalledInterval?,
//           maxStalledCount?, behavior?: 'echo' | 'fail' }
// Job data may ask it to wait: { node_sleep_ms }.
import { Worker, connection, emit, params, prefix } from './lib.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const worker = new Worker(
  params.queue,
  async (job) => {
    emit({ event: 'processing', id: job.id, name: job.name, data: job.data, attemptsMade: job.attemptsMade });
    if (job.data && job.data.node_sleep_ms) await sleep(job.data.node_sleep_ms);
    if (params.behavior === 'fail') throw new Error(`node says no to ${job.id}`);
    return { echo: job.data, by: 'node' };
  },
  options(),
);

// Only the options given: an explicit `undefined` would override BullMQ's
// defaults.
function options() {
  const opts = { connection, prefix, concurrency: params.concurrency || 1 };
  for (const key of ['name', 'lockDuration', 'stalledInterval', 'maxStalledCount']) {
    if (params[key] !== undefined) opts[key] = params[key];
  }
  return opts;
}
worker.on('error', (err) => emit({ event: 'error', message: String(err && err.message) }));
await worker.waitUntilReady();
emit({ event: 'ready' });

process.on('SIGTERM', async () => {
  await worker.close();
  emit({ event: 'closed' });
  process.exit(0);
});
