/**
 * The player's view in real headless Chromium, which uses the stand-in Traefik as its HTTP
 * proxy (so hostnames under ctf.test resolve to it and Host headers carry no port): an access
 * link opened while the instance is starting lands on the starting page, which reloads itself
 * into the instance once it is routed; stopped, expired and unknown hostnames get their pages;
 * another team's browser gets the access page and nothing else.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CI } from '../helpers/deps.ts';
import { waitFor } from '../helpers/server.ts';
import { accessRig, BASE, expectedFlag, type AccessRig } from './access-rig.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

const t = suite('e2e: pages in a real browser');
let rig: AccessRig;
let browser: Browser;
const enabled = accessRig.enabled() && haveChromium();

function haveChromium(): boolean {
  try {
    return existsSync(CHROMIUM);
  } catch {
    return false;
  }
}

t.before(async () => {
  if (!enabled) {
    if (CI) throw new Error(`Chromium is required under CI=true (${CHROMIUM}); run scripts/dev-env.sh`);
    console.warn(`\n  !! SKIPPED: Chromium not available at ${CHROMIUM}; run scripts/dev-env.sh\n`);
    return;
  }
  rig = await accessRig.start('e2e-browser');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, proxy: { server: rig.gateway.url }, timeout: 30_000 });
});
t.after(async () => {
  if (!enabled) return;
  await browser?.close();
  await rig?.stop();
});
const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

async function inContext<T>(fn: (page: Page, ctx: BrowserContext) => Promise<T>): Promise<T> {
  const ctx = await browser.newContext();
  try {
    return await fn(await ctx.newPage(), ctx);
  } finally {
    await ctx.close();
  }
}

/**
 * The `data-state` of the page shown (one of Poseidon's), or undefined for an instance's own page.
 * Read from the loaded document at once (no wait: `goto` has resolved), retried only when the
 * starting page's own reload replaced the document under the read.
 */
async function state(page: Page): Promise<string | undefined> {
  return (await shown(page)).state;
}

/** The page's state and title, read together from one document. */
async function shown(page: Page): Promise<{ state?: string; title: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      await page.waitForLoadState('domcontentloaded', { timeout: 60_000 });
      const r = await page.evaluate(() => ({ state: document.querySelector('main[data-state]')?.getAttribute('data-state') ?? undefined, title: document.title }));
      return r.state === undefined ? { title: r.title } : { state: r.state, title: r.title };
    } catch (err) {
      if (attempt >= 20 || !/context was destroyed|navigat/i.test((err as Error).message)) throw err;
    }
  }
}

it('a link opened while starting shows the starting page, which reloads itself into the flag', async () => {
  const launched = await rig.api('POST', '/v1/instances', { challenge: 'slow-web', team: 'red' });
  assert.is(launched.status, 202);
  const access = await rig.api('POST', `/v1/instances/${launched.body.id}/access`);
  assert.is(access.status, 200, JSON.stringify(access.body));
  await inContext(async (page, ctx) => {
    const first = await page.goto(access.body.url);
    assert.is(first?.status(), 503);
    assert.equal(await shown(page), { state: 'starting', title: 'Starting…' });
    assert.is(new URL(page.url()).search, '', 'the link left the address bar');
    const cookies = await ctx.cookies(`http://${access.body.hostname}/`);
    assert.equal(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.domain]), [['poseidon', true, 'Lax', access.body.hostname]]);
    const inst = { ...launched.body };
    await page.waitForFunction((flag) => document.body.innerText.includes(flag), expectedFlag(inst, 'flag{%s}'), { timeout: 120_000, polling: 250 });
    assert.is(await state(page), undefined);
  });
});

it("another team's browser gets the access page, never the instance", async () => {
  const red = await rig.launchRunning('web-hello', 'red');
  const redAccess = (await rig.api('POST', `/v1/instances/${red.id}/access`)).body;
  const blue = await rig.launchRunning('web-hello', 'blue');
  const blueAccess = (await rig.api('POST', `/v1/instances/${blue.id}/access`)).body;
  await inContext(async (page) => {
    await waitFor('blue routed', async () => {
      await page.goto(blueAccess.url);
      return (await page.content()).includes(expectedFlag(blue, 'poseidon{%s}')) ? true : undefined;
    }, 15_000, 300);
    const res = await page.goto(`http://${red.hostname}/`);
    assert.is(res?.status(), 401);
    assert.is(await state(page), 'needs-link');
    const text = await page.innerText('body');
    assert.not.ok(text.includes('red') || text.includes(red.id) || text.includes('poseidon{'), text);
    // Red's link moved onto blue's host is worthless: blue's browser just lands on its own page.
    await page.goto(redAccess.url.replace(red.hostname, blue.hostname));
    assert.is(new URL(page.url()).search, '');
    const own = await page.content();
    assert.ok(own.includes(expectedFlag(blue, 'poseidon{%s}')) && !own.includes(expectedFlag(red, 'poseidon{%s}')));
  });
  await inContext(async (page) => {
    await page.goto(redAccess.url.replace(red.hostname, blue.hostname));
    assert.is(await state(page), 'link-expired', 'without a cookie of its own: the link is refused');
  });
});

it('stopped, expired and unknown hostnames each get their page', async () => {
  const stopped = await rig.launchRunning('web-hello', 'green');
  const short = await rig.launchRunning('short-web', 'green');
  const link = (await rig.api('POST', `/v1/instances/${short.id}/access`)).body.url;
  await inContext(async (page) => {
    await waitFor('short-web routed', async () => {
      await page.goto(link);
      return (await state(page)) === undefined ? true : undefined;
    }, 15_000, 300);
    assert.is((await rig.api('DELETE', `/v1/instances/${stopped.id}`)).status, 202);
    const stoppedPage = await waitFor('stopped page', async () => {
      const r = await page.goto(`http://${stopped.hostname}/some/path?q=1`);
      return (await state(page)) === 'stopped' ? r : undefined;
    }, 15_000, 300);
    assert.is(stoppedPage?.status(), 410);
    assert.is((await shown(page)).title, 'Stopped');
    await waitFor('expired page', async () => {
      await page.goto(`http://${short.hostname}/`);
      return (await state(page)) === 'expired' ? true : undefined;
    }, 120_000, 500);
    assert.is((await shown(page)).title, 'Expired');
    const unknown = await page.goto(`http://0123456789abcdef.web-hello.${BASE}/`);
    assert.is(unknown?.status(), 404);
    assert.is(await state(page), 'unknown');
    const headers = unknown?.headers() ?? {};
    assert.match(headers['content-security-policy'] ?? '', /default-src 'none'/);
    assert.is(headers['x-frame-options'], 'DENY');
    // The strict CSP still lets the page's own style apply.
    const font = await page.evaluate(() => getComputedStyle(document.body).maxWidth);
    assert.is(font, '576px');
  });
});

t.run();
