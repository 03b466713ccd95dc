/**
 * Every PromQL expression shipped in deploy/: the Grafana dashboard's panel targets and variable
 * queries, and the alert rules. Grafana's own variables are replaced by what Grafana would send
 * (`$__rate_interval` -> `1m`, a multi-value variable's All -> `.*`), so the text that reaches
 * Prometheus is the text a dashboard would run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ROOT } from '../helpers/deps.ts';

export const DASHBOARD = path.join(ROOT, 'deploy/grafana/poseidon.json');
export const ALERTS = path.join(ROOT, 'deploy/prometheus/alerts.yml');
export const ALERT_TESTS = path.join(ROOT, 'deploy/prometheus/alerts.test.yml');

export interface Expression {
  /** Where it comes from (panel or rule name). */
  where: string;
  expr: string;
}

interface Panel {
  type: string;
  title: string;
  id: number;
  panels?: Panel[];
  datasource?: { uid?: string };
  targets?: { expr: string; datasource?: { uid?: string } }[];
  gridPos: { x: number; y: number; w: number; h: number };
}

export function dashboard(): { title: string; uid: string; panels: Panel[]; templating: { list: { name: string; type: string; query: unknown }[] } } {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8'));
}

/** Every panel, rows' nested panels included. */
export function allPanels(): Panel[] {
  return dashboard().panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Replaces Grafana's variables by what Grafana sends; any `$` left means an unknown variable. */
export function grafanaToPromql(expr: string): string {
  return expr
    .replaceAll(/\$__rate_interval|\$\{__rate_interval\}|\$__interval|\$\{__interval\}/g, '1m')
    .replaceAll(/\$__range|\$\{__range\}/g, '1h')
    .replaceAll(/\$\{?(challenge|worker|job)(:regex)?\}?/g, '.*');
}

export function dashboardExpressions(): Expression[] {
  const out: Expression[] = [];
  for (const p of allPanels()) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: grafanaToPromql(t.expr) });
  for (const v of dashboard().templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    // label_values(<selector>, <label>) is Grafana's, not PromQL: its selector is.
    const m = /^label_values\((.+),\s*[a-zA-Z_]+\)$/.exec(q);
    out.push({ where: `variable ${v.name}`, expr: grafanaToPromql(m ? (m[1] as string) : q) });
  }
  return out;
}

export function alertExpressions(): Expression[] {
  const doc = parse(readFileSync(ALERTS, 'utf8')) as { groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr).trim() })));
}

/** Metric names an expression refers to (Poseidon's and the process metrics), histogram suffixes removed. */
export function metricNames(expr: string): string[] {
  const names = expr.match(/\b(poseidon|process|nodejs)_[a-z0-9_]+\b/g) ?? [];
  return [...new Set(names.map((n) => n.replace(/_(bucket|sum|count)$/, '')))];
}
