/**
 * Rules the schema cannot express: image/build exclusivity, bounds of durations and sizes,
 * uniqueness, references between fields, flag settings. Pure and defensive: each rule looks only
 * at values whose shape is right, so it can run beside the schema and report everything at once.
 */
import type { RawIssue } from './issue.ts';
import {
  DISK_BOUNDS, durationSeconds, formatDuration, formatSize, MEMORY_BOUNDS, sizeBytes, TIMEOUT_BOUNDS, TMPFS_BOUNDS,
  TTL_BOUNDS, type Bounds,
} from './units.ts';

type Doc = Record<string, unknown>;
type Path = ReadonlyArray<string | number>;

/** Default values the rules need (the full set of defaults lives in `normalize.ts`). */
export const DEFAULT_TTL_SECONDS = 1800;
export const DEFAULT_MAX_TTL_SECONDS = 7200;
export const DEFAULT_FLAG_ENV = 'FLAG';

/** All cross-field and bounds problems of a document (whatever its schema validity); [] if none. */
export function checkRules(doc: Doc): RawIssue[] {
  return [
    ...sourceRule(doc),
    ...boundsRules(doc),
    ...ttlOrderRule(doc),
    ...uniqueExposeRule(doc),
    ...healthcheckPortRule(doc),
    ...leaseRule(doc),
    ...flagRules(doc),
  ];
}

function sourceRule(doc: Doc): RawIssue[] {
  const hasImage = Object.hasOwn(doc, 'image');
  const hasBuild = Object.hasOwn(doc, 'build');
  if (hasImage && hasBuild) return [{ path: ['build'], message: '"image" and "build" are mutually exclusive; keep one' }];
  if (!hasImage && !hasBuild) return [{ path: [], message: 'one of "image" or "build" is required' }];
  return [];
}

function boundsRules(doc: Doc): RawIssue[] {
  return [
    ...inBounds(['ttl', 'default'], durationSeconds(at(doc, ['ttl', 'default'])), TTL_BOUNDS, formatDuration),
    ...inBounds(['ttl', 'max'], durationSeconds(at(doc, ['ttl', 'max'])), TTL_BOUNDS, formatDuration),
    ...inBounds(['ttl', 'renewWindow'], durationSeconds(at(doc, ['ttl', 'renewWindow'])), TTL_BOUNDS, formatDuration),
    ...inBounds(['healthcheck', 'timeout'], durationSeconds(at(doc, ['healthcheck', 'timeout'])), TIMEOUT_BOUNDS, formatDuration),
    ...inBounds(['resources', 'memory'], sizeBytes(at(doc, ['resources', 'memory'])), MEMORY_BOUNDS, formatSize),
    ...inBounds(['filesystem', 'tmpfs'], sizeBytes(at(doc, ['filesystem', 'tmpfs'])), TMPFS_BOUNDS, formatSize),
    ...inBounds(['filesystem', 'size'], sizeBytes(at(doc, ['filesystem', 'size'])), DISK_BOUNDS, formatSize),
  ];
}

function inBounds(path: Path, value: number | undefined, bounds: Bounds, show: (n: number) => string): RawIssue[] {
  if (value === undefined) return [];
  if (value < bounds.min) return [{ path, message: `must be at least ${show(bounds.min)} (got ${show(value)})` }];
  if (value > bounds.max) return [{ path, message: `must be at most ${show(bounds.max)} (got ${show(value)})` }];
  return [];
}

function ttlOrderRule(doc: Doc): RawIssue[] {
  const given = at(doc, ['ttl', 'default']) !== undefined;
  const def = durationSeconds(at(doc, ['ttl', 'default'])) ?? (given ? undefined : DEFAULT_TTL_SECONDS);
  const maxGiven = at(doc, ['ttl', 'max']) !== undefined;
  const max = durationSeconds(at(doc, ['ttl', 'max'])) ?? (maxGiven ? undefined : DEFAULT_MAX_TTL_SECONDS);
  if (def === undefined || max === undefined || def <= max) return [];
  const defText = `${formatDuration(def)}${given ? '' : ', the default'}`;
  const maxText = `${formatDuration(max)}${maxGiven ? '' : ', the default'}`;
  return [{
    path: given ? ['ttl', 'default'] : ['ttl', 'max'],
    message: `ttl.default (${defText}) must not exceed ttl.max (${maxText})`,
  }];
}

function uniqueExposeRule(doc: Doc): RawIssue[] {
  const expose = doc.expose;
  if (!Array.isArray(expose)) return [];
  const issues: RawIssue[] = [];
  const firstName = new Map<unknown, number>();
  const firstPort = new Map<unknown, number>();
  for (const [i, item] of expose.entries()) {
    if (!isDoc(item)) continue;
    issues.push(...duplicateOf(firstName, item.name, ['expose', i, 'name'], 'port name'));
    issues.push(...duplicateOf(firstPort, item.port, ['expose', i, 'port'], 'port'));
  }
  return issues;
}

function duplicateOf(seen: Map<unknown, number>, value: unknown, path: Path, what: string): RawIssue[] {
  if (typeof value !== 'string' && typeof value !== 'number') return [];
  const first = seen.get(value);
  if (first === undefined) {
    seen.set(value, Number(path[1]));
    return [];
  }
  return [{ path, message: `duplicate ${what} ${JSON.stringify(value)} (also expose.${first}.${String(path[2])})` }];
}

/** A lease publishes a plain TCP port: meaningless for HTTP, which is always routed by hostname. */
function leaseRule(doc: Doc): RawIssue[] {
  if (!Array.isArray(doc.expose)) return [];
  return doc.expose.flatMap((p, i) => (isDoc(p) && p.lease === true && p.protocol !== 'tcp'
    ? [{ path: ['expose', i, 'lease'], message: 'only a tcp port can be leased (set protocol: tcp)' }]
    : []));
}

function healthcheckPortRule(doc: Doc): RawIssue[] {
  const port = at(doc, ['healthcheck', 'port']);
  if (typeof port !== 'string' || !Array.isArray(doc.expose)) return [];
  const names = [...new Set(doc.expose.filter(isDoc).map((p) => p.name).filter((n) => typeof n === 'string'))];
  if (names.includes(port)) return [];
  return [{ path: ['healthcheck', 'port'], message: `must name an exposed port (${names.join(', ')}), got "${port}"` }];
}

function flagRules(doc: Doc): RawIssue[] {
  const flag = isDoc(doc.flag) ? doc.flag : {};
  const issues: RawIssue[] = [];
  if (flag.env !== undefined && flag.file !== undefined) {
    issues.push({ path: ['flag', 'file'], message: '"flag.env" and "flag.file" are mutually exclusive; keep one' });
  }
  if (typeof flag.file === 'string') issues.push(...flagFileRule(flag.file));
  if (typeof flag.format === 'string') {
    const count = flag.format.split('%s').length - 1;
    if (count !== 1) issues.push({ path: ['flag', 'format'], message: `must contain "%s" exactly once (found ${count})` });
  }
  // A warm-pool member starts before anyone claims it: its flag can only arrive later, as a file.
  if (doc.pool !== undefined && typeof flag.file !== 'string') {
    issues.push({ path: ['pool'], message: 'a pooled challenge must take its flag as a file ("flag.file"): the flag is written at the claim, after the container started' });
  }
  return [...issues, ...flagEnvCollision(doc, flag)];
}

/** Kernel and engine-managed places a flag file must not be mounted over. */
const RESERVED_DIRS = ['/proc', '/sys', '/dev', '/run', '/var/run'];
const RESERVED_FILES = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];

/**
 * The flag file becomes a read-only bind mount, so its path must be one Docker takes as a mount
 * target: absolute and normalized, made of plain characters (a `:` or `,` would be read as mount
 * options, which used to leave the instance pending forever), and not in a kernel or
 * engine-managed place.
 */
function flagFileRule(file: string): RawIssue[] {
  const path = ['flag', 'file'];
  if (!file.startsWith('/')) return []; // the schema reports it
  if (file === '/') return [{ path, message: 'must be a file path, not "/"' }];
  if (file.endsWith('/')) return [{ path, message: 'must not end with "/"' }];
  const bad = /[^A-Za-z0-9._@+/-]/.exec(file);
  if (bad) return [{ path, message: `must use only letters, digits and . _ @ + - / (found ${JSON.stringify(bad[0])}; ":" and "," would be read as mount options)` }];
  const segments = file.slice(1).split('/');
  if (segments.some((s) => s === '..' || s === '.' || s === '')) {
    return [{ path, message: 'must be a normalized absolute path (no "..", "." or empty segments)' }];
  }
  const reserved = RESERVED_DIRS.find((d) => file === d || file.startsWith(`${d}/`)) ?? RESERVED_FILES.find((f) => f === file);
  if (reserved) return [{ path, message: `must not be in ${reserved} (managed by the kernel or the engine); use e.g. /flag.txt` }];
  return [];
}

function flagEnvCollision(doc: Doc, flag: Doc): RawIssue[] {
  const env = isDoc(doc.env) ? doc.env : {};
  const explicit = typeof flag.env === 'string';
  const name = explicit ? flag.env : flag.file === undefined ? DEFAULT_FLAG_ENV : undefined;
  if (typeof name !== 'string' || !Object.hasOwn(env, name)) return [];
  if (explicit) return [{ path: ['flag', 'env'], message: `"${name}" is also set in env; the flag needs a variable of its own` }];
  return [{
    path: ['env', name],
    message: `"${name}" receives the flag (flag.env defaults to ${DEFAULT_FLAG_ENV}); rename this variable or set flag.env`,
  }];
}

function at(doc: Doc, path: readonly string[]): unknown {
  let node: unknown = doc;
  for (const key of path) node = isDoc(node) && Object.hasOwn(node, key) ? node[key] : undefined;
  return node;
}

function isDoc(value: unknown): value is Doc {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
