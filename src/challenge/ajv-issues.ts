/**
 * Turns ajv errors into `RawIssue`s with messages a challenge author can act on: unknown keys are
 * named (with a "did you mean"), missing keys point at their mapping, and the noise of `oneOf`
 * branches that could never apply is dropped.
 */
import type { ErrorObject } from 'ajv';
import type { RawIssue } from './issue.ts';

type Json = Record<string, unknown>;

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
};

/** Patterns longer than this are replaced by the schema's description in messages. */
const MAX_PATTERN_IN_MESSAGE = 60;

/**
 * Maps the errors of one ajv run over `data` (validated against `schema`) to issues, at most one
 * per path and message. Never throws for errors of a schema it compiled.
 */
export function ajvErrorsToIssues(errors: readonly ErrorObject[], data: unknown, schema: Json): RawIssue[] {
  const kept = pruneCombinators(errors, data, schema);
  const issues: RawIssue[] = [];
  const seen = new Set<string>();
  const unknownKeys = new Set<string>();
  for (const e of kept) {
    if (e.keyword === 'additionalProperties') unknownKeys.add(`${e.instancePath}/${String(e.params.additionalProperty)}`);
  }
  for (const e of kept) {
    if (e.propertyName !== undefined && unknownKeys.has(`${e.instancePath}/${e.propertyName}`)) continue;
    const issue = toIssue(e, data, schema);
    if (issue === undefined) continue;
    const key = `${issue.path.join('.')}\0${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function toIssue(e: ErrorObject, data: unknown, schema: Json): RawIssue | undefined {
  const at = pointerSegments(e.instancePath);
  switch (e.keyword) {
    case 'if':
    case 'propertyNames':
      return undefined; // the `then` / per-name errors say what is wrong
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty);
      const allowed = Object.keys(asJson(asJson(schemaAt(schema, parentPointer(e.schemaPath))).properties));
      return { path: [...at, key], message: `unknown key "${key}"${suggestion(key, allowed)}` };
    }
    case 'required': {
      const key = String(e.params.missingProperty);
      return { path: [...at, key], message: `required key "${key}" is missing`, anchor: 'parent' };
    }
  }
  if (e.propertyName !== undefined) return { path: [...at, e.propertyName], message: keyMessage(e) };
  const value = valueAt(data, at);
  // env values may be secrets: name their type, never their content.
  return { path: at, message: valueMessage(e, at[0] === 'env' ? new Redacted(value) : value, schema) };
}

function keyMessage(e: ErrorObject): string {
  const key = JSON.stringify(e.propertyName);
  if (e.keyword === 'enum') {
    const allowed = (e.params.allowedValues as unknown[]).map(String).join(', ');
    return `key ${key} is not allowed here (allowed: ${allowed})`;
  }
  if (e.keyword === 'pattern') return `key ${key} must match ${String(e.params.pattern)}`;
  return `key ${key} ${e.message ?? 'is invalid'}`;
}

function valueMessage(e: ErrorObject, value: unknown, schema: Json): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type':
      return typeMessage(String(p.type), value);
    case 'pattern':
      return patternMessage(String(p.pattern), asJson(schemaAt(schema, parentPointer(e.schemaPath))));
    case 'enum':
      return `must be one of: ${(p.allowedValues as unknown[]).map(String).join(', ')} (got ${describe(value)})`;
    case 'oneOf':
    case 'anyOf':
      return combinatorMessage(asJson(schemaAt(schema, parentPointer(e.schemaPath))), value);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `must be ${String(p.comparison)} ${String(p.limit)} (got ${describe(value)})`;
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters`;
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters`;
    case 'minItems':
      return `must have at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}`;
    case 'maxItems':
      return `must have at most ${String(p.limit)} items`;
    case 'maxProperties':
      return `must have at most ${String(p.limit)} keys`;
    default:
      return e.message ?? 'is invalid';
  }
}

function typeMessage(type: string, value: unknown): string {
  const expected = type.split(',').map((t) => TYPE_NAMES[t] ?? t).join(' or ');
  const raw = value instanceof Redacted ? value.value : value;
  const quote = type === 'string' && (typeof raw === 'number' || typeof raw === 'boolean');
  return `must be ${expected}, got ${describe(value)}${quote ? '; put the value in quotes' : ''}`;
}

function patternMessage(pattern: string, node: Json): string {
  if (pattern.length > MAX_PATTERN_IN_MESSAGE && typeof node.description === 'string') {
    return `must be ${node.description}`;
  }
  return `must match ${pattern}`;
}

function combinatorMessage(node: Json, value: unknown): string {
  const what = typeof node.description === 'string' ? node.description : 'valid';
  return `must be ${what}, got ${describe(value)}`;
}

/** A value whose content must not appear in messages. */
class Redacted {
  constructor(readonly value: unknown) {}
}

/** A short description of a YAML value for messages (never its full content). */
function describe(value: unknown): string {
  if (value instanceof Redacted) return value.value === null ? 'nothing' : `a ${typeof value.value}`;
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return value.length <= 40 ? JSON.stringify(value) : 'a long string';
  return `${typeof value} ${String(value)}`;
}

/**
 * For each failed `oneOf`/`anyOf`: when exactly one branch has the value's JSON type, only that
 * branch's errors are kept (the others failed on `type` at the same path, which is noise); else
 * the branches' `type` errors are dropped and the combinator's own error (described) is kept.
 * Relies on every branch declaring a distinct `type` (a schema test checks it).
 */
function pruneCombinators(errors: readonly ErrorObject[], data: unknown, schema: Json): ErrorObject[] {
  let kept = [...errors];
  for (const c of errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf')) {
    const branches = schemaAt(schema, c.schemaPath);
    const value = valueAt(data, pointerSegments(c.instancePath));
    const matching = Array.isArray(branches) ? branches.filter((b) => typeMatches(branchType(b, schema), value)) : [];
    const hasBranchErrors = kept.some((e) => e !== c && e.keyword !== 'type' && isAtOrBelow(e.instancePath, c.instancePath));
    kept = kept.filter((e) => !(e.keyword === 'type' && e.instancePath === c.instancePath));
    if (matching.length === 1 && hasBranchErrors) kept = kept.filter((e) => e !== c);
  }
  return kept;
}

function branchType(branch: unknown, schema: Json): unknown {
  const { $ref, type } = asJson(branch);
  return typeof $ref === 'string' ? asJson(schemaAt(schema, $ref)).type : type;
}

function isAtOrBelow(path: string, base: string): boolean {
  return path === base || path.startsWith(`${base}/`);
}

function typeMatches(type: unknown, value: unknown): boolean {
  switch (type) {
    case 'integer': return Number.isInteger(value);
    case 'number': return typeof value === 'number';
    case 'string': return typeof value === 'string';
    case 'boolean': return typeof value === 'boolean';
    case 'array': return Array.isArray(value);
    case 'object': return value !== null && typeof value === 'object' && !Array.isArray(value);
    default: return true;
  }
}

function suggestion(key: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    // A suggestion shares most of the key: "foo" is not a typo of "pool".
    if (d < bestDistance && d * 2 < key.length) [best, bestDistance] = [candidate, d];
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 99;
}

/** `/expose/0/port` -> ['expose', '0', 'port'] (JSON pointer unescaping). */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '' || pointer === '#') return [];
  return pointer
    .replace(/^#?\//, '')
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentPointer(pointer: string): string {
  return pointer.slice(0, pointer.lastIndexOf('/'));
}

function schemaAt(schema: Json, pointer: string): unknown {
  let node: unknown = schema;
  for (const seg of pointerSegments(pointer)) node = (node as Record<string, unknown> | undefined)?.[seg];
  return node;
}

function valueAt(data: unknown, path: readonly string[]): unknown {
  let node: unknown = data;
  for (const seg of path) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, seg)) return undefined;
    node = (node as Record<string, unknown>)[seg];
  }
  return node;
}

function asJson(v: unknown): Json {
  return v !== null && typeof v === 'object' ? (v as Json) : {};
}
