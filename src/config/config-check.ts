/**
 * `poseidon config check [--config F] [--json] [--worker]`: the resolved configuration, every
 * variable with its value (secrets masked) and its source, exit 0; or every problem with its
 * file:line:col, exit 1. `--worker` checks as `poseidon worker` would (REDIS_URL required).
 * Nothing is generated or written.
 */
import { formatProblem } from './config-file.ts';
import { resolveConfig, type ResolvedEntry } from './resolve.ts';

export interface CheckIo {
  stdout(s: string): void;
  stderr(s: string): void;
  cwd: string;
  /** The environment to resolve against (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

const MASK = '********';

/**
 * A secret shown: URLs keep everything but their password (or token user name), other secrets
 * become a fixed mask, so neither the value nor its length is disclosed.
 */
export function maskSecret(name: string, value: string): string {
  if (name !== 'REDIS_URL' && name !== 'POSEIDON_GIT_URL') return MASK;
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@(.*)$/is.exec(value);
  if (!m) return value;
  const [, scheme, userinfo = '', rest] = m;
  const colon = userinfo.indexOf(':');
  return colon >= 0 ? `${scheme}${userinfo.slice(0, colon)}:${MASK}@${rest}` : `${scheme}${MASK}@${rest}`;
}

function shownValue(e: ResolvedEntry): string | undefined {
  if (e.value === undefined) return undefined;
  return e.secret && e.value !== '' ? maskSecret(e.name, e.value) : e.value;
}

/** Secrets `serve` generates (and keeps under the data dir) when no source sets them. */
const GENERATED: Record<string, string> = { POSEIDON_API_KEY: 'api-key', POSEIDON_FLAG_SECRET: 'flag-secret', POSEIDON_ACCESS_SECRET: 'access-secret' };

function sourceText(e: ResolvedEntry, file: string | undefined): string {
  if (e.source === 'unset' && GENERATED[e.name]) return `unset (serve uses <dataDir>/${GENERATED[e.name]}, generated once)`;
  return e.source === 'file' && e.line !== undefined ? `file ${file ?? ''}:${e.line}:${e.col ?? 1}` : e.source;
}

/** One line per variable: name, value (escaped, shortened), source. */
function table(entries: ResolvedEntry[], file: string | undefined): string {
  const width = Math.max(...entries.map((e) => e.name.length));
  return entries.map((e) => {
    let v = shownValue(e) ?? '-';
    if (v === '') v = '""';
    v = v.replace(/\r?\n/g, '\\n');
    if (v.length > 60) v = `${v.slice(0, 57)}...`;
    return `${e.name.padEnd(width)}  ${v.padEnd(40)}  ${sourceText(e, file)}`;
  }).join('\n');
}

/** Runs the command; the result is the exit code (0 valid, 1 problems, 2 usage). */
export function runConfigCheck(args: string[], io: CheckIo): number {
  let configFile: string | undefined;
  let json = false;
  let worker = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--json') json = true;
    else if (a === '--worker') worker = true;
    else if (a === '--config' && args[i + 1] !== undefined) configFile = args[++i];
    else if (a.startsWith('--config=')) configFile = a.slice('--config='.length);
    else {
      io.stderr(`config check: unknown option ${a}\nusage: poseidon config check [--config FILE] [--json] [--worker]`);
      return 2;
    }
  }
  const r = resolveConfig(io.env ?? process.env, io.cwd, { role: worker ? 'worker' : 'manager', ...(configFile === undefined ? {} : { configFile }) });
  const ok = r.problems.length === 0;
  if (json) {
    io.stdout(JSON.stringify({
      ok, file: r.file ?? null,
      entries: r.entries.map((e) => ({ name: e.name, value: shownValue(e) ?? null, source: e.source, ...(e.line === undefined ? {} : { line: e.line, col: e.col }) })),
      problems: r.problems.map((p) => ({ ...p, text: formatProblem(p) })), warnings: r.warnings,
    }, null, 2));
    return ok ? 0 : 1;
  }
  for (const w of r.warnings) io.stderr(`warning: ${w}`);
  if (!ok) {
    io.stderr(`configuration file: ${r.file ?? 'none'}\n${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}:`);
    for (const p of r.problems) io.stderr(`  ${formatProblem(p)}`);
    return 1;
  }
  io.stdout(`configuration file: ${r.file ?? 'none'}\n${table(r.entries, r.file)}`);
  return 0;
}
