// Listens with QueueEvents and prints what it received once it has seen
// params.until (e.g. { completed: 1, failed: 1 }) or params.timeoutMs passed.
// params: { queue, until, timeoutMs? }
import { QueueEvents, connection, emit, params, prefix } from './lib.mjs';

const events = new QueueEvents(params.queue, { connection, prefix });
const received = [];
const counts = {};
const done = new Promise((resolve) => {
  const check = () => {
    if (Object.entries(params.until).every(([name, n]) => (counts[name] || 0) >= n)) resolve();
  };
  for (const name of ['added', 'waiting', 'active', 'progress', 'completed', 'failed', 'delayed', 'stalled', 'retries-exhausted', 'drained']) {
    events.on(name, (args) => {
      received.push({ event: name, ...args });
      counts[name] = (counts[name] || 0) + 1;
      check();
    });
  }
});
events.on('error', (err) => emit({ event: 'error', message: String(err && err.message) }));
await events.waitUntilReady();
emit({ ready: true });
let timer;
const timeout = new Promise((resolve) => {
  timer = setTimeout(resolve, params.timeoutMs || 20000);
});
await Promise.race([done, timeout]);
clearTimeout(timer);
emit({ received, counts });
await events.close();
