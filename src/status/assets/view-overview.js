// Overview: instances by state, the activity figures of `/v1/status/summary` ("—" until that
// route answers), workers by state, the catalog's revision and last sync, the orphan breaker.
import { countBy, facts, h, relative, replace, short, when } from './dom.js';
import { state } from './live.js';

export const STATES = ['queued', 'pending', 'starting', 'running', 'stopping', 'failed', 'stopped'];
const WORKER_STATES = ['ready', 'cordoned', 'draining', 'lost'];

/** Seconds for display: "0.42 s", "37 s", "4.5 min"; a dash for none. */
export function seconds(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  if (v < 10) return `${v.toFixed(2)} s`;
  if (v < 120) return `${v.toFixed(0)} s`;
  return `${(v / 60).toFixed(1)} min`;
}

/** A per-minute series `{ total, perMinute }` as "1.3 / min (20 in 15 min)". */
function rate(series, windowSeconds) {
  if (!series || typeof series.total !== 'number') return '—';
  const minutes = Math.max(1, Math.round((windowSeconds ?? 900) / 60));
  return `${(series.total / minutes).toFixed(1)} / min (${series.total} in ${minutes} min)`;
}

function breakdown(obj) {
  const parts = Object.entries(obj ?? {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`);
  return parts.length ? ` — ${parts.join(', ')}` : '';
}

/**
 * The activity figures, from `GET /v1/status/summary` (durations in seconds over its window,
 * 15 minutes). Anything missing is a dash, so a change of that route degrades to dashes.
 */
const FIGURES = [
  ['Launches', (s) => rate(s.launches, s.windowSeconds)],
  ['Stops', (s) => rate(s.stops, s.windowSeconds)],
  ['Launch p50', (s) => seconds(s.launchDuration?.p50)],
  ['Launch p95', (s) => seconds(s.launchDuration?.p95)],
  ['Queue length', (s) => (typeof s.instances?.queued === 'number' ? String(s.instances.queued) : '—')],
  ['Oldest queue wait', (s) => (s.instances?.queued ? seconds(s.instances.oldestQueuedSeconds) : typeof s.instances?.queued === 'number' ? 'nobody waits' : '—')],
  ['Failures', (s) => (s.failures ? `${s.failures.total}${breakdown(s.failures.byReason)}` : '—')],
  ['Reconcile errors', (s) => (s.reconcileErrors ? `${s.reconcileErrors.total}${breakdown(s.reconcileErrors.byCode)}` : '—')],
];

function summaryFacts() {
  const s = state.summary;
  const pairs = FIGURES.map(([label, get]) => {
    let text = '—';
    try {
      if (s) text = get(s);
    } catch {
      text = '—';
    }
    return [label, h('span', { 'data-figure': label }, text)];
  });
  const minutes = Math.round((s?.windowSeconds ?? 900) / 60);
  const note = s === null ? 'Figures appear here once the server offers /v1/status/summary.'
    : state.summaryError ? `Summary unavailable: ${state.summaryError.message}` : s === undefined ? 'Loading…' : `Last ${minutes} minutes, as of ${when(s.at)}.`;
  return [facts(pairs), h('p', { class: 'muted small' }, note)];
}

function card(title, ...body) {
  return h('section', { class: 'card', 'aria-label': title }, h('h3', {}, title), ...body);
}

function instancesCard() {
  if (!state.instancesLoaded) return card('Instances', h('p', { class: 'muted' }, state.instancesError ? state.instancesError.message : 'Loading…'));
  const counts = countBy(state.instances.values(), (i) => i.status);
  const live = STATES.filter((s) => s !== 'stopped').reduce((n, s) => n + (counts.get(s) ?? 0), 0);
  return card('Instances',
    h('p', { class: 'big' }, h('span', { 'data-count': 'live' }, String(live)), ' live'),
    h('ul', { class: 'counts' }, STATES.map((s) => h('li', {},
      h('a', { href: `#instances?state=${s}`, 'data-key': `ov-${s}` }, h('span', { class: `pill s-${s}` }, s), ' ', h('b', { 'data-count': s }, String(counts.get(s) ?? 0)))))));
}

function workersCard() {
  const ws = state.workers;
  if (!ws) return card('Workers', h('p', { class: 'muted' }, state.workersError ? state.workersError.message : 'Loading…'));
  const counts = countBy(ws, (w) => w.state);
  const used = ws.reduce((n, w) => n + (w.reserved?.slots ?? 0), 0);
  const slots = ws.reduce((n, w) => n + (w.slots ?? 0), 0);
  return card('Workers',
    h('ul', { class: 'counts' }, WORKER_STATES.map((s) => h('li', {}, h('span', { class: `pill w-${s}` }, s), ' ', h('b', { 'data-workers': s }, String(counts.get(s) ?? 0))))),
    h('p', {}, `Slots reserved: ${used} of ${slots}`));
}

function catalogCard() {
  const c = state.catalog;
  if (!c) return card('Catalog', h('p', { class: 'muted' }, state.catalogError ? state.catalogError.message : 'Loading…'));
  const last = c.lastSync;
  const invalid = c.invalid.length + c.challenges.filter((x) => x.errors?.length).length;
  return card('Catalog', facts([
    ['Revision', short(c.revision)],
    ['Last sync', last ? h('span', { class: last.ok ? 'ok' : 'bad', 'data-sync': last.ok ? 'ok' : 'failed' }, last.ok ? `ok${last.unchanged ? ' (unchanged)' : ''}` : `failed: ${last.code ?? ''} ${last.error ?? ''}`) : '—'],
    ['When', last ? `${relative(last.at)} (${last.durationMs} ms)` : '—'],
    ['Challenges', `${c.challenges.length} (${c.challenges.filter((x) => x.state === 'ready').length} ready)`],
    ['Invalid files', String(invalid)],
  ]));
}

function breakerCard() {
  // The summary lists workers whose orphan breaker tripped; a worker record may carry it too.
  const fromSummary = Array.isArray(state.summary?.breakers) ? state.summary.breakers : undefined;
  const fromWorkers = (state.workers ?? []).filter((w) => w.breaker).map((w) => ({ worker: w.id, ...w.breaker }));
  const tripped = fromSummary ?? fromWorkers;
  if (!fromSummary && !(state.workers ?? []).some((w) => 'breaker' in w)) {
    return card('Orphan breaker', h('p', { class: 'muted' }, 'Not reported (no /v1/status/summary yet); a worker that trips it logs "orphan circuit breaker tripped".'));
  }
  return card('Orphan breaker', tripped.length === 0 ? h('p', { class: 'ok', 'data-breaker': 'clear' }, 'Not tripped on any worker.')
    : h('ul', { 'data-breaker': 'tripped' }, tripped.map((b) => h('li', { class: 'bad' },
      `${b.worker}: tripped, ${b.orphans} of ${b.managed} containers without a record; nothing is removed until an operator looks`,
      b.at ? ` (${relative(typeof b.at === 'number' ? new Date(b.at).toISOString() : b.at)})` : ''))));
}

function incidentsCard() {
  const list = state.incidents;
  if (!list) return card('Incidents', h('p', { class: 'muted' }, state.incidentsError ? state.incidentsError.message : 'Loading…'));
  const latest = list[0];
  return card('Incidents', h('p', {}, h('a', { href: '#incidents' }, `${list.length} flag-sharing incident${list.length === 1 ? '' : 's'}`)),
    latest ? h('p', { class: 'small' }, `Latest ${relative(latest.at)}: ${latest.submittedBy} submitted ${latest.owner}'s flag for ${latest.challenge}`) : null);
}

/** Draws the overview into `body`. */
export function renderOverview(body) {
  replace(body, h('div', { class: 'cards' },
    instancesCard(), card('Activity', ...summaryFacts()), workersCard(), catalogCard(), breakerCard(), incidentsCard()));
}
