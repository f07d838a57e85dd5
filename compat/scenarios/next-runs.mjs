// Next-run times of job schedulers as BullMQ 6.7 itself produces them.
//
// params: { queue?, cases: [{ id, pattern? | every?, tz?, from, startDate?,
//           endDate?, count, show?: [ms, ...] }], patterns?: [pattern, ...] }
// emits:  { results: { <id>: [ms, ...] }, strategy: { <id>: [ms, ...] },
//           local: { <id>: { <ms>: "2027-03-28 03:00:00 GMT+02:00" } },
//           accepted: { <pattern>: true | "why not" } }
//
// `results` is the chain of iterations a scheduler upserted at `from` gets,
// made by BullMQ's own code on a real Redis: `Queue.upsertJobScheduler` at
// `from` creates the first iteration, then for each pending iteration the
// scenario does what a Node `Worker` does when it fetches that iteration on
// time: `JobScheduler.upsertJobScheduler(repeatJobKey, opts.repeat, name,
// data, opts, { override: false, producerId: job.id })` (worker.js), which
// runs `defaultRepeatStrategy` for cron patterns and the `updateJobScheduler`
// Lua script (the interval rule for `every`). The only thing simulated is
// the clock: `Date.now()` is pinned to `from`, then to each iteration's own
// time, and BullMQ passes it to its scripts as their timestamp. The chain is
// read back with `getJobScheduler(id).next`; it ends when BullMQ makes no
// further iteration (end date reached) or after `count` runs.
//
// For `every` rows this is the only honest source: BullMQ's interval rule
// lives in Lua (`getJobSchedulerEveryNextMillis`, not exported to JS). The
// same rule is what a Drover worker runs: bullmq-official 1.4.4 ships the
// same `addJobScheduler`/`updateJobScheduler` scripts (identical but for
// blank lines), and its worker likewise leaves the interval to the script.
// bullmq-official reads the system clock itself, so the Rust side of the
// comparison is Drover's own computation rather than a second Redis run.
//
// `strategy` (cron rows only) is the same chain computed with the exported
// `defaultRepeatStrategy` alone, reference = the previous run: a cross-check
// that needs no Redis and should equal `results`.
//
// `local` spells each run of `results` (and the caller's `show` times) as
// wall-clock time in the row's zone (UTC without one), for people reading
// the comparison.
//
// `accepted` says whether BullMQ takes each of `patterns` (in UTC): true,
// or the error `defaultRepeatStrategy` throws (what `upsertJobScheduler`
// and a worker would throw), or why it finds no run.
import { defaultRepeatStrategy } from 'bullmq';
import { Queue, connection, emit, params, prefix } from './lib.mjs';

const realNow = Date.now;
let clock = null;
Date.now = () => (clock === null ? realNow() : clock);

/** The repeat options a user would pass, without unset keys. */
function repeatOpts(c) {
  const opts = {};
  for (const key of ['pattern', 'every', 'tz', 'startDate', 'endDate']) {
    if (c[key] !== undefined && c[key] !== null) opts[key] = c[key];
  }
  return opts;
}

/** Cron rows: chain the exported strategy, each run the next reference. */
function strategyChain(c) {
  const opts = repeatOpts(c);
  const runs = [];
  let reference = c.from;
  while (runs.length < c.count) {
    // The worker stops once its clock is past the end date.
    if (c.endDate && reference > c.endDate) break;
    const next = defaultRepeatStrategy(reference, opts);
    if (!next) break; // cron-parser found nothing (past the end date)
    runs.push(next);
    reference = next;
  }
  return runs;
}

/** All rows: the real upsert, then the worker's step for each iteration. */
async function scriptChain(queue, c) {
  const id = `next-runs-${c.id}`;
  await queue.removeJobScheduler(id);
  clock = c.from;
  await queue.upsertJobScheduler(id, repeatOpts(c), { name: c.id, data: {} });
  const runs = [];
  let seen = 0;
  while (runs.length < c.count) {
    const scheduler = await queue.getJobScheduler(id);
    if (!scheduler || scheduler.next == null || scheduler.iterationCount === seen) break;
    seen = scheduler.iterationCount;
    runs.push(scheduler.next);
    if (runs.length === c.count) break;
    // A worker fetches this iteration on time and produces the next one.
    const job = await queue.getJob(`repeat:${id}:${scheduler.next}`);
    if (!job) throw new Error(`pending iteration of ${id} at ${scheduler.next} is missing`);
    clock = scheduler.next;
    const jobScheduler = await queue.jobScheduler;
    await jobScheduler.upsertJobScheduler(job.repeatJobKey, job.opts.repeat, job.name, job.data, job.opts, {
      override: false,
      producerId: job.id,
    });
  }
  clock = null;
  return runs;
}

/** `ms` as wall-clock time with its UTC offset, in `tz`. */
function wallClock(ms, tz) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: tz || 'UTC',
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'longOffset',
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  const { year, month, day, hour, minute, second, timeZoneName } = parts;
  const millis = ms % 1000 ? `.${String(ms % 1000).padStart(3, '0')}` : '';
  return `${year}-${month}-${day} ${hour}:${minute}:${second}${millis} ${timeZoneName}`;
}

/** Whether BullMQ's strategy reads `pattern` and finds a next run. */
function acceptance(pattern) {
  try {
    const next = defaultRepeatStrategy(Date.UTC(2027, 0, 1), { pattern, tz: 'UTC' });
    return typeof next === 'number' ? true : 'no next run';
  } catch (e) {
    return String(e && e.message ? e.message : e);
  }
}

const queue = new Queue(params.queue || 'next-runs', { connection, prefix });
const results = {};
const strategy = {};
const local = {};
for (const c of params.cases) {
  results[c.id] = await scriptChain(queue, c);
  if (c.pattern) strategy[c.id] = strategyChain(c);
  local[c.id] = {};
  for (const ms of [...results[c.id], ...(c.show || [])]) local[c.id][ms] = wallClock(ms, c.tz);
}
await queue.close();
const accepted = {};
for (const pattern of params.patterns || []) accepted[pattern] = acceptance(pattern);
emit({ results, strategy, local, accepted });
