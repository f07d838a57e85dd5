// Prints jobs as Node sees them, plus the queue's counts and workers.
// params: { queue, ids }
import { Queue, connection, describe, emit, params, prefix } from './lib.mjs';

const queue = new Queue(params.queue, { connection, prefix });
const jobs = [];
for (const id of params.ids || []) jobs.push(await describe(queue, id));
emit({
  jobs,
  counts: await queue.getJobCounts(),
  workers: (await queue.getWorkers()).map((w) => ({ name: w.name, rawname: w.rawname })),
  schedulers: await queue.getJobSchedulers(),
});
await queue.close();
