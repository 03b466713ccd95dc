/**
 * A real Prometheus for tests (Debian's `prometheus` 2.42 and `promtool`): started on a free
 * loopback port with a configuration the test writes (scrape every second, bearer credentials),
 * its data in a temp dir, stopped by its pid. Missing binaries fail under CI=true and are
 * reported loudly as skipped otherwise, like the other dependencies (`deps.ts`).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CI } from './deps.ts';
import { freePort } from './server.ts';

let prometheusOk: boolean | undefined;

function runs(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** True when `prometheus` and `promtool` run; under CI=true their absence throws (never a silent skip). */
export function havePrometheus(): boolean {
  prometheusOk ??= runs('prometheus') && runs('promtool');
  if (prometheusOk) return true;
  if (CI) throw new Error('prometheus and promtool are required under CI=true but are not available (apt-get install prometheus; scripts/dev-env.sh)');
  console.warn('\n  !! SKIPPED: prometheus/promtool not available (apt-get install prometheus); run scripts/dev-env.sh\n');
  return false;
}

/** Runs `promtool args` (stdin `input`); never throws on a non-zero exit. */
export function promtool(args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync('promtool', args, { input: input ?? '', encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

export interface PromResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value?: [number, string] }[] };
}

export interface PrometheusProcess {
  url: string;
  proc: ChildProcess;
  /** An instant query through the HTTP API (`/api/v1/query`); the answer as Prometheus gives it (errors included). */
  query(expr: string): Promise<PromResult>;
  /** GET `/api/v1/<p>` as JSON. */
  api(p: string): Promise<any>;
  logs(): string;
  /** SIGTERM by pid (SIGKILL after 10 s), then removes the data dir. */
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** `host:port` of the target. */
  target: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Rule files loaded (and evaluated every second). */
  ruleFiles?: string[];
}

/** Starts Prometheus scraping `opts.target` every second and waits (bounded) until it is ready. */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-prom-'));
  const port = await freePort();
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: opts.ruleFiles ?? [],
    scrape_configs: [{
      job_name: 'poseidon', metrics_path: '/metrics', static_configs: [{ targets: [opts.target] }],
      ...(opts.token ? { authorization: { type: 'Bearer', credentials: opts.token } } : {}),
    }],
  };
  // JSON is YAML: no serializer needed, and nothing is left to quoting rules.
  writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
  const proc = spawn('prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', '--storage.tsdb.retention.time=1h',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) process.kill(proc.pid, 'SIGTERM');
    const killed = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!killed && proc.pid !== undefined) {
      process.kill(proc.pid, 'SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const api = async (p: string): Promise<any> => (await fetch(`${url}/api/v1/${p}`)).json();
  const handle: PrometheusProcess = {
    url, proc, api, stop, logs: () => out,
    query: (expr) => api(`query?query=${encodeURIComponent(expr)}`) as Promise<PromResult>,
  };
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`prometheus exited early (${proc.exitCode}):\n${out}`);
    if (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) return handle;
    await sleep(100);
  }
  await stop();
  throw new Error(`prometheus was not ready in 60 s:\n${out}`);
}

/** The first sample's value of an instant vector answer, or undefined when it has none. */
export function firstValue(r: PromResult): number | undefined {
  const v = r.data?.result[0]?.value?.[1];
  return v === undefined ? undefined : Number(v);
}
