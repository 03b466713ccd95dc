/**
 * Glue between the catalog and the pure planner (`core/catalog-plan.ts`): turns current versions
 * and a loaded snapshot into comparable sides, and formats a plan for people.
 */
import type { ChallengeSpec } from '../core/challenge.ts';
import { planCatalog, type Plan, type PlanSide } from '../core/catalog-plan.ts';
import { formatIssue } from '../challenge/issue.ts';
import type { Catalog } from './catalog.ts';
import { canonical, shapingFields } from './hash.ts';
import type { LoadedSnapshot } from './load-snapshot.ts';
import { DEFAULT_UPDATE_POLICY } from '../core/rollout.ts';

/** Challenge id -> spec hashes of its live instances. */
export type LiveInstances = () => Promise<Record<string, string[]>>;

/** A plan plus whether the planned revision rewrites the served history. */
export type CatalogPlan = Plan & { rewrite?: boolean };

/** The plan of `loaded` against what `catalog` serves and `live` runs. */
export function planFor(catalog: Catalog, loaded: LoadedSnapshot, live: Record<string, string[]>, rewrite = false): CatalogPlan {
  const invalid = loaded.invalid.map((f) => {
    const id = f.id ?? catalog.challenges().find((r) => r.file === f.file)?.id;
    return { ...(id !== undefined ? { id } : {}), file: f.file, issues: f.issues };
  });
  const plan = planCatalog({
    ...(catalog.revision ? { from: catalog.revision } : {}),
    to: loaded.revision,
    current: catalog.list().map((e) => side(e.spec, e.hash, e.image, e.file)),
    next: loaded.candidates.map((c) => side(c.spec, c.hash, c.image, c.file)),
    invalid,
    live,
  });
  return rewrite ? { ...plan, rewrite } : plan;
}

function side(spec: ChallengeSpec, hash: string, image: string, file: string): PlanSide {
  // A build is identified by its image tag (derived from the context content and Dockerfile).
  const shaped = shapingFields(spec, image);
  const fields = Object.fromEntries(Object.entries(shaped).filter(([, v]) => v !== undefined).map(([k, v]) => [k, canonical(v)]));
  if (spec.pull !== undefined) fields.pull = canonical(spec.pull);
  return { id: spec.id, hash, policy: spec.update ?? DEFAULT_UPDATE_POLICY, file, fields };
}

/** The plan as text lines, changes first (`~` changed, `+` added, `-` removed, `!` invalid). */
export function formatPlan(plan: CatalogPlan): string[] {
  const mark = { changed: '~', added: '+', removed: '-', invalid: '!' } as const;
  const lines = [`plan ${plan.from ? plan.from.slice(0, 12) : '(nothing served)'} -> ${plan.to.slice(0, 12)}${plan.rewrite ? ' (history rewritten: needs POST /v1/sync {"force": true})' : ''}`];
  for (const c of plan.changes) {
    const what = c.fields?.length ? ` [${c.fields.join(', ')}]` : '';
    const policy = c.policy && c.change !== 'added' ? ` (update: ${c.policy})` : '';
    lines.push(`${mark[c.change]} ${c.id ?? c.file} ${c.change}${what}${policy}${c.effect ? `: ${c.effect}` : ''}`);
    for (const issue of c.errors ?? []) lines.push(`    ${formatIssue(issue)}`);
  }
  const counts = (['changed', 'added', 'removed', 'invalid'] as const).map((k) => `${plan.changes.filter((c) => c.change === k).length} ${k}`);
  lines.push(`${counts.join(', ')}, ${plan.unchanged} unchanged`);
  return lines;
}
