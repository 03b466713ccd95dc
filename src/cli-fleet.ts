/**
 * `poseidon workers [--server URL] [--json]`, `poseidon cordon|uncordon|drain <id> [--server URL]`
 * and `poseidon launch-settings <id>|--all [--network-pool N] [--launch-concurrency N] [--server URL]`:
 * the fleet API from a terminal, with the admin key of the local configuration.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from './config/config.ts';
import type { CommandIo } from './challenge/validate-command.ts';

export const FLEET_USAGE = [
  'usage: poseidon workers [--server URL] [--json]',
  '       poseidon cordon|uncordon|drain <worker id> [--server URL]',
  '       poseidon launch-settings <worker id>|--all [--network-pool N] [--launch-concurrency N] [--server URL]',
  '',
  '  workers   lists workers: state, heartbeat age, slots used, runtimes, images ready',
  '  cordon    no new placements on the worker; what runs there stays',
  '  uncordon  placements again',
  '  drain     cordon, and move every instance elsewhere (same hostname and expiry); the worker ends empty',
  '  launch-settings  sets the network pool (0-256) and launch concurrency (1-64) over the worker\'s',
  '            configuration, in effect at its next heartbeat; a setting not given is the worker\'s own',
  '            (no setting: the override is cleared); --all: every registered worker. `workers`',
  '            shows them: POOL as ready/size (free networks made so far, of the pool\'s size) and',
  '            CONC, each with * when overridden',
  '  --server  the manager (default http://127.0.0.1:$POSEIDON_PORT); the key is POSEIDON_API_KEY or <dataDir>/api-key',
].join('\n');

interface WorkerJson {
  id: string; state: string; address: string; slots: number; instances: number; runtimes: string[];
  heartbeatAgeMs: number; images: Record<string, { state: string }>; labels: Record<string, string>;
  launch?: { networkPool: number; launchConcurrency: number }; launchOverride?: Record<string, number>; networkPoolReady?: number;
}

/**
 * The POOL and CONC cells: the pool as `ready/size` (`?` for a worker that does not report what
 * is ready) and the launch concurrency, each with `*` when an admin overrode it; `-` from a worker
 * that does not report its launch settings.
 */
function launchCells(w: WorkerJson): [string, string] {
  if (!w.launch) return ['-', '-'];
  const star = (field: string): string => (w.launchOverride?.[field] !== undefined ? '*' : '');
  return [`${w.networkPoolReady ?? '?'}/${w.launch.networkPool}${star('networkPool')}`, `${w.launch.launchConcurrency}${star('launchConcurrency')}`];
}

/**
 * The launch settings a worker still has in effect, for the line after a change (no `*`: the
 * override just stored is not in effect before its next heartbeat).
 */
function nowInEffect(w: WorkerJson): string {
  if (!w.launch) return 'not reported by this worker';
  return `pool ${w.networkPoolReady ?? '?'}/${w.launch.networkPool}, concurrency ${w.launch.launchConcurrency}`;
}

/** One line per worker, aligned. */
export function formatWorkers(workers: readonly WorkerJson[]): string[] {
  const rows = workers.map((w) => {
    const images = Object.values(w.images);
    const ready = images.filter((i) => i.state === 'present').length;
    return [w.id, w.state, w.address, `${w.instances}/${w.slots}`, w.runtimes.join(','), `${(w.heartbeatAgeMs / 1000).toFixed(1)}s`, `${ready}/${images.length}`,
      ...launchCells(w), Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-'];
  });
  const head = ['WORKER', 'STATE', 'ADDRESS', 'SLOTS', 'RUNTIMES', 'HEARTBEAT', 'IMAGES', 'POOL', 'CONC', 'LABELS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

const LAUNCH_OPTIONS = { 'network-pool': { type: 'string' }, 'launch-concurrency': { type: 'string' }, all: { type: 'boolean' } } as const;

function describeOverride(o: Record<string, number>): string {
  const parts = Object.entries(o).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(' ') : 'cleared (the worker\'s configuration)';
}

/** Runs `workers` or an action; resolves to the exit code (0 ok, 1 failed, 2 usage). */
export async function runFleet(command: string, args: string[], io: CommandIo, env?: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args, strict: true, allowPositionals: true,
      options: { server: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...(command === 'launch-settings' ? LAUNCH_OPTIONS : {}) },
    });
  } catch (err) {
    io.stderr(`poseidon ${command}: ${(err as Error).message}\n${FLEET_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(FLEET_USAGE);
    return 0;
  }
  const isList = command === 'workers';
  const all = command === 'launch-settings' && (values as Record<string, unknown>).all === true;
  if (isList || all ? positionals.length !== 0 : positionals.length !== 1) {
    io.stderr(`poseidon ${command}: ${isList ? 'takes no worker id' : all ? 'takes no worker id with --all' : 'needs exactly one worker id (or --all)'}\n${FLEET_USAGE}`);
    return 2;
  }
  let launch: string | undefined;
  if (command === 'launch-settings') {
    const settings: Record<string, number> = {};
    for (const [flag, field] of [['network-pool', 'networkPool'], ['launch-concurrency', 'launchConcurrency']] as const) {
      const raw = (values as Record<string, unknown>)[flag] as string | undefined;
      if (raw === undefined) continue;
      if (!/^\d{1,3}$/.test(raw)) {
        io.stderr(`poseidon ${command}: --${flag} must be a whole number, not ${JSON.stringify(raw)}\n${FLEET_USAGE}`);
        return 2;
      }
      settings[field] = Number(raw);
    }
    launch = JSON.stringify(settings);
  }
  const config = loadConfig(env, io.cwd);
  const server = (values.server ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, '');
  type Body = { workers?: WorkerJson[]; code?: string; detail?: string } & Partial<WorkerJson>;
  /** One API call; the answer, or undefined once the failure is written to stderr. */
  const call = async (method: string, url: string, body?: string): Promise<Body | undefined> => {
    let res: Response;
    try {
      const headers: Record<string, string> = { 'x-api-key': config.apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
      res = await fetch(`${server}${url}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      io.stderr(`poseidon ${command}: cannot reach ${server}: ${(err as Error).message}`);
      return undefined;
    }
    const answer = (await res.json().catch(() => ({}))) as Body;
    if (res.ok) return answer;
    io.stderr(`poseidon ${command}: ${answer.code ?? res.status}: ${answer.detail ?? res.statusText}`);
    return undefined;
  };
  if (isList) {
    const body = await call('GET', '/v1/workers');
    if (!body) return 1;
    if (values.json) io.stdout(JSON.stringify(body, null, 2));
    else for (const line of formatWorkers(body.workers ?? [])) io.stdout(line);
    return 0;
  }
  let ids = [positionals[0] as string];
  if (all) {
    const listed = await call('GET', '/v1/workers');
    if (!listed) return 1;
    ids = (listed.workers ?? []).map((w) => w.id);
    if (ids.length === 0) io.stderr(`poseidon ${command}: no worker is registered`);
  }
  let failed = 0;
  for (const id of ids) {
    const path = `/v1/workers/${encodeURIComponent(id)}/${command}`;
    const body = launch !== undefined ? await call('PUT', path, launch) : await call('POST', path);
    if (!body) { failed++; continue; }
    if (values.json) io.stdout(JSON.stringify(body, null, 2));
    else if (launch !== undefined) io.stdout(`worker ${body.id}: launch override ${describeOverride(body.launchOverride ?? {})}, in effect at its next heartbeat (now ${nowInEffect(body as WorkerJson)})`);
    else io.stdout(`worker ${body.id}: ${body.state}`);
  }
  return failed > 0 || ids.length === 0 ? 1 : 0;
}
