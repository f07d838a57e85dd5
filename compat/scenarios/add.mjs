// Adds jobs with Queue.add (or addBulk when params.bulk), prints their ids.
// params: { queue, jobs: [{ name, data, opts }] | generate: { count, name },
//           bulk?, maxLenEvents? }
// `generate` makes `count` jobs with data { i } (too many to pass in $SCENARIO).
import { Queue, connection, emit, params, prefix } from './lib.mjs';

const opts = { connection, prefix };
if (params.maxLenEvents) opts.streams = { events: { maxLen: params.maxLenEvents } };
const queue = new Queue(params.queue, opts);
const jobs = params.generate
  ? Array.from({ length: params.generate.count }, (_, i) => ({ name: params.generate.name, data: { i } }))
  : params.jobs;
let ids;
if (params.bulk) {
  ids = [];
  const chunk = 1000;
  for (let i = 0; i < jobs.length; i += chunk) {
    const added = await queue.addBulk(jobs.slice(i, i + chunk));
    ids.push(...added.map((j) => j.id));
  }
} else {
  ids = [];
  for (const j of jobs) ids.push((await queue.add(j.name, j.data, j.opts)).id);
}
emit({ ids });
await queue.close();
