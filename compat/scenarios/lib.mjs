// Shared plumbing for the compatibility scenarios: parameters come as JSON
// in $SCENARIO, Redis from $REDIS_URL; results go to stdout as JSON lines.
import { Queue, QueueEvents, Worker } from 'bullmq';

export { Queue, QueueEvents, Worker };

export const params = JSON.parse(process.env.SCENARIO || '{}');

const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
export const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  // Workers block; BullMQ requires this for its blocking connections.
  maxRetriesPerRequest: null,
};

export const prefix = params.prefix || 'bull';

/** Prints one JSON document as a line. */
export function emit(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

/** A job as Node's BullMQ sees it. */
export async function describe(queue, id) {
  const job = await queue.getJob(id);
  if (!job) return { id, missing: true };
  return {
    id: job.id,
    name: job.name,
    data: job.data,
    opts: job.opts,
    state: await job.getState(),
    returnvalue: job.returnvalue,
    progress: job.progress,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    stalledCounter: job.stalledCounter,
    failedReason: job.failedReason,
    stacktrace: job.stacktrace,
    delay: job.delay,
    priority: job.priority,
    timestamp: job.timestamp,
    processedOn: job.processedOn,
    finishedOn: job.finishedOn,
    processedBy: job.processedBy,
    repeatJobKey: job.repeatJobKey,
  };
}
