/**
 * The configuration file (`poseidon.yaml`): which one is read, and its keys turned into
 * environment-form values. The keys ARE the environment variable names, so the file is merged
 * under the environment and validated by the one schema, and every name (README table, errors,
 * `config check`) is the same wherever a setting comes from.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Node } from 'yaml';
import { ALL_NAMES, ENV_NAMES, isListName, isSecretName } from './variables.ts';

/** A configuration problem; `file`, `line`, `col` when it comes from the config file. */
export interface ConfigProblem {
  /** The variable it is about (absent for a file-wide problem such as malformed YAML). */
  variable?: string;
  message: string;
  file?: string;
  line?: number;
  col?: number;
}

/** A parsed config file: environment-form values with the position of each. */
export interface ConfigFile {
  /** Absolute path. */
  path: string;
  values: Record<string, string>;
  positions: Record<string, { line: number; col: number }>;
  problems: ConfigProblem[];
  /** Not fatal: a file holding secrets that every user can read. */
  warnings: string[];
}

/** Default file, read from the working directory when present. */
export const DEFAULT_CONFIG_FILE = 'poseidon.yaml';

/**
 * The file to read: `flag` (`--config`), else POSEIDON_CONFIG, else `./poseidon.yaml` when it
 * exists; undefined: none (configuration from the environment alone, as before the file).
 */
export function locateConfigFile(env: NodeJS.ProcessEnv, cwd: string, flag?: string): string | undefined {
  const named = flag ?? (env.POSEIDON_CONFIG === '' ? undefined : env.POSEIDON_CONFIG);
  if (named !== undefined) return path.resolve(cwd, named);
  const fallback = path.resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(fallback) ? fallback : undefined;
}

/** Levenshtein distance (small strings only: key names). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The known name an unknown key most likely meant: a field name, a missing prefix, or a typo. */
export function suggestName(key: string): string | undefined {
  const byField = Object.entries(ENV_NAMES).find(([, field]) => field.toLowerCase() === key.toLowerCase());
  if (byField) return byField[0];
  const upper = key.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
  let best: string | undefined;
  let bestD = Infinity;
  for (const name of ALL_NAMES) {
    const d = Math.min(distance(upper, name), distance(`POSEIDON_${upper}`, name));
    if (d < bestD) { best = name; bestD = d; }
  }
  return bestD <= Math.max(2, Math.floor(upper.length / 5)) ? best : undefined;
}

/** A YAML value in environment form: a string, or a problem (never quoting the value). */
function envForm(name: string, value: unknown): string | null | { problem: string } {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    if (!isListName(name)) return { problem: 'takes one value, not a list' };
    const items = value as unknown[];
    if (items.some((v) => typeof v !== 'string' && typeof v !== 'number')) return { problem: 'list items must be strings or numbers' };
    if (items.some((v) => String(v).includes(','))) return { problem: 'a list item cannot contain a comma' };
    return items.map(String).join(',');
  }
  return { problem: typeof value === 'object' && !(value instanceof Date) ? 'must be a value, not a mapping' : 'must be a string, number or boolean' };
}

/** Reads and parses `file`; problems name the file and line:col, and never echo a value. */
export function readConfigFile(file: string): ConfigFile {
  const out: ConfigFile = { path: file, values: {}, positions: {}, problems: [], warnings: [] };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    out.problems.push({ file, message: `cannot read the config file (${(err as { code?: string }).code ?? 'unreadable'})` });
    return out;
  }
  const lines = new LineCounter();
  // prettyErrors off: the pretty message quotes the offending line, which may hold a secret.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): { line: number; col: number } => lines.linePos(offset ?? 0);
  for (const e of doc.errors) out.problems.push({ file, ...at(e.pos[0]), message: `malformed YAML: ${e.message} (${e.code})` });
  if (out.problems.length) return out;
  if (doc.contents === null) return out;
  if (!isMap(doc.contents)) {
    out.problems.push({ file, ...at(doc.contents.range?.[0]), message: 'the file must be a mapping of VARIABLE: value' });
    return out;
  }
  const js = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
  for (const pair of doc.contents.items) {
    const keyPos = at((pair.key as Node | null)?.range?.[0]);
    const name = isScalar(pair.key) ? String(pair.key.value) : undefined;
    if (name === undefined) { out.problems.push({ file, ...keyPos, message: 'keys must be variable names' }); continue; }
    if (!ALL_NAMES.includes(name)) {
      const hint = suggestName(name);
      out.problems.push({ file, ...keyPos, variable: name, message: `unknown key${hint ? ` (did you mean ${hint}?)` : ''}` });
      continue;
    }
    const node = pair.value as Node | null;
    const pos = node?.range ? at(node.range[0]) : keyPos;
    const v = envForm(name, js[name]);
    if (v !== null && typeof v === 'object') { out.problems.push({ file, ...pos, variable: name, message: v.problem }); continue; }
    out.positions[name] = pos;
    if (v !== null) out.values[name] = v;
  }
  const warning = exposedSecrets(file, out.values);
  if (warning) out.warnings.push(warning);
  return out;
}

/**
 * A warning when the file holds secrets and every user can read it. A warning, not a refusal:
 * Kubernetes secret volumes and Docker secrets mount 0644/0444 by default, protected by the
 * mount itself, and refusing would make the file unusable there. Group-readable (0640, a
 * service group) is a deliberate setup and passes.
 */
function exposedSecrets(file: string, values: Record<string, string>): string | undefined {
  const secrets = Object.keys(values).filter(isSecretName);
  const mode = statSync(file).mode;
  if (!secrets.length || (mode & 0o004) === 0) return undefined;
  return `${file} holds secrets (${secrets.join(', ')}) and every user on this host can read it (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 it`;
}

/** `file:line:col: VARIABLE: message`, leaving out what is not known. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.file ? `${p.file}${p.line ? `:${p.line}:${p.col ?? 1}` : ''}: ` : '';
  return `${where}${p.variable ? `${p.variable}: ` : ''}${p.message}`;
}
