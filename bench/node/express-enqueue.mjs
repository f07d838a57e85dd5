// The reference of the http-enqueue benchmark: the enqueue endpoint a team
// typically writes in front of BullMQ. Express with its JSON body parser,
// one BullMQ Queue per queue name (created on first use, then cached), all
// sharing one ioredis connection as BullMQ's docs suggest; one Node process,
// no cluster module.
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3000 node express-enqueue.mjs
//
// POST /api/v1/queues/:queue/jobs  {"name": "...", "data": {...}, "opts": {...}}
//   -> 201 {"id": "<job id>"} after `await queue.add(name, data, opts)`
//   -> 400 when `name` is missing
// GET /health -> 200 (the process is listening)
//
// Prints one line, `express-enqueue listening on http://HOST:PORT`, once it
// accepts connections. SIGTERM or SIGINT: stop accepting, close the queues
// and the connection, exit 0.
import { createRequire } from 'node:module';

// Express, BullMQ and ioredis as installed (pinned) in compat/, resolved the
// way `import 'bullmq'` resolves there.
const require = createRequire(new URL('../../compat/package.json', import.meta.url));
const express = require('express');
const { Queue } = require('bullmq');
const IORedis = require('ioredis');

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';

const connection = new IORedis(redisUrl, { maxRetriesPerRequest: null });

const queues = new Map();
function queueFor(name) {
  let queue = queues.get(name);
  if (!queue) {
    queue = new Queue(name, { connection });
    queues.set(name, queue);
  }
  return queue;
}

const app = express();
app.use(express.json({ limit: '1mb' }));

app.get('/health', (_req, res) => {
  res.json({ status: 'ok' });
});

app.post('/api/v1/queues/:queue/jobs', async (req, res) => {
  const { name, data, opts } = req.body ?? {};
  if (typeof name !== 'string' || name.length === 0) {
    res.status(400).json({ error: 'name is required' });
    return;
  }
  // A rejected add reaches Express's error handler (Express 5 forwards
  // rejected promises), which answers 500.
  const job = await queueFor(req.params.queue).add(name, data ?? {}, opts);
  res.status(201).json({ id: job.id });
});

const server = app.listen(port, host, () => {
  console.log(`express-enqueue listening on http://${host}:${port}`);
});
server.on('error', (err) => {
  console.error(`express-enqueue: ${err.message}`);
  process.exit(1);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) {
    return;
  }
  stopping = true;
  console.log(`express-enqueue: ${signal}, shutting down`);
  // Keep-alive connections would hold `close` open: end the idle ones now
  // and the rest once their response is written.
  server.close();
  server.closeIdleConnections();
  await Promise.allSettled([...queues.values()].map((q) => q.close()));
  await connection.quit().catch(() => connection.disconnect());
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
