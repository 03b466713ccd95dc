/**
 * The catalog plan: what applying a revision would do, against what runs now. Pure; the
 * catalog layer turns specs into comparable fields and counts live instances.
 */
import type { SpecIssue } from './challenge.ts';
import { DEFAULT_UPDATE_POLICY, type UpdatePolicy } from './rollout.ts';

/** One challenge as the plan compares it: its version hash and each field as canonical JSON. */
export interface PlanSide {
  id: string;
  hash: string;
  policy: UpdatePolicy;
  file: string;
  /** Field name -> canonical JSON of its value (the build as its Dockerfile and content hash). */
  fields: Record<string, string>;
}

export interface PlanInput {
  /** Revision served now (undefined before the first sync). */
  from?: string;
  /** Revision planned. */
  to: string;
  /** Current good versions of challenges taking launches. */
  current: readonly PlanSide[];
  /** Valid challenges of the planned revision. */
  next: readonly PlanSide[];
  /** Invalid files of the planned revision, with the challenge id when known. */
  invalid: readonly { id?: string; file: string; issues: SpecIssue[] }[];
  /** Challenge id -> spec hashes of its live instances. */
  live: Readonly<Record<string, readonly string[]>>;
}

export type ChangeKind = 'added' | 'changed' | 'removed' | 'invalid';

export interface PlanChange {
  id?: string;
  change: ChangeKind;
  file: string;
  /** Fields that differ (changed). */
  fields?: string[];
  from?: string;
  to?: string;
  policy?: UpdatePolicy;
  /** Live instances the change touches (those not already on the planned version). */
  instances?: number;
  /** What happens to them, in words. */
  effect?: string;
  /** Issues of an invalid file. */
  errors?: SpecIssue[];
  /** Version still served while the file is invalid. */
  keeps?: string;
}

export interface Plan {
  from?: string;
  to: string;
  changes: PlanChange[];
  unchanged: number;
}

const ORDER: Record<ChangeKind, number> = { changed: 0, added: 1, removed: 2, invalid: 3 };

/** Builds the plan; changes are ordered changed, added, removed, invalid, then by id or file. */
export function planCatalog(input: PlanInput): Plan {
  const current = new Map(input.current.map((s) => [s.id, s]));
  const next = new Map(input.next.map((s) => [s.id, s]));
  const invalidIds = new Set(input.invalid.map((f) => f.id).filter((id): id is string => id !== undefined));
  const changes: PlanChange[] = [];
  let unchanged = 0;
  for (const n of next.values()) {
    const c = current.get(n.id);
    if (!c) changes.push({ id: n.id, change: 'added', file: n.file, to: n.hash, policy: n.policy });
    else if (c.hash !== n.hash || c.policy !== n.policy) changes.push(changed(c, n, input.live[n.id] ?? []));
    else unchanged++;
  }
  for (const c of current.values()) {
    if (!next.has(c.id) && !invalidIds.has(c.id)) changes.push(removed(c, input.live[c.id] ?? []));
  }
  for (const f of input.invalid) {
    const keeps = f.id === undefined ? undefined : current.get(f.id)?.hash;
    changes.push({ ...(f.id !== undefined ? { id: f.id } : {}), change: 'invalid', file: f.file, errors: f.issues, ...(keeps ? { keeps, effect: `keeps serving version ${keeps}` } : { effect: 'takes no launches' }) });
  }
  changes.sort((a, b) => ORDER[a.change] - ORDER[b.change] || (a.id ?? a.file).localeCompare(b.id ?? b.file));
  return { ...(input.from !== undefined ? { from: input.from } : {}), to: input.to, changes, unchanged };
}

function changed(c: PlanSide, n: PlanSide, live: readonly string[]): PlanChange {
  const names = [...new Set([...Object.keys(c.fields), ...Object.keys(n.fields)])].sort();
  const fields = names.filter((k) => c.fields[k] !== n.fields[k]);
  if (c.policy !== n.policy) fields.push('update');
  const instances = c.hash === n.hash ? 0 : live.filter((h) => h !== n.hash).length;
  return { id: n.id, change: 'changed', file: n.file, fields, from: c.hash, to: n.hash, policy: n.policy, instances, effect: changeEffect(n.policy, instances, c.hash === n.hash) };
}

function removed(c: PlanSide, live: readonly string[]): PlanChange {
  const instances = live.length;
  return { id: c.id, change: 'removed', file: c.file, from: c.hash, policy: c.policy, instances, effect: removeEffect(c.policy, instances) };
}

function count(n: number): string {
  return `${n} running instance${n === 1 ? '' : 's'}`;
}

/** What a version change does to `n` live instances under `policy`. */
export function changeEffect(policy: UpdatePolicy = DEFAULT_UPDATE_POLICY, n: number, policyOnly = false): string {
  if (policyOnly) return `update policy only; running instances now follow "${policy}"`;
  if (n === 0) return 'no running instances';
  if (policy === 'recreate') return `${count(n)}: replaced as soon as the new image is ready`;
  if (policy === 'on-renew') return `${count(n)}: moved at their next renew or restart`;
  return `${count(n)}: kept on their version until they expire (a restart moves them)`;
}

/** What removing a challenge does to `n` live instances under `policy` (renewals need a challenge in the catalog). */
export function removeEffect(policy: UpdatePolicy, n: number): string {
  const launches = 'no new launches';
  if (n === 0) return launches;
  if (policy === 'recreate') return `${launches}; ${count(n)}: stopped`;
  return `${launches}; ${count(n)}: kept on their version until they expire, without renewals`;
}
