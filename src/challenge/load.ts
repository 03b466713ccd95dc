/**
 * Loading challenge files into `LoadResult`s: one file (`loadChallengeFile`) or a whole
 * challenges directory (`loadChallengeDir`, which also rejects ids used by several files).
 * Bad input never throws: every problem becomes an issue with a file, line and column.
 */
import { lstat, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { LoadResult, SpecIssue } from '../core/challenge.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import { checkBuildContext, isBuildValue, isInside } from './build-context.ts';
import { sortIssues, type RawIssue } from './issue.ts';
import { placeIssue, type Position } from './locate.ts';
import { buildSpec, normalizeSpec, type RawChallenge } from './normalize.ts';
import { parseDocument, readSource, type ParsedDocument } from './parse.ts';
import { checkRules } from './rules.ts';
import { checkShape } from './schema.ts';

/** `root`: the challenges directory (build contexts must stay inside it). `cwd`: base of relative paths. */
export interface LoadFileOptions {
  root: string;
  cwd?: string;
}

/** Where the `id` of a loaded file sits, kept to report duplicate ids across files. */
interface Loaded {
  result: LoadResult;
  idAt: Position;
}

const FILE_NAMES = ['challenge.yaml', 'challenge.yml'] as const;
/** Issues kept per file; a hostile 256 KiB file could otherwise yield tens of thousands. */
export const MAX_ISSUES_PER_FILE = 50;
/** Raw issues placed in the source at all (placing walks the AST, so bound the work). */
const PLACED_ISSUES_LIMIT = 4 * MAX_ISSUES_PER_FILE;
const ID_SHAPE = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

/**
 * Loads and validates one challenge file. `file` is reported as given; relative paths resolve
 * against `opts.cwd` (default: the process's cwd). Never rejects: problems are issues.
 */
export async function loadChallengeFile(file: string, opts: LoadFileOptions): Promise<LoadResult> {
  return (await loadOne(file, opts)).result;
}

/**
 * Loads every `<dir>/<name>/challenge.yaml` (or `.yml`), sorted by name, dot-directories skipped.
 * File paths in results are `dir` joined with the entry, so relative when `dir` is relative.
 * A broken file never hides the others; each file sharing an id with another gets an issue.
 * Throws `E_SPEC_INVALID` (terminal) only when `dir` itself cannot be listed.
 */
export async function loadChallengeDir(dir: string, opts: { cwd?: string } = {}): Promise<LoadResult[]> {
  const cwd = opts.cwd ?? process.cwd();
  const files = await findChallengeFiles(dir, cwd);
  const loaded = await Promise.all(
    files.map((f) => (f.conflict ? conflictResult(f.file) : loadOne(f.file, { root: dir, cwd }))),
  );
  return markDuplicateIds(loaded);
}

async function findChallengeFiles(dir: string, cwd: string): Promise<Array<{ file: string; conflict: boolean }>> {
  let entries;
  try {
    entries = await readdir(path.resolve(cwd, dir), { withFileTypes: true });
  } catch (err) {
    const code = String((err as { code?: unknown }).code ?? err);
    const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be read (${code})`;
    throw new PoseidonError(Codes.specInvalid, `challenges directory ${dir} ${why}`, {
      kind: 'terminal', cause: err, detail: { dir },
    });
  }
  const names = entries.map((e) => e.name).filter((n) => !n.startsWith('.')).sort(compareNames);
  const found: Array<{ file: string; conflict: boolean }> = [];
  for (const name of names) {
    const present = await Promise.all(FILE_NAMES.map((f) => exists(path.resolve(cwd, dir, name, f))));
    FILE_NAMES.forEach((f, i) => {
      if (present[i]) found.push({ file: path.join(dir, name, f), conflict: i > 0 && present[0] === true });
    });
  }
  return found;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

function conflictResult(file: string): Loaded {
  const message = `${path.basename(path.dirname(file))}/ also has a challenge.yaml; keep only one challenge file`;
  return { result: { ok: false, file, issues: [{ file, line: 0, column: 0, path: '', message }] }, idAt: { line: 0, column: 0 } };
}

async function loadOne(file: string, opts: LoadFileOptions): Promise<Loaded> {
  const cwd = opts.cwd ?? process.cwd();
  const abs = path.resolve(cwd, file);
  const root = path.resolve(cwd, opts.root);
  const fail = (message: string): Loaded => failed(file, [{ file, line: 0, column: 0, path: '', message }]);
  try {
    const escape = await outsideRoot(abs, root);
    if (escape !== undefined) return fail(escape);
    const read = await readSource(file, abs);
    if (!read.ok) return failed(file, read.issues);
    const parsed = parseDocument(file, read.text);
    if (!parsed.ok) return failed(file, capIssues(parsed.issues));
    return await checkDocument(file, abs, root, parsed);
  } catch (err) {
    // Only an unforeseen filesystem race or a bug lands here; still one file, one result.
    return fail(`could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function failed(file: string, issues: SpecIssue[]): Loaded {
  return { result: { ok: false, file, issues }, idAt: { line: 0, column: 0 } };
}

async function outsideRoot(abs: string, root: string): Promise<string | undefined> {
  let realFile: string;
  let realRoot: string;
  try {
    [realFile, realRoot] = await Promise.all([realpath(abs), realpath(root)]);
  } catch {
    return undefined; // reading the file reports what is missing
  }
  if (isInside(realRoot, realFile)) return undefined;
  return `resolves to ${realFile}, outside the challenges directory ${realRoot}`;
}

async function checkDocument(file: string, abs: string, root: string, parsed: ParsedDocument & { ok: true }): Promise<Loaded> {
  const { doc, lineCounter, data } = parsed;
  const place = (issue: RawIssue): SpecIssue => placeIssue(file, doc, lineCounter, issue);
  const { line, column } = place({ path: ['id'], message: '' });
  const raw = [...checkShape(data), ...checkRules(data)];
  if (isBuildValue(data.build)) {
    raw.push(...(await checkBuildContext(buildSpec(data.build, path.dirname(abs)), data.build, root)));
  }
  if (raw.length === 0) {
    return { result: { ok: true, file, spec: normalizeSpec(data as unknown as RawChallenge, abs) }, idAt: { line, column } };
  }
  const id = typeof data.id === 'string' && ID_SHAPE.test(data.id) ? data.id : undefined;
  const issues = capIssues(sortIssues(raw.slice(0, PLACED_ISSUES_LIMIT).map(place)), raw.length);
  return { result: { ok: false, file, ...(id !== undefined && { id }), issues }, idAt: { line, column } };
}

/** Keeps the first `MAX_ISSUES_PER_FILE` issues; `total` counts issues found, placed or not. */
function capIssues(issues: SpecIssue[], total = issues.length): SpecIssue[] {
  if (total <= MAX_ISSUES_PER_FILE) return issues;
  const [first] = issues;
  const more = { file: first?.file ?? '', line: 0, column: 0, path: '', message: `${total - MAX_ISSUES_PER_FILE} more issues not shown` };
  return [...issues.slice(0, MAX_ISSUES_PER_FILE), more];
}

function idOf(result: LoadResult): string | undefined {
  return result.ok ? result.spec.id : result.id;
}

/** Turns every result whose id is shared with another file into a failure naming the others. */
function markDuplicateIds(loaded: readonly Loaded[]): LoadResult[] {
  const byId = new Map<string, string[]>();
  for (const { result } of loaded) {
    const id = idOf(result);
    if (id !== undefined) byId.set(id, [...(byId.get(id) ?? []), result.file]);
  }
  return loaded.map(({ result, idAt }) => {
    const id = idOf(result);
    const files = id === undefined ? [] : (byId.get(id) ?? []);
    if (id === undefined || files.length < 2) return result;
    const others = files.filter((f) => f !== result.file).join(', ');
    const issue: SpecIssue = { file: result.file, ...idAt, path: 'id', message: `duplicate id "${id}" (also in ${others})` };
    const issues = result.ok ? [issue] : sortIssues([...result.issues, issue]);
    return { ok: false, file: result.file, id, issues };
  });
}
