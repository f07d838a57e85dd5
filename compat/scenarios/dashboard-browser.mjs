// The dashboard in real headless Chromium (Debian's, driven by
// playwright-core), against a running `drover serve`:
//
// 1. The real BullMQ Node client fills queue `orders` (a bulk, a job that
//    fails while `failing` is on, one whose name and data hold HTML) and a
//    Node Worker processes it.
// 2. An admin signs in, finds the queue on the overview, opens the failed
//    job, retries it and watches it complete without a reload (the page's
//    live stream), pauses and resumes the queue through the confirmation
//    pages, and sees hostile content rendered as text.
// 3. A read-only key sees no action, and a forged post from its page is
//    refused with 403.
// Every page is saved as a screenshot. Any failed check throws; the last
// line printed is a JSON summary.
//
// $SCENARIO: {url, admin, reader, shots}
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { Queue, QueueEvents, Worker, connection, emit, params } from './lib.mjs';

const { url, admin, reader, shots } = params;
mkdirSync(shots, { recursive: true });
const check = (ok, what) => { if (!ok) throw new Error(`check failed: ${what}`); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- 1. BullMQ Node client fills and works the queue -----------------------
const queue = new Queue('orders', { connection });
const events = new QueueEvents('orders', { connection });
await events.waitUntilReady();
let failing = true;
const worker = new Worker('orders', async (job) => {
  if (job.data.flaky && failing) throw new Error('payment gateway timed out');
  // The retried job takes a moment, so the page sees it before it completes.
  if (job.data.flaky) await sleep(2500);
  return { handled: job.id };
}, { connection, concurrency: 4 });
await queue.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'ship', data: { order: i } })));
const flaky = await queue.add('charge', { flaky: true, amount: 42 }, { jobId: 'flaky-1', attempts: 1 });
await queue.add('<img src=x onerror="window.__xss=1">',
  { note: '<script>window.__xss=1</script>', quote: '" onmouseover="window.__xss=1' }, { jobId: 'xss-1' });
await flaky.waitUntilFinished(events, 20000).then(
  () => { throw new Error('flaky-1 should have failed'); },
  (e) => check(/payment gateway/.test(e.message), `flaky-1 failed for the planned reason: ${e.message}`),
);

// --- 2. An admin in the browser -------------------------------------------
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { screenshots: [] };
const dialogs = [];
let shotNo = 0;
async function shot(page, name) {
  const file = `${shots}/${String(++shotNo).padStart(2, '0')}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}
// Every form field a person fills has a label (or an aria-label).
async function labelled(page, what) {
  const bad = await page.evaluate(() => [...document.querySelectorAll('input:not([type=hidden]), select')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML));
  check(bad.length === 0, `${what}: unlabelled fields ${bad.join(', ')}`);
}
async function signIn(context, key) {
  const page = await context.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  page.on('pageerror', (e) => { throw new Error(`page error: ${e.message}`); });
  await page.goto(`${url}/queues/orders`);
  check(page.url().startsWith(`${url}/login`), 'signed-out visitors land on the sign-in form');
  await page.fill('#key', key);
  await Promise.all([page.waitForURL(`${url}/queues/orders`), page.click('button[type=submit]')]);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'drover_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie is HttpOnly and SameSite=Strict');
  return page;
}

const adminContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const login = await adminContext.newPage();
await login.goto(`${url}/login`);
await labelled(login, 'sign-in');
await shot(login, 'sign-in');
await login.close();
const page = await signIn(adminContext, admin);

await page.goto(`${url}/`);
await page.waitForSelector('a[href="/queues/orders"]');
const row = await page.locator('tr', { has: page.locator('a[href="/queues/orders"]') }).innerText();
check(/orders/.test(row), 'the overview lists the Node-written queue');
await labelled(page, 'overview');
await shot(page, 'overview');

await page.goto(`${url}/queues/orders?state=completed`);
await page.waitForSelector('#live-job-list table');
await labelled(page, 'queue');
await shot(page, 'queue-completed');

await page.goto(`${url}/queues/orders?state=failed`);
await page.waitForSelector('a[href="/queues/orders/jobs/flaky-1"]');
await shot(page, 'queue-failed');

await page.goto(`${url}/queues/orders/jobs/flaky-1`);
check((await page.textContent('#live-job .state')) === 'failed', 'the job page shows the failure');
check((await page.textContent('#live-job')).includes('payment gateway timed out'), 'and its reason');
await shot(page, 'job-failed');
failing = false;
await Promise.all([page.waitForURL(`${url}/queues/orders/jobs/flaky-1`), page.click('#live-job button:has-text("Retry")')]);
check((await page.textContent('.flash')).includes('Retried job flaky-1'), 'the retry is confirmed');
await page.evaluate(() => { window.__sameDocument = true; });
const firstState = await page.textContent('#live-job .state');
check(firstState !== 'completed', `right after the retry the job is not yet completed (it is ${firstState})`);
await page.waitForFunction(() => document.querySelector('#live-job .state')?.textContent === 'completed',
  null, { timeout: 30000 });
check(await page.evaluate(() => window.__sameDocument === true), 'the page updated itself, without a reload');
result.liveCompleted = true;
await shot(page, 'job-completed-live');

// Pause and resume through the confirmation pages.
await page.goto(`${url}/queues/orders`);
await Promise.all([page.waitForURL(/confirm\?action=pause/), page.click('a:has-text("Pause…")')]);
check(/waiting jobs/.test(await page.textContent('main')), 'the pause confirmation names the waiting jobs');
await shot(page, 'confirm-pause');
await Promise.all([page.waitForURL(`${url}/queues/orders`), page.click('button:has-text("Yes, pause")')]);
check((await page.textContent('.flash')).includes('Paused orders.'), 'the pause is confirmed');
check(await page.isVisible('.queue-status .badge.paused'), 'the queue shows as paused');
check(await queue.isPaused(), 'BullMQ sees the queue paused');
result.paused = true;
await shot(page, 'queue-paused');
await Promise.all([page.waitForURL(/confirm\?action=resume/), page.click('a:has-text("Resume…")')]);
await Promise.all([page.waitForURL(`${url}/queues/orders`), page.click('button:has-text("Yes, resume")')]);
check(!(await queue.isPaused()), 'BullMQ sees the queue resumed');
result.resumed = true;

// Hostile content is text.
await page.goto(`${url}/queues/orders/jobs/xss-1`);
const text = await page.textContent('main');
check(text.includes('<script>window.__xss=1</script>'), 'the script tag is shown as text');
check(text.includes('<img src=x onerror="window.__xss=1">'), 'the HTML job name is shown as text');
await page.goto(`${url}/queues/orders?state=completed`);
check(await page.evaluate(() => window.__xss === undefined), 'no injected script ran');
check(dialogs.length === 0, `no dialog opened: ${dialogs.join(', ')}`);
result.xssInert = true;
await page.goto(`${url}/queues/orders/jobs/xss-1`);
await shot(page, 'job-hostile-content');

// The autoscaler panel: drover serve leads, and scales queue orders (the
// test gave it an external-actuator policy).
await page.goto(`${url}/autoscaler`);
await page.waitForSelector('#live-autoscaler th a[href="/queues/orders"]', { timeout: 30000 });
check((await page.textContent('#live-autoscaler')).includes('Led by'), 'the panel names the leader');
await page.waitForSelector('#live-autoscaler-history svg.steps', { timeout: 30000 });
result.autoscalerPanel = true;
await shot(page, 'autoscaler');

for (const [path, name] of [['/workers', 'workers'], ['/schedules', 'schedules'], ['/workflows', 'workflows'], ['/audit', 'audit']]) {
  await page.goto(`${url}${path}`);
  check((await page.title()).includes('Drover'), `${path} renders`);
  await labelled(page, path);
  await shot(page, name);
}
const audit = await page.textContent('main');
check(/retry/.test(audit) && /pause/.test(audit) && /resume/.test(audit), 'the audit log holds the actions');
check(audit.includes('key:admin (dashboard)'), 'with who did them');

// A phone-sized screen.
const phone = await adminContext.newPage();
await phone.setViewportSize({ width: 390, height: 844 });
await phone.goto(`${url}/queues/orders/jobs/flaky-1`);
await shot(phone, 'phone-job');
await phone.close();

// --- 3. A read-only key ----------------------------------------------------
const readContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const ro = await signIn(readContext, reader);
check(await ro.isVisible('.badge.readonly'), 'read-only viewers are told so');
check((await ro.locator('text=Queue actions').count()) === 0, 'no queue actions for read-only keys');
await shot(ro, 'read-only-queue');
await ro.goto(`${url}/queues/orders/jobs/flaky-1`);
check((await ro.locator('#live-job form').count()) === 0, 'no job actions for read-only keys');
const forged = await ro.evaluate(async () => {
  const csrf = document.querySelector('input[name=csrf]').value;
  const res = await fetch('/queues/orders/actions', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `action=pause&csrf=${encodeURIComponent(csrf)}`,
  });
  return res.status;
});
check(forged === 403, `a read-only post is refused (got ${forged})`);
check(!(await queue.isPaused()), 'and did nothing');
result.readOnlyPost = forged;
await shot(ro, 'read-only-job');

await browser.close();
await worker.close();
await events.close();
await queue.close();
emit(result);
