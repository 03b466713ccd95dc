// Overview: instances by state, the activity figures of `/v1/status/summary` ("—" until that
// route answers), workers by state, the catalog's revision and last sync, the orphan breaker.
import { countBy, facts, h, relative, replace, short, when } from './dom.js';
import { state } from './live.js';

export const STATES = ['queued', 'pending', 'starting', 'running', 'stopping', 'failed', 'stopped'];
const WORKER_STATES = ['ready', 'cordoned', 'draining', 'lost'];

/** Figures of the summary, each under the names it may carry (first found wins). */
const FIGURES = [
  ['Launches per minute', ['launchesPerMinute', 'launches.perMinute', 'launchesPerMin']],
  ['Stops per minute', ['stopsPerMinute', 'stops.perMinute', 'stopsPerMin']],
  ['Launch p50 (15 min)', ['launchP50Seconds', 'launch.p50Seconds', 'launchSeconds.p50', 'launch.p50', 'launchP50Ms', 'launch.p50Ms']],
  ['Launch p95 (15 min)', ['launchP95Seconds', 'launch.p95Seconds', 'launchSeconds.p95', 'launch.p95', 'launchP95Ms', 'launch.p95Ms']],
  ['Queue length', ['queueLength', 'queue.length', 'queue.size']],
  ['Oldest queue wait', ['oldestQueueWaitSeconds', 'queue.oldestWaitSeconds', 'queueOldestWaitSeconds', 'queue.oldestWaitMs', 'oldestQueueWaitMs']],
  ['Reconcile errors (15 min)', ['reconcileErrors', 'reconcileErrors15m', 'reconcile.errors', 'reconcileErrors.total']],
];

function at(obj, path) {
  return path.split('.').reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
}

/** A summary number for display: durations by their unit suffix, rates with one decimal. */
export function figure(key, v) {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '—';
  if (typeof v !== 'number') return typeof v === 'object' ? JSON.stringify(v) : String(v);
  const seconds = /Ms$/i.test(key) ? v / 1000 : /Seconds$/i.test(key) || /p\d\d$/i.test(key) ? v : undefined;
  if (seconds === undefined) return Number.isInteger(v) ? v.toLocaleString() : v.toFixed(1);
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

function summaryFacts() {
  const s = state.summary;
  const pairs = FIGURES.map(([label, keys]) => {
    const key = s ? keys.find((k) => at(s, k) !== undefined) : undefined;
    return [label, h('span', { 'data-figure': label }, key ? figure(key, at(s, key)) : '—')];
  });
  const note = s === null ? 'Figures appear here once the server offers /v1/status/summary.'
    : state.summaryError ? `Summary unavailable: ${state.summaryError.message}` : s === undefined ? 'Loading…' : `As of ${when(s.at ?? s.generatedAt)}`;
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
  const ws = state.workers ?? [];
  const reported = ws.filter((w) => 'breaker' in w);
  if (reported.length === 0) {
    return card('Orphan breaker', h('p', { class: 'muted' }, 'Not reported by the API (/v1/workers has no breaker field); a worker that trips it logs "orphan circuit breaker tripped".'));
  }
  const tripped = reported.filter((w) => w.breaker);
  return card('Orphan breaker', tripped.length === 0 ? h('p', { class: 'ok' }, 'Not tripped on any worker.')
    : h('ul', {}, tripped.map((w) => h('li', { class: 'bad' }, `${w.id}: ${w.breaker.orphans} of ${w.breaker.managed} containers without a record (${relative(new Date(w.breaker.at).toISOString())})`))));
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
