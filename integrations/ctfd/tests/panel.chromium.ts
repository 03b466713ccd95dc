/**
 * The instance panel in real headless Chromium, against the CTFd stand-in's challenges page
 * (CTFd 3.7.7 core-beta's modal markup and modal flow) with the plugin installed and a real
 * Poseidon behind it (tests/rig.py starts both). A player launches from the modal, watches it
 * start, opens it through a fresh access link (a popup without an opener), renews, restarts and
 * stops it; another team sees nothing of it; the panel survives the theme re-rendering the modal,
 * pauses while the modal is hidden, long-polls instead of polling, and says plainly when Poseidon
 * is unreachable. Exported as a uvu suite; spec/integrations/ctfd.test.ts runs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

export const CHROMIUM = '/usr/bin/chromium';
export const PYTHON = '/usr/bin/python3';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];
const CTFD_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LONG = 180_000;

export interface RigInfo {
  standin: string;
  poseidon: string;
  key: string;
  manager: string;
  users: Record<string, number>;
  teams: Record<string, number>;
  challenges: { fast: number; tcp: number; windowed: number };
}

export interface Rig {
  info: RigInfo;
  proc: ChildProcess;
  output: () => string;
}

/** Starts tests/rig.py (with `env` added) and reads its JSON line (bounded). */
export async function startRig(env: Record<string, string> = {}): Promise<Rig> {
  const proc = spawn(PYTHON, ['-m', 'tests.rig'], {
    cwd: CTFD_DIR, stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PYTHONDONTWRITEBYTECODE: '1', ...(process.env.POSEIDON_SOURCE_DIR ? { POSEIDON_SOURCE_DIR: process.env.POSEIDON_SOURCE_DIR } : {}), ...env },
  });
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-20_000); });
  const info = await new Promise<RigInfo>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rig did not start in 10 min:\n${err}`)), 600_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as RigInfo);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`rig exited (${code}):\n${err}`));
    });
  });
  return { info, proc, output: () => err };
}

/** Closes the rig's stdin (it cleans up and exits); kills it after a bound; then sweeps by label. */
export async function stopRig(rig: Rig | undefined): Promise<void> {
  if (!rig) return;
  if (rig.proc.exitCode === null) {
    const exited = new Promise<void>((resolve) => rig.proc.once('exit', () => resolve()));
    rig.proc.stdin?.end();
    const killer = setTimeout(() => rig.proc.kill('SIGKILL'), 90_000);
    await exited;
    clearTimeout(killer);
  }
  sweep(rig.info.manager);
}

/** Removes containers, then networks, labelled with the rig's manager id (a safety net). */
export function sweep(manager: string): void {
  const label = `label=poseidon.managed-by=${manager}`;
  for (const [ls, rm] of [[['ps', '-aq'], ['rm', '-f']], [['network', 'ls', '-q'], ['network', 'rm']]] as const) {
    const ids = spawnSync('docker', [...ls, '--filter', label], { encoding: 'utf8', timeout: 60_000 }).stdout?.split(/\s+/).filter(Boolean) ?? [];
    if (ids.length) spawnSync('docker', [...rm, ...ids], { timeout: 120_000 });
  }
}

async function poseidonApi(info: RigInfo, method: string, p: string): Promise<any> {
  const res = await fetch(info.poseidon + p, { method, headers: { 'x-api-key': info.key } });
  const text = await res.text();
  return text ? JSON.parse(text) : undefined;
}

/** The instance an access link names, checked by Poseidon's forward-auth as Traefik would ask. */
async function gate(info: RigInfo, url: string): Promise<number> {
  const u = new URL(url);
  const res = await fetch(`${info.poseidon}/v1/authz`, {
    headers: { 'x-forwarded-host': u.host, 'x-forwarded-uri': u.pathname + u.search, 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http' },
    redirect: 'manual',
  });
  await res.body?.cancel();
  return res.status;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = LONG): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** The suite; `enabled()` says whether python3, Flask and Chromium are there (or throws under CI). */
export function panelSuite(enabled: () => boolean) {
  const t = suite('ctfd plugin: the panel in Chromium');
  let rig: Rig | undefined;
  let browser: Browser | undefined;
  let on = false;
  const seen: string[] = [];

  t.before(async () => {
    on = enabled();
    if (!on) return;
    rig = await startRig();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 60_000 });
  });
  t.after(async () => {
    await browser?.close().catch(() => undefined);
    await stopRig(rig);
  });
  const it = (name: string, fn: (info: RigInfo) => Promise<void>) => t(name, async () => {
    if (on) await fn((rig as Rig).info);
  });

  const contexts: BrowserContext[] = [];
  /** A browser context signed in as `name`, on the challenges page; plugin API answers are kept for the secrets check. */
  async function player(info: RigInfo, name: string): Promise<{ page: Page; ctx: BrowserContext }> {
    const ctx = await (browser as Browser).newContext();
    contexts.push(ctx);
    // Instance hostnames (under ctf.test) never leave the browser: a stand-in page answers them.
    await ctx.route(/^https?:\/\/[^/]*\.ctf\.test\//, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<p>instance</p>' }));
    const page = await ctx.newPage();
    page.on('response', (res) => {
      if (res.url().includes('/plugins/poseidon/api/')) void res.text().then((b) => seen.push(b), () => undefined);
    });
    await page.goto(`${info.standin}/test/login/${info.users[name]}`);
    await page.waitForSelector('#board');
    return { page, ctx };
  }

  async function open(page: Page, cid: number): Promise<void> {
    await page.click(`.challenge-button[value="${cid}"]`);
    await page.waitForSelector(`#challenge-window.show .poseidon-panel[data-poseidon-challenge="${cid}"]:not([data-status=loading])`, { timeout: LONG });
  }

  const status = (page: Page) => page.getAttribute('#challenge-window .poseidon-panel', 'data-status');
  const panel = '#challenge-window .poseidon-panel';

  let alice: Page;
  let carol: Page;

  it('the panel mounts in CTFd\'s modal (rendered after postRender) and offers a launch', async (info) => {
    ({ page: alice } = await player(info, 'alice'));
    await open(alice, info.challenges.fast);
    assert.is(await status(alice), 'none');
    assert.is(await alice.textContent(`${panel} .poseidon-status`), 'No instance running');
    assert.ok(await alice.isVisible(`${panel} [data-action=launch]`));
    assert.not.ok(await alice.isVisible(`${panel} [data-action=stop]`));
    assert.ok(await alice.isVisible('#challenge-input'), 'CTFd\'s own flag input is still there');
  });

  it('launch: the status goes live from starting to running, with a countdown', async () => {
    await alice.click(`${panel} [data-action=launch]`);
    await alice.waitForSelector(`${panel}:is([data-status=pending],[data-status=starting],[data-status=running])`, { timeout: 60_000 });
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: LONG });
    assert.match((await alice.textContent(`${panel} .poseidon-countdown`)) ?? '', /^expires in \d+:\d\d$/);
    assert.ok(await alice.isVisible(`${panel} [data-action=open][data-endpoint=web]`));
    assert.ok(await alice.isEnabled(`${panel} [data-action=renew]`));
  });

  it('long-polls: the next read carries the known state and the server holds it', async () => {
    const longPoll = /\/instance\?wait=25&known=[0-9a-f]{16}$/;
    const first = await alice.waitForRequest((r) => longPoll.test(r.url()), { timeout: 60_000 });
    const sentAt = Date.now();
    await alice.waitForRequest((r) => r.url() === first.url(), { timeout: 90_000 });
    const gap = Date.now() - sentAt;
    assert.ok(gap >= 15_000, `the same state was asked again after ${gap} ms: held by the server, not polled`);
    // Actions abort a held read (possibly while its body is arriving): that is no error to show.
    for (let i = 0; i < 3; i++) {
      await alice.evaluate(() => Array.from((window as any).PoseidonPanel.panels as Set<any>).forEach((p) => p.kick()));
      await alice.waitForRequest((r) => /\/instance\?wait=25/.test(r.url()), { timeout: 60_000 });
    }
    assert.not.match((await alice.textContent(`${panel} .poseidon-message`)) ?? '', /Sign in|unreachable|Cannot reach/);
    assert.is(await status(alice), 'running');
  });

  it('open: a fresh access link in a popup without an opener; Poseidon accepts the link', async (info) => {
    const ctx = alice.context();
    const [popup] = await Promise.all([ctx.waitForEvent('page', { timeout: 60_000 }), alice.click(`${panel} [data-action=open]`)]);
    await popup.waitForURL(/poseidon_access=l\./, { timeout: 60_000 });
    const url = popup.url();
    assert.match(url, /^http:\/\/[0-9a-f]{16}\.fast-web\.ctf\.test\/\?poseidon_access=l\./);
    assert.is(await popup.evaluate(() => window.opener), null);
    assert.is(await gate(info, url), 302);
    await popup.close();
  });

  it('another team sees no instance and can stop nothing; the flag check follows the owner', async (info) => {
    ({ page: carol } = await player(info, 'carol'));
    await open(carol, info.challenges.fast);
    assert.is(await status(carol), 'none');
    const list = await poseidonApi(info, 'GET', `/v1/instances?team=t${info.teams.red}&challenge=fast-web`);
    const inst = list.instances.find((i: any) => i.status === 'running');
    const port = inst.endpoints[0].published.port as number;
    const page = await waitFor('the instance page', async () => (await fetch(`http://127.0.0.1:${port}/`)).text());
    const flag = /ctf\{[0-9a-f]+\}/.exec(page)?.[0] as string;
    assert.ok(flag);
    await carol.fill('#challenge-input', flag);
    await carol.click('#challenge-submit');
    await carol.waitForSelector('.submission-result[data-status=incorrect]', { timeout: 60_000 });
    await alice.fill('#challenge-input', flag);
    await alice.click('#challenge-submit');
    await alice.waitForSelector('.submission-result[data-status=correct]', { timeout: 60_000 });
    assert.is(await status(alice), 'running', 'the panel is untouched by a submission');
  });

  it('renew: done, with the renewals left', async () => {
    await alice.click(`${panel} [data-action=renew]`);
    await alice.waitForFunction((sel) => document.querySelector(sel)?.textContent?.includes('Renewed.'), `${panel} .poseidon-message`, { timeout: 60_000 });
    assert.is(await alice.textContent(`${panel} .poseidon-renew-note`), '1 renewal left.');
  });

  it('the theme re-renders the modal: one fresh panel, the old one disposed', async () => {
    await alice.evaluate(() => (window as any).standin.rerender());
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: 60_000 });
    assert.is(await alice.evaluate(() => (window as any).PoseidonPanel.panels.size), 1);
    await open(alice, (rig as Rig).info.challenges.fast);
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: 60_000 });
    assert.is(await alice.evaluate(() => (window as any).PoseidonPanel.panels.size), 1);
    assert.is(await alice.evaluate(() => document.querySelectorAll('script[src$="/view.js"]').length), 1);
  });

  it('a hidden modal holds no request open; showing it again resumes', async (info) => {
    // Once the panel holds a long-poll open, hide the modal: the panel drops it.
    // On a timeout, say which wait it was and what the panel held (the failure is otherwise anonymous).
    const panelState = (): Promise<string> => alice.evaluate(() => JSON.stringify(Array.from((window as any).PoseidonPanel.panels as Set<any>).map((p) => ({
      inflight: p.inflight ? { longPoll: p.inflight.longPoll } : null, hiddenWait: p.hiddenWait != null, wake: p.wake != null,
      waitSeconds: p.waitSeconds, etag: p.etag, status: p.state?.instance?.status ?? null,
    })))).catch((err: Error) => err.message);
    const waitPanel = async (what: string, fn: () => boolean): Promise<void> => {
      await alice.waitForFunction(fn, null, { timeout: 60_000 }).catch(async (err: Error) => {
        throw new Error(`${what}: ${err.message.split('\n')[0]}; panels: ${await panelState()}`);
      });
    };
    await waitPanel('a long-poll in flight', () => {
      const panels = Array.from((window as any).PoseidonPanel.panels as Set<any>);
      return panels.length === 1 && panels[0].inflight?.longPoll === true;
    });
    // The long-poll in flight is aborted by the next tick (or has just answered on its own: a
    // race the test must not lose), then the loop parks: nothing in flight, no new request.
    await alice.evaluate(() => (window as any).standin.close());
    await waitPanel('the loop parked while hidden', () => {
      const panels = Array.from((window as any).PoseidonPanel.panels as Set<any>);
      return panels.length === 1 && panels[0].inflight === null && panels[0].hiddenWait != null;
    });
    const asked: string[] = [];
    const onRequest = (r: { url(): string }): void => { if (r.url().includes('/instance?wait=')) asked.push(r.url()); };
    alice.on('request', onRequest);
    await new Promise((r) => setTimeout(r, 3000));
    alice.off('request', onRequest);
    assert.equal(asked, [], 'no request while the modal is hidden');
    await open(alice, info.challenges.fast);
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: 60_000 });
  });

  it('restart and stop need a second click, then act', async (info) => {
    const live = async (): Promise<any> => (await poseidonApi(info, 'GET', `/v1/instances?team=t${info.teams.red}&challenge=fast-web&live=true`)).instances[0];
    const before = (await live()).generation as number;
    await alice.click(`${panel} [data-action=restart]`);
    assert.is(await alice.textContent(`${panel} [data-action=restart]`), 'Click again to restart');
    // A status update landing between the two clicks keeps the pending confirmation.
    await alice.evaluate(() => Array.from((window as any).PoseidonPanel.panels as Set<any>).forEach((p) => p.render()));
    assert.is(await alice.textContent(`${panel} [data-action=restart]`), 'Click again to restart');
    await alice.click(`${panel} [data-action=restart]`);
    // The restart acted (a new generation); pending/starting may be too brief for the panel to
    // show, so it is not waited for. Then the panel shows the new container running.
    await waitFor('a new generation running', async () => {
      const i = await live();
      return i?.generation > before && i.status === 'running' ? true : undefined;
    });
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: LONG });
    await alice.click(`${panel} [data-action=stop]`);
    assert.is(await alice.textContent(`${panel} [data-action=stop]`), 'Click again to stop');
    await alice.click(`${panel} [data-action=stop]`);
    await alice.waitForSelector(`${panel}[data-status=none]`, { timeout: 60_000 });
    assert.ok(await alice.isVisible(`${panel} [data-action=launch]`));
  });

  it('a TCP port shows its connection string', async (info) => {
    await alice.evaluate(() => (window as any).standin.close());
    await open(alice, info.challenges.tcp);
    await alice.click(`${panel} [data-action=launch]`);
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: LONG });
    assert.match((await alice.textContent(`${panel} code[data-connection=pwn]`)) ?? '', /^ncat --ssl [0-9a-f]{16}\.tcp-echo\.ctf\.test 80$/);
    await alice.click(`${panel} [data-action=stop]`);
    await alice.click(`${panel} [data-action=stop]`);
    await alice.waitForSelector(`${panel}[data-status=none]`, { timeout: 60_000 });
  });

  it('renew outside the renew window: disabled, saying why and when it opens', async (info) => {
    await alice.evaluate(() => (window as any).standin.close());
    await open(alice, info.challenges.windowed);
    await alice.click(`${panel} [data-action=launch]`);
    await alice.waitForSelector(`${panel}[data-status=running]`, { timeout: LONG });
    assert.not.ok(await alice.isEnabled(`${panel} [data-action=renew]`));
    assert.match((await alice.textContent(`${panel} .poseidon-renew-note`)) ?? '', /^Renewal opens 2 min before expiry\. Opens in \d+:\d\d\.$/);
    assert.match((await alice.getAttribute(`${panel} [data-action=renew]`, 'title')) ?? '', /Renewal opens 2 min before expiry/);
    await alice.click(`${panel} [data-action=stop]`);
    await alice.click(`${panel} [data-action=stop]`);
    await alice.waitForSelector(`${panel}[data-status=none]`, { timeout: 60_000 });
  });

  it('Poseidon unreachable: a plain message, CTFd keeps working, and the panel recovers', async (info) => {
    const { page: admin } = await player(info, 'admin');
    const set = (url: string) => admin.evaluate(async (body) => {
      const res = await fetch('/plugins/poseidon/api/v1/admin/settings', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'CSRF-Token': (window as any).init.csrfNonce },
        body: JSON.stringify(body),
      });
      return res.status;
    }, { url });
    assert.is(await set('http://127.0.0.1:9'), 200);
    try {
      await alice.evaluate(() => (window as any).standin.close());
      await open(alice, info.challenges.fast);
      await alice.waitForSelector(`${panel}[data-status=unavailable]`, { timeout: 60_000 });
      assert.match((await alice.textContent(`${panel} .poseidon-message`)) ?? '', /The instance service is unreachable right now\. CTFd keeps working/);
      await carol.reload();
      assert.ok(await carol.isVisible(`.challenge-button[value="${info.challenges.fast}"]`), 'CTFd pages still work');
    } finally {
      assert.is(await set(info.poseidon), 200);
    }
    await alice.waitForSelector(`${panel}[data-status=none]`, { timeout: 120_000 });
    assert.is((await alice.textContent(`${panel} .poseidon-message`))?.trim(), '');
  });

  it('no secret and no instance id ever reached the browser', async (info) => {
    await new Promise((r) => setTimeout(r, 500)); // let the last response bodies arrive
    assert.ok(seen.length > 10, `saw ${seen.length} answers`);
    for (const body of seen) {
      assert.not.ok(body.includes(info.key), 'the API key');
      assert.not.match(body.replace(/"etag":"[0-9a-f]+"/g, ''), /\b[0-9a-f]{24}\b/, 'an instance id');
    }
    for (const ctx of contexts) await ctx.close().catch(() => undefined);
  });

  return t;
}

/** Whether Chromium is installed where the tests expect it. */
export function haveChromium(): boolean {
  return existsSync(CHROMIUM);
}
