// Catalog: the served revision and the last sync, each challenge's state and revision with its
// image per worker, the files that failed validation (file:line:col path: message), the plan of
// the next sync, and "Sync now" (admins).
import { facts, failed, h, relative, replace, short, table, when } from './dom.js';
import { reload, state } from './live.js';
import { act, actionButton } from './ui.js';

function issue(e) {
  return h('li', { class: 'issue' }, h('code', {}, `${e.file}:${e.line}:${e.column}`), ' ', e.path ? h('code', { class: 'muted' }, e.path) : null, e.path ? ': ' : '', e.message);
}

function syncFacts(c) {
  const last = c.lastSync;
  const src = c.source ?? {};
  return facts([
    ['Source', `${src.kind ?? '—'} ${src.url ?? src.path ?? ''}${src.branch ? ` (${src.branch})` : ''}`],
    ['Revision', short(c.revision, 16)],
    ['Synced', c.syncedAt ? `${when(c.syncedAt)} (${relative(c.syncedAt)})` : '—'],
    ['Last sync', last ? h('span', { class: last.ok ? 'ok' : 'bad', 'data-sync': last.ok ? 'ok' : 'failed' },
      last.ok ? `ok in ${last.durationMs} ms${last.unchanged ? ', unchanged' : ''}` : `failed (${last.code ?? 'error'}): ${last.error ?? ''}`, ` — ${relative(last.at)}`) : '—'],
    ['Failures in a row', String(c.failures ?? 0)],
    ['Syncing now', c.syncing ? 'yes' : 'no'],
    ['Next sync', c.nextSyncAt ? relative(c.nextSyncAt) : '—'],
  ], { 'data-catalog': 'sync' });
}

function readiness(c) {
  const ws = Object.entries(c.workers ?? {});
  if (ws.length === 0) return '—';
  return h('ul', { class: 'plain small' }, ws.map(([id, img]) => h('li', { title: img.error ?? '' },
    h('code', {}, id), ' ', h('span', { class: img.state === 'present' ? 'ok' : img.state === 'failed' ? 'bad' : 'muted' }, img.state === 'present' ? 'ready' : img.state))));
}

function challengeRow(c) {
  return h('tr', { 'data-challenge': c.id, 'data-state': c.state },
    h('th', { scope: 'row' }, c.id, c.name ? h('div', { class: 'small muted' }, c.name) : null),
    h('td', {}, h('span', { class: `pill c-${c.state}` }, c.state), c.launchable ? null : h('div', { class: 'small muted' }, 'not launchable')),
    h('td', {}, short(c.revision), c.hash ? h('div', { class: 'small muted' }, 'version ', short(c.hash, 10)) : null),
    h('td', {}, c.policy ?? '—'),
    h('td', {}, readiness(c)),
    h('td', {}, c.errors?.length ? h('ul', { class: 'issues' }, c.errors.map(issue)) : null, c.imageError ? h('pre', { class: 'small bad' }, c.imageError) : null));
}

function plan() {
  const p = state.plan;
  if (state.planError) return failed('the plan', state.planError);
  if (!p) return h('p', { class: 'muted' }, 'Loading…');
  const counts = { changed: 0, added: 0, removed: 0, invalid: 0 };
  for (const ch of p.changes) counts[ch.change]++;
  return h('div', { 'data-plan': p.to ?? '' },
    h('p', {}, 'From ', short(p.from), ' to ', short(p.to), `: ${counts.changed} changed, ${counts.added} added, ${counts.removed} removed, ${counts.invalid} invalid, ${p.unchanged} unchanged.`),
    p.changes.length === 0 ? h('p', { class: 'muted' }, 'The next sync changes nothing.') : h('ul', { class: 'plan' }, p.changes.map((ch) => h('li', { 'data-change': ch.change },
      h('span', { class: `pill p-${ch.change}` }, ch.change), ' ', h('b', {}, ch.id ?? ch.file),
      ch.fields?.length ? ` [${ch.fields.join(', ')}]` : '', ch.policy ? ` (update: ${ch.policy})` : '', ch.effect ? `: ${ch.effect}` : '',
      ch.keeps ? h('span', { class: 'muted' }, ' keeps serving ', short(ch.keeps, 10)) : null,
      ch.errors?.length ? h('ul', { class: 'issues' }, ch.errors.map(issue)) : null))));
}

function syncButton() {
  return actionButton('Sync now', { id: 'sync-now', 'data-key': 'sync-now' }, () => void act({
    question: 'Sync the catalog from its source now?', label: 'Sync', method: 'POST', path: '/v1/sync', body: { wait: false },
    done: 'Sync started.', refresh: ['catalog', 'plan'],
  }).then((r) => {
    // The sync runs on (wait: false); read the outcome when it has had time to finish.
    if (r) for (const ms of [1000, 3000, 8000]) setTimeout(() => { void reload('catalog'); void reload('plan'); }, ms);
  }));
}

/** Draws the catalog view into `body`. */
export function renderCatalog(body) {
  const c = state.catalog;
  if (!c) return replace(body, state.catalogError ? failed('the catalog', state.catalogError) : h('p', { class: 'muted' }, 'Loading…'));
  const bad = c.invalid ?? [];
  replace(body,
    state.catalogError ? failed('the catalog (showing the last answer)', state.catalogError) : null,
    h('div', { class: 'split' }, syncFacts(c), h('p', {}, syncButton())),
    h('h3', {}, 'Challenges'),
    c.challenges.length === 0 ? h('p', {}, 'No challenge.') : table('Challenges', ['Challenge', 'State', 'Revision', 'Update', 'Image per worker', 'Problems'], c.challenges.map(challengeRow), { class: 'catalog' }),
    h('h3', {}, 'Invalid files'),
    bad.length === 0 && !c.challenges.some((x) => x.errors?.length) ? h('p', { class: 'ok' }, 'Every file is valid.')
      : h('ul', { class: 'issues', id: 'invalid-files' }, [...bad.flatMap((f) => f.errors), ...c.challenges.flatMap((x) => x.errors ?? [])].map(issue)),
    h('h3', {}, 'Plan of the next sync'),
    plan());
}
