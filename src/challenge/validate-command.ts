/**
 * `poseidon validate [dir] [--json]`: what a challenge author runs locally and in CI.
 */
import { parseArgs } from 'node:util';
import type { LoadResult } from '../core/challenge.ts';
import { isPoseidonError } from '../core/errors.ts';
import { formatIssue } from './issue.ts';
import { loadChallengeDir } from './load.ts';

/** Output sinks and working directory of one CLI run (each `stdout`/`stderr` call is one line). */
export interface CommandIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
}

export const VALIDATE_USAGE = [
  'usage: poseidon validate [dir] [--json]',
  '',
  '  dir     challenges directory (default ./challenges); each <dir>/<name>/challenge.yaml is checked',
  '  --json  print {"ok", "challenges": [{file, id, valid, issues}]} instead of text',
].join('\n');

/**
 * Runs the command. Resolves to the exit code: 0 when at least one challenge was found and all
 * are valid, 1 when any is invalid, none was found or `dir` cannot be read, 2 on bad usage.
 * Never rejects for bad challenge files.
 */
export async function runValidate(args: string[], io: CommandIo): Promise<number> {
  const parsed = parseValidateArgs(args);
  if ('error' in parsed) {
    io.stderr(`poseidon validate: ${parsed.error}\n${VALIDATE_USAGE}`);
    return 2;
  }
  if (parsed.help) {
    io.stdout(VALIDATE_USAGE);
    return 0;
  }
  let results: LoadResult[];
  try {
    results = await loadChallengeDir(parsed.dir, { cwd: io.cwd });
  } catch (err) {
    if (!isPoseidonError(err)) throw err;
    io.stderr(`poseidon validate: ${err.message}`);
    if (parsed.json) io.stdout(JSON.stringify({ ok: false, error: err.message, challenges: [] }, null, 2));
    return 1;
  }
  const ok = results.length > 0 && results.every((r) => r.ok);
  if (parsed.json) io.stdout(JSON.stringify({ ok, challenges: results.map(toJson) }, null, 2));
  else printText(results, parsed.dir, io);
  return ok ? 0 : 1;
}

type ValidateArgs = { dir: string; json: boolean; help: boolean } | { error: string };

function parseValidateArgs(args: string[]): ValidateArgs {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
    if (positionals.length > 1) return { error: `expected at most one directory, got ${positionals.length}` };
    return { dir: positionals[0] ?? './challenges', json: values.json === true, help: values.help === true };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function printText(results: readonly LoadResult[], dir: string, io: CommandIo): void {
  for (const r of results) {
    if (r.ok) io.stdout(`ok ${r.spec.id} (${r.file})`);
    else for (const issue of r.issues) io.stdout(formatIssue(issue));
  }
  if (results.length === 0) {
    io.stdout(`0 challenges found in ${dir} (expected ${dir}/<name>/challenge.yaml)`);
    return;
  }
  const invalid = results.filter((r) => !r.ok).length;
  io.stdout(`${results.length} challenge${results.length === 1 ? '' : 's'}, ${invalid} invalid`);
}

function toJson(r: LoadResult): Record<string, unknown> {
  if (r.ok) return { file: r.file, id: r.spec.id, valid: true, issues: [] };
  return { file: r.file, id: r.id ?? null, valid: false, issues: r.issues };
}
