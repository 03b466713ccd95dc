/**
 * `poseidon plan [--server URL] [--json]`: asks a running server what syncing its source's
 * newest revision would change (`GET /v1/catalog/plan`) and prints it, changes first.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.ts';
import type { CommandIo } from '../challenge/validate-command.ts';
import { formatPlan, type CatalogPlan } from './plan.ts';

export const PLAN_USAGE = [
  'usage: poseidon plan [--server URL] [--json]',
  '',
  '  Shows what syncing the newest revision of the server\'s challenge source would change: challenges',
  '  added, changed (which fields), removed and invalid (file:line), and how many running instances each',
  '  change touches under its update policy. Nothing is applied.',
  '  --server  the server (default http://127.0.0.1:$POSEIDON_PORT); the key is POSEIDON_API_KEY or <dataDir>/api-key',
  '  --json    print the plan as JSON',
  '',
  '  exit 0: no invalid files; 1: invalid files or the plan failed; 2: usage',
].join('\n');

/** Runs the command and resolves to its exit code (see the usage). Never rejects for server errors. */
export async function runPlan(args: string[], io: CommandIo, env?: NodeJS.ProcessEnv): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, strict: true, options: { server: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    io.stderr(`poseidon plan: ${(err as Error).message}\n${PLAN_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout(PLAN_USAGE);
    return 0;
  }
  const config = loadConfig(env, io.cwd);
  const server = (values.server ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, '');
  let res: Response;
  try {
    res = await fetch(`${server}/v1/catalog/plan`, { headers: { 'x-api-key': config.apiKey }, signal: AbortSignal.timeout(120_000) });
  } catch (err) {
    io.stderr(`poseidon plan: cannot reach ${server}: ${(err as Error).message}`);
    return 1;
  }
  const body = (await res.json().catch(() => ({}))) as CatalogPlan & { code?: string; detail?: string };
  if (!res.ok) {
    io.stderr(`poseidon plan: ${body.code ?? res.status}: ${body.detail ?? res.statusText}`);
    return 1;
  }
  if (values.json) io.stdout(JSON.stringify(body, null, 2));
  else for (const line of formatPlan(body)) io.stdout(line);
  return body.changes.some((c) => c.change === 'invalid') ? 1 : 0;
}
