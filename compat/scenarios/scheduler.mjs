// Creates (or updates) a job scheduler and exits, leaving it to the workers.
// params: { queue, id, repeat: { every } | { pattern }, template: { name, data, opts } }
import { Queue, connection, emit, params, prefix } from './lib.mjs';

const queue = new Queue(params.queue, { connection, prefix });
const first = await queue.upsertJobScheduler(params.id, params.repeat, params.template);
emit({ firstJobId: first && first.id, schedulers: await queue.getJobSchedulers() });
await queue.close();
