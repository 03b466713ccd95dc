/**
 * Catalog sync time for a repository of 200 challenges (a third of them `build:`, images
 * excluded): a sync with nothing new, and a sync after a push changing one challenge. Baseline,
 * measured in the same run on the same repository: what any follower must do at least - a plain
 * `git fetch` (nothing new), and a fetch plus a checkout plus reading every file (one change).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Catalog } from '../src/catalog/catalog.ts';
import { NoCatalogStore } from '../src/catalog/catalog-store.ts';
import type { ImagePreparation } from '../src/catalog/images.ts';
import { CatalogSync } from '../src/catalog/sync.ts';
import { GitSource } from '../src/source/git-source.ts';
import { challengeYaml, gitFixture, TEST_GIT_ENV, type GitFixture } from '../spec/source/git-fixture.ts';
import type { BenchResult } from './harness.ts';

const CHALLENGES = 200;
const RUNS = 9;
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function populate(fx: GitFixture): void {
  for (let i = 0; i < CHALLENGES; i++) {
    const id = `chal-${String(i).padStart(3, '0')}`;
    if (i % 3 === 0) {
      fx.write(`challenges/${id}/challenge.yaml`, `id: ${id}\nname: Challenge ${i}\nbuild: .\nexpose: [{ name: web, port: 8080 }]\nenv: { LEVEL: "${i}" }\n`);
      fx.write(`challenges/${id}/Dockerfile`, 'FROM busybox:1.35\nCOPY app /app\nCMD ["httpd", "-f", "-p", "8080", "-h", "/app"]\n');
      fx.write(`challenges/${id}/app/index.html`, `<p>challenge ${i}</p>\n`.repeat(50));
    } else {
      fx.write(`challenges/${id}/challenge.yaml`, challengeYaml(id, { env: `{ LEVEL: "${i}" }`, ttl: '{ default: 30m, max: 2h }' }));
    }
  }
  fx.push('200 challenges');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function time(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Reads every file under `dir` (the least a loader must do). */
function readAll(dir: string): number {
  let bytes = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) bytes += readFileSync(path.join(e.parentPath, e.name)).length;
  }
  return bytes;
}

export async function run(): Promise<BenchResult[]> {
  const fx = gitFixture();
  const work = mkdtempSync(path.join(tmpdir(), 'poseidon-bench-sync-'));
  const git = (...args: string[]) => execFileSync('git', args, { env: TEST_GIT_ENV, stdio: 'ignore', timeout: 30_000 });
  try {
    populate(fx);
    const baseRepo = path.join(work, 'baseline.git');
    git('init', '--bare', '-q', baseRepo);
    const fetch = () => git('--git-dir', baseRepo, 'fetch', '-q', '--no-tags', fx.remote, '+refs/heads/main:refs/remotes/origin/main');
    fetch();
    const catalog = new Catalog();
    const images: ImagePreparation = { prepare: async (entries) => { for (const e of entries) catalog.markImage(e.hash, 'ready', {}); } };
    const source = new GitSource({ url: fx.remote, branch: 'main', path: 'challenges', workdir: path.join(work, 'poseidon'), env: TEST_GIT_ENV });
    const sync = new CatalogSync({ source, catalog, images, store: new NoCatalogStore(), log: silent, pollMs: 0 });
    const first = await time(() => sync.start());
    if (catalog.list().length !== CHALLENGES) throw new Error(`loaded ${catalog.list().length} challenges`);

    const noChange: number[] = [];
    const baseNoChange: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      baseNoChange.push(await time(fetch));
      noChange.push(await time(async () => { if (!(await sync.syncNow()).unchanged) throw new Error('expected no change'); }));
    }
    const oneChange: number[] = [];
    const baseOneChange: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const id = `chal-${String(i * 7).padStart(3, '0')}`;
      fx.write(`challenges/${id}/challenge.yaml`, challengeYaml(id, { name: `Changed ${i}` }));
      fx.push(`change ${id}`);
      const checkout = path.join(work, `baseline-${i}`);
      mkdirSync(checkout);
      baseOneChange.push(await time(() => {
        fetch();
        git('--git-dir', baseRepo, `--work-tree=${checkout}`, 'checkout', '-q', '-f', 'refs/remotes/origin/main', '--', '.');
        readAll(path.join(checkout, 'challenges'));
      }));
      rmSync(checkout, { recursive: true, force: true });
      oneChange.push(await time(async () => {
        const r = await sync.syncNow();
        if (!r.ok || r.changes?.changed.length !== 1) throw new Error(`unexpected sync: ${JSON.stringify(r)}`);
      }));
    }
    await sync.stop();
    const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
    const [nc, bnc, oc, boc] = [median(noChange), median(baseNoChange), median(oneChange), median(baseOneChange)];
    return [
      {
        name: `catalog sync, nothing new (${CHALLENGES} challenges, median of ${RUNS}; first sync ${fmt(first)})`,
        measured: fmt(nc), baseline: `plain git fetch ${fmt(bnc)}`,
        target: '<= 3 x baseline and < 200 ms (issue 3)', ok: nc <= 3 * bnc && nc < 200,
      },
      {
        name: `catalog sync, one challenge changed (${CHALLENGES} challenges, images excluded, median of ${RUNS})`,
        measured: fmt(oc), baseline: `git fetch + checkout + read every file ${fmt(boc)}`,
        target: '<= 6 x baseline and < 1 s (issue 3)', ok: oc <= 6 * boc && oc < 1000,
      },
    ];
  } finally {
    fx.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}
