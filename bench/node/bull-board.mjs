// bull-board 9.10 (its Express adapter) over one queue, the peer the
// `dashboard` benchmark times next to Drover's pages. The board's pages are
// a single-page app; what the server does per view is its JSON API
// (/ui/api/queues, /ui/api/queues/<queue>/<job>), which the benchmark
// requests. Redis from $REDIS_URL, listening on $HOST:$PORT, queue from
// $QUEUE. GET /health answers once it listens.
import { createRequire } from 'node:module';

// Packages as installed (pinned) in compat/.
const require = createRequire(new URL('../../compat/package.json', import.meta.url));
const express = require('express');
const { createBullBoard } = require('@bull-board/api');
const { BullMQAdapter } = require('@bull-board/api/bullMQAdapter');
const { ExpressAdapter } = require('@bull-board/express');
const { Queue } = require('bullmq');

const url = new URL(process.env.REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port) };
const queue = new Queue(process.env.QUEUE, { connection });
const serverAdapter = new ExpressAdapter();
serverAdapter.setBasePath('/ui');
createBullBoard({ queues: [new BullMQAdapter(queue)], serverAdapter });
const app = express();
app.get('/health', (_req, res) => res.send('ok'));
app.use('/ui', serverAdapter.getRouter());
app.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
