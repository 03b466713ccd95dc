/**
 * `poseidon workers [--server URL] [--json]` and `poseidon cordon|uncordon|drain <id>
 * [--server URL]`: the fleet API from a terminal, with the admin key of the local configuration.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from './config/config.ts';
import type { CommandIo } from './challenge/validate-command.ts';

export const FLEET_USAGE = [
  'usage: poseidon workers [--server URL] [--json]',
  '       poseidon cordon|uncordon|drain <worker id> [--server URL]',
  '',
  '  workers   lists workers: state, heartbeat age, slots used, runtimes, images ready',
  '  cordon    no new placements on the worker; what runs there stays',
  '  uncordon  placements again',
  '  drain     cordon, and move every instance elsewhere (same hostname and expiry); the worker ends empty',
  '  --server  the manager (default http://127.0.0.1:$POSEIDON_PORT); the key is POSEIDON_API_KEY or <dataDir>/api-key',
].join('\n');

interface WorkerJson {
  id: string; state: string; address: string; slots: number; instances: number; runtimes: string[];
  heartbeatAgeMs: number; images: Record<string, { state: string }>; labels: Record<string, string>;
}

/** One line per worker, aligned. */
export function formatWorkers(workers: readonly WorkerJson[]): string[] {
  const rows = workers.map((w) => {
    const images = Object.values(w.images);
    const ready = images.filter((i) => i.state === 'present').length;
    return [w.id, w.state, w.address, `${w.instances}/${w.slots}`, w.runtimes.join(','), `${(w.heartbeatAgeMs / 1000).toFixed(1)}s`, `${ready}/${images.length}`,
      Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-'];
  });
  const head = ['WORKER', 'STATE', 'ADDRESS', 'SLOTS', 'RUNTIMES', 'HEARTBEAT', 'IMAGES', 'LABELS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

/** Runs `workers` or an action; resolves to the exit code (0 ok, 1 failed, 2 usage). */
export async function runFleet(command: string, args: string[], io: CommandIo, env?: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, strict: true, allowPositionals: true, options: { server: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
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
  if (isList ? positionals.length !== 0 : positionals.length !== 1) {
    io.stderr(`poseidon ${command}: ${isList ? 'takes no worker id' : 'needs exactly one worker id'}\n${FLEET_USAGE}`);
    return 2;
  }
  const config = loadConfig(env, io.cwd);
  const server = (values.server ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, '');
  const url = isList ? `${server}/v1/workers` : `${server}/v1/workers/${encodeURIComponent(positionals[0] as string)}/${command}`;
  let res: Response;
  try {
    res = await fetch(url, { method: isList ? 'GET' : 'POST', headers: { 'x-api-key': config.apiKey }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    io.stderr(`poseidon ${command}: cannot reach ${server}: ${(err as Error).message}`);
    return 1;
  }
  const body = (await res.json().catch(() => ({}))) as { workers?: WorkerJson[]; code?: string; detail?: string } & Partial<WorkerJson>;
  if (!res.ok) {
    io.stderr(`poseidon ${command}: ${body.code ?? res.status}: ${body.detail ?? res.statusText}`);
    return 1;
  }
  if (values.json) io.stdout(JSON.stringify(body, null, 2));
  else if (isList) for (const line of formatWorkers(body.workers ?? [])) io.stdout(line);
  else io.stdout(`worker ${body.id}: ${body.state}`);
  return 0;
}
