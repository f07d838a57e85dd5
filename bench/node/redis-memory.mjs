// Redis memory per 100,000 jobs, for sizing Redis (docs/deploy.md). Run
// against a private redis-server: every case starts with FLUSHALL.
//
//   redis-server --port 6390 --save '' --appendonly no &
//   node bench/node/redis-memory.mjs --port 6390 --jobs 100000
//
// Cases: waiting jobs with data `{}`, with about 1 KiB of data, and the
// same small jobs once completed and kept (BullMQ keeps completed jobs
// unless removeOnComplete says otherwise). Jobs are added with BullMQ's
// Queue.addBulk; Drover's producer runs BullMQ's add scripts too (the copy
// bundled in bullmq-official), so keys and job hashes have the same layout
// (a field's length may differ by a few bytes). Prints one JSON line per
// case: used_memory before and after, and bytes per job.
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../compat/package.json', import.meta.url));
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '6379' },
    jobs: { type: 'string', default: '100000' },
    chunk: { type: 'string', default: '1000' },
  },
});
const jobs = Number(args.jobs);
const chunk = Math.max(1, Number(args.chunk));
const connection = { host: args.host, port: Number(args.port), maxRetriesPerRequest: null };
const redis = new IORedis(connection);

async function usedMemory() {
  const info = await redis.info('memory');
  const m = /^used_memory:(\d+)/m.exec(info);
  if (!m) throw new Error('INFO memory has no used_memory');
  return Number(m[1]);
}

// About 1 KiB of JSON: an e-mail job with a rendered body.
const kib = { to: 'ada@example.com', template: 'welcome', body: 'x'.repeat(960) };

async function fill(queue, data) {
  for (let done = 0; done < jobs; done += chunk) {
    const n = Math.min(chunk, jobs - done);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: 'bench', data })));
  }
}

async function waitFor(deadlineMs, check) {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function measure(name, data, complete) {
  await redis.flushall();
  const queue = new Queue('sizing', { connection });
  await queue.waitUntilReady();
  const before = await usedMemory();
  await fill(queue, data);
  let state = 'wait';
  if (complete) {
    const worker = new Worker('sizing', async () => null, { connection, concurrency: 64 });
    await waitFor(600_000, async () => (await queue.getJobCounts('completed')).completed === jobs);
    await worker.close();
    state = 'completed';
  }
  const counts = await queue.getJobCounts(state);
  if (counts[state] !== jobs) throw new Error(`${name}: ${counts[state]} jobs in ${state}, expected ${jobs}`);
  const after = await usedMemory();
  await queue.close();
  console.log(JSON.stringify({
    case: name, jobs, state, used_memory_before: before, used_memory_after: after,
    bytes_per_job: Math.round((after - before) / jobs),
    mib_per_100k: Number((((after - before) / jobs) * 100_000 / 1048576).toFixed(1)),
  }));
}

await measure('waiting, data {}', {}, false);
await measure('waiting, data ~1 KiB', kib, false);
await measure('completed and kept, data {}', {}, true);
await redis.quit();
