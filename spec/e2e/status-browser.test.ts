/**
 * The operator status page in real headless Chromium against a real `poseidon serve` (embedded
 * store, embedded worker, the example challenges copied into a directory the server watches):
 * sign in; instances appear and change state live as the test launches, restarts and stops
 * them; cordon the worker from the page; sync now and see a broken file's file:line:col
 * message; incidents and the audit log; a cross-origin CSRF attempt and a POST without the CSRF
 * header both fail. No view logs a console error; each view is saved as a screenshot under
 * test-artifacts/status/ (git-ignored) for a person to look at.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deriveFlag } from '../../src/core/flag.ts';
import { CI, haveDocker, ROOT } from '../helpers/deps.ts';
import { cleanupByLabel, testManagerId } from '../helpers/docker.ts';
import { apiClient, freePort, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ADMIN_KEY = 'status-e2e-admin-key-0123456789';
const OPERATOR_KEY = 'status-e2e-operator-key-0123456789';
const FLAG_SECRET = 'status-e2e-flag-secret-0123456789';
const SHOTS = path.join(ROOT, 'test-artifacts', 'status');
/** Bounds for conditions: a cold 2-core machine builds images and starts containers slowly. */
const LONG = 240_000;
const SHORT = 90_000;

const t = suite('e2e: status page in a real browser');
const enabled = haveDocker() && haveChromium();
const mgr = testManagerId();
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-status-e2e-'));
const challenges = path.join(work, 'challenges');
let server: ServeProcess | undefined;
let ctx: BrowserContext | undefined;
let page: Page;
let api: ReturnType<typeof apiClient>;
let workerId: string;
/** The browser reaches the server through this proxy, which can cut every connection (an outage). */
let link: Link;
/** Console errors and page errors, per page. */
const problems = new Map<Page, string[]>();

interface Link { url: string; cut(): void; restore(): void; close(): Promise<void> }

/** A TCP pass-through to `port` on 127.0.0.1; `cut()` drops every connection and refuses new ones until `restore()`. */
async function tcpLink(port: number): Promise<Link> {
  const open = new Set<Socket>();
  let down = false;
  const proxy = createTcpServer((client) => {
    if (down) return void client.destroy();
    const upstream = connect(port, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => { open.delete(a); b.destroy(); });
      a.pipe(b);
    }
  });
  const own = await freePort();
  await new Promise<void>((resolve) => proxy.listen(own, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${own}`,
    cut() { down = true; for (const sock of open) sock.destroy(); },
    restore() { down = false; },
    close: () => new Promise<void>((resolve) => { for (const sock of open) sock.destroy(); proxy.close(() => resolve()); }),
  };
}

function haveChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (CI) throw new Error(`Chromium is required under CI=true (${CHROMIUM}); run scripts/dev-env.sh`);
  console.warn(`\n  !! SKIPPED: Chromium not available at ${CHROMIUM}; run scripts/dev-env.sh\n`);
  return false;
}

async function watched(p: Page): Promise<Page> {
  const list: string[] = [];
  problems.set(p, list);
  // Chromium cancels requests with ERR_NETWORK_CHANGED whenever an interface comes or goes on
  // the host (Docker adds a bridge and a veth per instance, here and in other tests): the
  // browser's reaction to the machine, not an error of the page, which retries by itself.
  p.on('console', (m) => { if (m.type() === 'error' && !/net::ERR_NETWORK_CHANGED/.test(m.text())) list.push(`console: ${m.text()}`); });
  p.on('pageerror', (e) => list.push(`pageerror: ${e.message}`));
  return p;
}

function noConsoleErrors(p: Page, where: string): void {
  const list = problems.get(p) ?? [];
  assert.equal(list, [], `${where}: no console errors`);
}

async function shot(name: string, p: Page = page): Promise<void> {
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Opens a view by its address and waits until it has drawn (its "Loading…" is gone). */
async function view(name: string): Promise<void> {
  await page.evaluate((h) => { location.hash = h; }, `#${name}`);
  await page.waitForSelector(`section[data-view="${name.split(/[/?]/)[0]}"]:not([hidden])`, { timeout: SHORT });
  await page.waitForFunction((v) => {
    const body = document.querySelector(`[data-body="${v}"]`);
    return body !== null && !(body.textContent ?? '').startsWith('Loading');
  }, name.split(/[/?]/)[0], { timeout: SHORT });
}

/** Clicks a button that asks for confirmation, then Confirm in the dialog. */
async function confirmClick(selector: string): Promise<void> {
  await page.click(selector);
  await page.waitForSelector('dialog#confirm[open]', { timeout: SHORT });
  await page.click('#confirm-ok');
  await page.waitForSelector('dialog#confirm', { state: 'hidden', timeout: SHORT });
}

t.before(async () => {
  if (!enabled) return;
  mkdirSync(SHOTS, { recursive: true });
  cpSync(path.join(ROOT, 'challenges'), challenges, { recursive: true });
  const operatorDigest = createHash('sha256').update(OPERATOR_KEY).digest('hex');
  server = await startServe({
    POSEIDON_MANAGER_ID: mgr, POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_CHALLENGES_DIR: challenges, POSEIDON_API_KEY: ADMIN_KEY, POSEIDON_API_KEYS: `ops:operator:${operatorDigest}`,
    POSEIDON_FLAG_SECRET: FLAG_SECRET, POSEIDON_LOG_LEVEL: 'warn',
  }, ['--dev']);
  api = apiClient(server.url, ADMIN_KEY);
  link = await tcpLink(Number(new URL(server.url).port));
  ctx = await chromium.launchPersistentContext(mkdtempSync(path.join(work, 'chromium-')), {
    executablePath: CHROMIUM, args: FLAGS, headless: true, viewport: { width: 1280, height: 900 }, timeout: 60_000,
  });
  page = await watched(ctx.pages()[0] ?? await ctx.newPage());
  workerId = await waitFor('the embedded worker', async () => (await api('GET', '/v1/workers')).body.workers?.[0]?.id as string | undefined, SHORT, 250);
});

t.after(async () => {
  if (!enabled) return;
  await ctx?.close().catch(() => undefined);
  await link?.close();
  await server?.stop();
  await cleanupByLabel(mgr);
  rmSync(work, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('sign in with the admin key: a session cookie, the overview, the live stream', async () => {
  const res = await page.goto(`${link.url}/status`);
  assert.is(res?.status(), 200);
  assert.match(String(res?.headers()['content-security-policy']), /script-src 'self'/);
  await page.waitForSelector('form#login', { timeout: SHORT });
  await shot('sign-in');
  await page.fill('#key', ADMIN_KEY);
  await page.click('form#login button[type=submit]');
  // Signed in (the page reloads into the shell), or refused with a message that says why.
  await page.waitForFunction(() => document.body?.dataset.page === 'status' || (document.getElementById('login-error')?.textContent ?? '') !== '', undefined, { timeout: LONG, polling: 250 });
  assert.is(await page.evaluate(() => document.body.dataset.page), 'status', await page.innerText('body'));
  await page.waitForSelector('#conn[data-state="live"]', { timeout: SHORT });
  const cookies = await ctx?.cookies(link.url);
  assert.equal(cookies?.map((c) => [c.name, c.httpOnly, c.sameSite, c.path]), [['poseidon_status', true, 'Strict', '/']]);
  assert.not.ok(cookies?.[0]?.value.includes(ADMIN_KEY));
  assert.not.ok((await page.content()).includes(ADMIN_KEY), 'the key is nowhere on the page');
  await view('overview');
  await page.evaluate(() => { (window as unknown as { marker: number }).marker = 1; });
  noConsoleErrors(page, 'sign-in and overview');
});

it('instances appear and change state live as the API launches and stops them', async () => {
  await view('instances');
  const red = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'red' });
  assert.is(red.status, 202, JSON.stringify(red.body));
  const id = red.body.id as string;
  await page.waitForSelector(`tr[data-id="${id}"]`, { timeout: SHORT });
  await page.waitForSelector(`tr[data-id="${id}"][data-status="running"]`, { timeout: LONG });
  // Events carry no worker: the row learns it from the re-read each event schedules.
  await page.waitForFunction(([i, w]) => document.querySelector(`tr[data-id="${i}"] [data-col="worker"]`)?.textContent === w, [id, workerId], { timeout: SHORT, polling: 100 });
  assert.match(await page.innerText(`tr[data-id="${id}"] [data-col="expires"]`), /^in \d+ m/);
  await shot('instances');
  assert.is((await api('DELETE', `/v1/instances/${id}`)).status, 202);
  await page.waitForSelector(`tr[data-id="${id}"][data-status="stopped"]`, { timeout: SHORT });
  // Filters: by state and by team (typed), both redraw the page without a reload.
  await page.selectOption('#f-state', 'running');
  await page.waitForFunction((i) => !document.querySelector(`tr[data-id="${i}"]`), id, { timeout: SHORT });
  await page.selectOption('#f-state', '');
  await page.fill('#f-team', 'red');
  await page.waitForSelector(`tr[data-id="${id}"]`, { timeout: SHORT });
  await page.fill('#f-team', 'nobody-here');
  await page.waitForSelector('#instances-count[data-shown="0"]', { timeout: SHORT });
  await page.fill('#f-team', '');
  assert.is(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'no reload: the stream drove every change');
  noConsoleErrors(page, 'instances');
});

it('an instance detail shows its record and timeline; restart and stop from the page', async () => {
  const blue = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'blue' });
  const id = blue.body.id as string;
  await view(`instances/${id}`);
  await page.waitForSelector(`[data-record="${id}"]`, { timeout: SHORT });
  await waitFor('blue running on the page', async () => ((await page.innerText('[data-fact="Status"]')).includes('running') ? true : undefined), LONG, 250);
  await confirmClick('button[data-action="restart"]');
  await waitFor('generation 2 on the page', async () => ((await page.innerText('[data-fact="Generation"]')).trim() === '2' ? true : undefined), LONG, 250);
  await waitFor('blue running again', async () => ((await page.innerText('[data-fact="Status"]')).includes('running') ? true : undefined), LONG, 250);
  const timeline = await page.innerText(`section[data-view="instances"] table`);
  for (const word of ['created', 'pending', 'running']) assert.match(timeline, new RegExp(word));
  await shot('instance-detail');
  const text = await page.innerText('main');
  assert.not.ok(text.includes(deriveFlag(FLAG_SECRET, { team: 'blue', challenge: 'web-hello', instance: id }, 'poseidon{%s}')), 'no flag on the page');
  await confirmClick('button[data-action="stop"]');
  await waitFor('blue stopped on the page', async () => ((await page.innerText('[data-fact="Status"]')).includes('stopped') ? true : undefined), SHORT, 250);
  assert.is((await api('GET', `/v1/instances/${id}`)).body.status, 'stopped');
  noConsoleErrors(page, 'instance detail');
});

it('cordon the worker from the page (with a confirmation), then uncordon it; set its launch settings and back', async () => {
  await view('workers');
  const row = `tr[data-worker="${workerId}"]`;
  await page.waitForSelector(`${row}[data-state="ready"]`, { timeout: SHORT });
  // Cancel first: nothing happens.
  await page.click(`${row} button[data-action="cordon"]`);
  await page.waitForSelector('dialog#confirm[open]', { timeout: SHORT });
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog#confirm', { state: 'hidden', timeout: SHORT });
  assert.is((await api('GET', '/v1/workers')).body.workers[0].state, 'ready');
  await confirmClick(`${row} button[data-action="cordon"]`);
  await page.waitForSelector(`${row}[data-state="cordoned"]`, { timeout: SHORT });
  assert.is((await api('GET', '/v1/workers')).body.workers.find((w: { id: string }) => w.id === workerId).state, 'cordoned');
  await shot('workers-cordoned');
  // By keyboard: focus the button, Enter; the dialog opens on Confirm, Enter again.
  await page.focus(`${row} button[data-action="uncordon"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog#confirm[open]', { timeout: SHORT });
  assert.is(await page.evaluate(() => document.activeElement?.id), 'confirm-ok');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${row}[data-state="ready"]`, { timeout: SHORT });
  // Launch settings, in their own dialog: the configuration's first; a value out of bounds keeps
  // the dialog open and stores nothing; an override once the worker reports it, marked as
  // overridden; then the worker's own again.
  const launchCell = `${row} [data-col="launch"]`;
  const worker = async () => (await api('GET', '/v1/workers')).body.workers[0];
  assert.match(await page.innerText(launchCell), /^pool 0, 4 at once/);
  await page.click(`${row} button[data-action="launch"]`);
  await page.waitForSelector('dialog#launch-settings[open]', { timeout: SHORT });
  await page.fill('dialog#launch-settings input[name="networkPool"]', '999');
  await page.click('#launch-apply');
  assert.ok(await page.isVisible('dialog#launch-settings[open]'), 'a value out of bounds keeps the dialog open');
  assert.equal((await worker()).launchOverride, {}, 'and stores nothing');
  await page.fill('dialog#launch-settings input[name="networkPool"]', '');
  await page.fill('dialog#launch-settings input[name="launchConcurrency"]', '6');
  await page.click('#launch-apply');
  await page.waitForSelector('dialog#launch-settings', { state: 'hidden', timeout: SHORT });
  await waitFor('the override stored', async () => ((await worker()).launchOverride?.launchConcurrency === 6 ? true : undefined), SHORT, 250);
  assert.equal((await worker()).launchOverride, { launchConcurrency: 6 }, 'an empty field is the worker\'s own');
  await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent ?? '').includes('6 at once'), launchCell, { timeout: SHORT });
  assert.match(await page.innerText(launchCell), /pool 0, 6 at once\s+overridden/);
  // A pool: the cell says how many of its networks are ready (the worker makes it in the background).
  await page.click(`${row} button[data-action="launch"]`);
  await page.waitForSelector('dialog#launch-settings[open]', { timeout: SHORT });
  await page.fill('dialog#launch-settings input[name="networkPool"]', '1');
  await page.click('#launch-apply');
  await page.waitForSelector('dialog#launch-settings', { state: 'hidden', timeout: SHORT });
  await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent ?? '').includes('(1 ready)'), launchCell, { timeout: SHORT, polling: 250 });
  assert.match(await page.innerText(launchCell), /^pool 1 \(1 ready\), 6 at once\s+overridden/);
  assert.is((await worker()).networkPoolReady, 1);
  await page.click(`${row} button[data-action="launch"]`);
  await page.waitForSelector('dialog#launch-settings[open]', { timeout: SHORT });
  assert.is(await page.inputValue('dialog#launch-settings input[name="launchConcurrency"]'), '6', 'the dialog shows the override');
  await page.click('#launch-reset');
  await waitFor('the override cleared', async () => (Object.keys((await worker()).launchOverride ?? { x: 1 }).length === 0 ? true : undefined), SHORT, 250);
  await waitFor('the configuration reported again', async () => ((await worker()).launch?.launchConcurrency === 4 ? true : undefined), SHORT, 250);
  await waitFor('the pooled network removed', async () => ((await worker()).networkPoolReady === 0 ? true : undefined), SHORT, 250);
  await shot('workers');
  noConsoleErrors(page, 'workers');
});

it('sync now from the page shows a broken file with its file:line:col message', async () => {
  await view('catalog');
  await page.waitForSelector('tr[data-challenge="web-hello"]', { timeout: SHORT });
  mkdirSync(path.join(challenges, 'broken'));
  writeFileSync(path.join(challenges, 'broken', 'challenge.yaml'), 'id: broken\nname: Broken\nimage: busybox:1.35\nexpose:\n  - { name: web, port: 99999 }\n');
  await confirmClick('#sync-now');
  await page.waitForFunction(() => /broken\/challenge\.yaml:\d+:\d+/.test(document.querySelector('#invalid-files')?.textContent ?? ''), undefined, { timeout: SHORT, polling: 250 });
  const text = await page.innerText('#invalid-files');
  assert.match(text, /broken\/challenge\.yaml:5:\d+ expose\.0\.port/);
  await page.waitForSelector('[data-plan]', { timeout: SHORT });
  await shot('catalog');
  noConsoleErrors(page, 'catalog');
});

it('incidents list a shared flag, newest first', async () => {
  const red = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'red' });
  assert.is(red.status, 202, JSON.stringify(red.body));
  const flag = deriveFlag(FLAG_SECRET, { team: 'red', challenge: 'web-hello', instance: red.body.id }, 'poseidon{%s}');
  // The flag is on record once the instance is placed; until then a submission names no owner.
  const verdict = await waitFor('the shared flag recognised', async () => {
    const r = await api('POST', '/v1/flags/verify', { challenge: 'web-hello', team: 'green', flag });
    return r.body.owner ? r.body : undefined;
  }, LONG, 500);
  assert.equal([verdict.correct, verdict.owner.team], [false, 'red']);
  await view('incidents');
  await page.waitForSelector('table.incidents tbody tr', { timeout: SHORT });
  const row = await page.innerText('table.incidents tbody tr');
  assert.match(row, /web-hello/);
  assert.match(row, /green/);
  assert.not.ok((await page.innerText('main')).includes(flag), 'the flag itself is never shown');
  await shot('incidents');
  noConsoleErrors(page, 'incidents');
});

it('overview and audit log: counts, catalog, workers; every action with who and result', async () => {
  await view('overview');
  await page.waitForFunction(() => Number(document.querySelector('[data-workers="ready"]')?.textContent) >= 1, undefined, { timeout: SHORT });
  assert.match(await page.innerText('[data-figure="Launches"]'), /—|\/ min/);
  await shot('overview');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('overview-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('overview-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  await view('audit');
  await page.waitForSelector('tr[data-audit="cordon worker"][data-result="ok"]', { timeout: SHORT });
  const text = await page.innerText('table.audit');
  for (const action of ['sign in', 'restart instance', 'stop instance', 'cordon worker', 'uncordon worker', 'set worker launch settings', 'sync']) assert.match(text, new RegExp(action));
  assert.match(text, /POSEIDON_API_KEY/);
  await shot('audit');
  noConsoleErrors(page, 'overview and audit');
});

it('a reconnect resumes: what happened while the stream was down shows up when it is back', async () => {
  await view('instances');
  await page.waitForSelector('#conn[data-state="live"]', { timeout: SHORT });
  link.cut();
  let launched: Awaited<ReturnType<typeof api>>;
  try {
    await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: SHORT });
    launched = await api('POST', '/v1/instances', { challenge: 'two-ports', team: 'offline' });
    assert.is(launched.status, 202, JSON.stringify(launched.body));
    await waitFor('running (seen by the API)', async () => ((await api('GET', `/v1/instances/${launched.body.id}`)).body.status === 'running' ? true : undefined), LONG, 500);
    assert.is(await page.$(`tr[data-id="${launched.body.id}"]`), null, 'nothing arrives while the link is down');
  } finally {
    link.restore();
  }
  await page.waitForSelector('#conn[data-state="live"]', { timeout: LONG });
  await page.waitForSelector(`tr[data-id="${launched.body.id}"][data-status="running"]`, { timeout: SHORT });
  // The failed reconnection attempts while the link was down are the browser's expected network errors.
  problems.get(page)?.splice(0);
  await api('DELETE', `/v1/instances/${launched.body.id}`);
  await page.waitForSelector(`tr[data-id="${launched.body.id}"][data-status="stopped"]`, { timeout: SHORT });
  noConsoleErrors(page, 'after the reconnect');
});

it('CSRF: a page on another origin cannot act with the session; nor can a request without the header', async () => {
  const port = await freePort();
  const target = `${link.url}/v1/workers/${workerId}/cordon`;
  const evil: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>evil</title>
<form id="f" method="POST" action="${target}" enctype="text/plain"><input name="a" value="b"></form>
<script>
fetch(${JSON.stringify(target)}, { method: 'POST', mode: 'no-cors', credentials: 'include' }).catch(() => {});
fetch(${JSON.stringify(`${link.url}/v1/sync`)}, { method: 'POST', credentials: 'include', headers: { 'x-poseidon-csrf': 'guess', 'content-type': 'application/json' }, body: '{}' }).catch(() => {});
setTimeout(() => document.getElementById('f').submit(), 300);
</script>`);
  });
  await new Promise<void>((resolve) => evil.listen(port, '127.0.0.1', resolve));
  try {
    const other = await ctx!.newPage();
    await other.goto(`http://127.0.0.1:${port}/`);
    // The form submission navigates the tab to the API's answer: a 403 problem.
    await other.waitForURL(/\/cordon$/, { timeout: SHORT });
    assert.match(await other.innerText('body'), /E_FORBIDDEN/);
    await other.close();
    const own = await ctx!.newPage();
    await own.goto(`${link.url}/status#overview`);
    const status = await own.evaluate((u) => fetch(u, { method: 'POST' }).then((r) => r.status), `/v1/workers/${workerId}/cordon`);
    assert.is(status, 403, 'same origin without X-Poseidon-CSRF');
    await own.close();
  } finally {
    await new Promise<void>((resolve) => evil.close(() => resolve()));
  }
  assert.is((await api('GET', '/v1/workers')).body.workers.find((w: { id: string }) => w.id === workerId).state, 'ready', 'never cordoned');
  const audit = (await api('GET', '/status/audit')).body.entries as { action: string; status: number; who: string }[];
  assert.ok(audit.filter((e) => e.action === 'cordon worker' && e.status === 403 && e.who === 'POSEIDON_API_KEY').length >= 2, 'the refusals are audited');
});

it('sign out ends the session', async () => {
  await view('overview');
  await page.click('#logout');
  await page.waitForSelector('form#login', { timeout: SHORT });
  assert.equal(await ctx?.cookies(link.url), []);
  const status = await page.evaluate(() => fetch('/v1/instances').then((r) => r.status));
  assert.is(status, 401);
  assert.ok(readFileSync(path.join(SHOTS, 'overview.png')).length > 1000, 'screenshots were written');
});

it('an operator key signs in read-only: every view, no action buttons', async () => {
  problems.get(page)?.splice(0); // the signed-out read above was a 401 on purpose
  await page.fill('#key', OPERATOR_KEY);
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-role="operator"]', { timeout: SHORT });
  assert.match(await page.innerText('header'), /ops \(operator\)\s+read-only/);
  for (const name of ['overview', 'workers', 'instances', 'catalog', 'incidents', 'audit']) {
    await view(name);
    assert.is(await page.$$eval('main button[data-action], #sync-now', (els) => els.length), 0, `${name}: no action buttons`);
  }
  await view('workers');
  await page.waitForSelector(`tr[data-worker="${workerId}"]`, { timeout: SHORT });
  await shot('operator-workers');
  noConsoleErrors(page, 'operator views');
});

t.run();
