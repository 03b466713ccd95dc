/**
 * The status page with 5,000 instances in real headless Chromium: the instances view's first
 * render (navigation to every row counted and the first page drawn) and a filter change (state
 * select: the count and the page redrawn), each the median of several runs. The baseline is the
 * same page on the same kind of server holding 100 instances, measured in the same run.
 * Targets: first render at most 5 x the baseline's (the list travels as one JSON answer, 50 x
 * the size), a filter change at most 3 x (only one page of 100 rows is ever in the DOM).
 * Uses the in-process store and the app itself (buildApp), as `serve` composes it; no Docker.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildApp } from '../src/api/app.ts';
import type { WorkerRouteDeps } from '../src/api/worker-routes.ts';
import type { Catalog } from '../src/catalog/catalog.ts';
import type { Instance } from '../src/core/instance.ts';
import type { WorkerView } from '../src/core/worker.ts';
import { EventHub } from '../src/events/hub.ts';
import { InstanceIndex } from '../src/gateway/instance-index.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { loadTestCatalog } from '../spec/helpers/catalog.ts';
import { listenLocal, type BenchResult } from './harness.ts';

const KEY = 'bench-status-key-0123456789';
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const RUNS = 7;
const WORKERS = ['w1', 'w2', 'w3', 'w4'];
const STATES: Instance['status'][] = ['running', 'running', 'running', 'running', 'pending', 'starting', 'failed', 'stopped'];
const silent = { debug() {}, info() {}, warn() {}, error() {} };

const workerView = (id: string, now: number): WorkerView => ({
  id, address: '10.0.0.1', runtimes: ['runc'], labels: {}, capacity: { slots: 2000, cpu: 64, memoryBytes: 2 ** 37 }, publicKey: 'k', version: 'bench',
  heartbeatAt: now, startedAt: now, admin: 'active', state: 'ready',
});

/** A server like `serve`'s API, holding `count` instances spread over teams, challenges, states and workers. */
async function server(count: number, catalog: Catalog) {
  const store = new MemoryStore();
  const now = Date.now();
  const challenges = catalog.list().map((e) => e.spec.id);
  for (let i = 0; i < count; i++) {
    const challenge = challenges[i % challenges.length] as string;
    const team = `team-${String(i % 700).padStart(3, '0')}`;
    const status = STATES[i % STATES.length] as Instance['status'];
    const id = i.toString(16).padStart(24, '0');
    const inst: Instance = {
      id, challenge, team, owner: `${team}/${i}`, generation: 1 + (i % 3), epoch: 0, desired: status === 'stopped' ? 'stopped' : 'running', status,
      hostname: `${id.slice(0, 16)}.${challenge}.bench.test`, endpoints: [], specHash: catalog.get(challenge)?.hash ?? 'x',
      createdAt: now - i * 1000, updatedAt: now, renewals: 0, expiresAt: now + 1_800_000, maxExpiresAt: now + 7_200_000,
      worker: WORKERS[i % WORKERS.length] as string,
      ...(status === 'failed' ? { reason: 'E_CONTAINER_EXITED: exited with code 1 five times' } : {}),
    };
    await store.createInstance(inst, now);
  }
  const index = new InstanceIndex(store, { refreshMs: 60_000, log: silent });
  await index.start();
  const events = new EventHub(store, index, 60_000);
  events.start();
  const workers: WorkerRouteDeps = {
    view: { workers: () => WORKERS.map((w) => workerView(w, Date.now())), images: () => ({}), loads: () => new Map(), now: () => Date.now(), refresh: async () => undefined },
    fleet: { setAdmin: async () => true, setLaunchOverride: async () => true }, changed: () => undefined,
  };
  const lifecycle = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: 'bench-flag-secret-0123456789', flagRetentionMs: 60_000 };
  const app = buildApp({ store, catalog, apiKey: KEY, baseDomain: 'bench.test', lifecycle, index, events, workers, statusSecret: 'bench-status-secret-0123456789' });
  const url = await listenLocal(app);
  return {
    url, running: (await store.listInstances()).filter((i) => i.status === 'running').length,
    async close() { events.stop(); index.stop(); await app.close(); await store.close(); },
  };
}

/**
 * Runs in the page: changes the state filter and resolves the milliseconds until the count says
 * the expected number and the next frame is drawn. A string, so the bundler adds nothing to it.
 */
const FILTER_CHANGE = `async ([value, want]) => {
  const count = document.querySelector('#instances-count');
  const sel = document.querySelector('#f-state');
  const t = performance.now();
  await new Promise((resolve) => {
    const seen = new MutationObserver(() => {
      if (count.dataset.shown !== want) return;
      seen.disconnect();
      resolve();
    });
    seen.observe(count, { attributes: true, childList: true, characterData: true, subtree: true });
    sel.value = value;
    sel.dispatchEvent(new Event('change'));
  });
  const drawn = performance.now() - t;
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  return [drawn, performance.now() - t];
}`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

interface Timings { first: number; filter: number; painted: number }

/** Medians (ms) of the first render of the instances view and of a state filter change. */
async function measure(browser: Browser, url: string, total: number, running: number): Promise<Timings> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page: Page = await ctx.newPage();
  try {
    await page.goto(`${url}/status`);
    await page.fill('#key', KEY);
    await page.click('form#login button[type=submit]');
    await page.waitForSelector('body[data-page="status"]', { timeout: 60_000 });
    const first: number[] = [];
    const filter: number[] = [];
    const painted: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      await page.goto('about:blank');
      const t0 = Date.now();
      await page.goto(`${url}/status#instances`);
      await page.waitForSelector(`#instances-count[data-shown="${total}"]`, { timeout: 120_000 });
      await page.waitForSelector('table.instances tbody tr', { timeout: 120_000 });
      await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
      first.push(Date.now() - t0);
      for (const [value, shown] of [['running', running], ['', total]] as const) {
        const [drawn, framed] = await page.evaluate(`(${FILTER_CHANGE})(${JSON.stringify([value, String(shown)])})`) as [number, number];
        filter.push(drawn);
        painted.push(framed);
      }
    }
    return { first: median(first), filter: median(filter), painted: median(painted) };
  } finally {
    await ctx.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-bench-status-'));
  for (const id of ['web', 'pwn', 'crypto', 'misc']) {
    mkdirSync(path.join(dir, id));
    writeFileSync(path.join(dir, id, 'challenge.yaml'), `id: ${id}\nname: ${id}\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n`);
  }
  const catalog = await loadTestCatalog(dir);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 60_000 });
  const small = await server(100, catalog);
  const large = await server(5000, catalog);
  try {
    // One unmeasured pass each (module and JIT warm-up), then the measured ones.
    await measure(browser, small.url, 100, small.running);
    const base = await measure(browser, small.url, 100, small.running);
    const big = await measure(browser, large.url, 5000, large.running);
    const fmt = (m: Timings, n: number) => `${n.toLocaleString('en')} instances: first render ${m.first.toFixed(0)} ms, filter change ${m.filter.toFixed(1)} ms drawn / ${m.painted.toFixed(1)} ms to the next frame (medians of ${RUNS * 2})`;
    const firstRatio = big.first / base.first;
    const filterRatio = big.filter / Math.max(base.filter, 1);
    return [{
      name: 'status page, instances view with 5,000 instances (Chromium)',
      measured: `${fmt(big, 5000)}; ratios ${firstRatio.toFixed(2)} x and ${filterRatio.toFixed(2)} x`,
      baseline: fmt(base, 100),
      target: 'first render <= 5 x baseline, filter change <= 3 x baseline (filter baseline floored at 1 ms)',
      ok: firstRatio <= 5 && filterRatio <= 3,
    }];
  } finally {
    await browser.close();
    await small.close();
    await large.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
