// BullMQ's Node client on a Redis Cluster, with hash-tagged queue names:
// adds `count` jobs to `addTo`, then works `work` with a Worker until
// `expect` jobs there completed; prints the ids it added and processed.
// params: { nodes: [port, ...], addTo, count, work, expect }
import { Cluster } from 'ioredis';
import { Queue, Worker, emit, params } from './lib.mjs';

const cluster = () =>
  new Cluster(
    params.nodes.map((port) => ({ host: '127.0.0.1', port })),
    { redisOptions: { maxRetriesPerRequest: null } },
  );

const queue = new Queue(params.addTo, { connection: cluster() });
const added = [];
for (let i = 0; i < params.count; i++) {
  added.push((await queue.add('from-node', { i })).id);
}
await queue.close();

const processed = [];
await new Promise((resolve, reject) => {
  const worker = new Worker(
    params.work,
    async (job) => {
      processed.push(job.id);
      return { seen: job.data };
    },
    { connection: cluster() },
  );
  worker.on('error', reject);
  worker.on('completed', async () => {
    if (processed.length >= params.expect) {
      await worker.close();
      resolve();
    }
  });
});
emit({ added, processed });
process.exit(0);
