// Instances: filters (team, challenge, state, worker), a page of 100 rows at a time (5,000
// instances stay fast: only one page is ever in the DOM), and a detail view per instance.
import { h, relative, replace, statusCell, table } from './dom.js';
import { state } from './live.js';
import { STATES } from './view-overview.js';

export const PAGE_SIZE = 100;
const filters = { team: '', challenge: '', state: '', worker: '' };
let page = 0;
let ui;

/** Sets the filters from the address (`#instances?state=running&team=red`). */
export function setInstanceFilters(params) {
  for (const k of Object.keys(filters)) filters[k] = params.get(k) ?? '';
  page = 0;
  if (ui) for (const k of Object.keys(filters)) ui.fields[k].value = filters[k];
}

function matches(i) {
  return (!filters.team || (i.team ?? '').toLowerCase().includes(filters.team.toLowerCase()) || (i.user ?? '').toLowerCase().includes(filters.team.toLowerCase()))
    && (!filters.challenge || i.challenge === filters.challenge)
    && (!filters.state || i.status === filters.state)
    && (!filters.worker || (filters.worker === '-' ? !i.worker : i.worker === filters.worker));
}

function field(name, label, control) {
  return h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), control);
}

function select(name, options) {
  return h('select', { id: `f-${name}`, name, 'data-filter': name }, h('option', { value: '' }, 'any'), options.map((o) => h('option', { value: o }, o)));
}

/** Keeps a select's options equal to `values` (plus "any"), keeping the selection. */
function syncOptions(sel, values, extra = []) {
  const want = ['', ...extra.map((e) => e[0]), ...values];
  const have = [...sel.options].map((o) => o.value);
  if (want.length === have.length && want.every((v, i) => v === have[i])) return;
  const keep = sel.value;
  sel.replaceChildren(h('option', { value: '' }, 'any'), extra.map(([v, t]) => h('option', { value: v }, t)), values.map((v) => h('option', { value: v }, v)));
  sel.value = want.includes(keep) ? keep : '';
}

function mount(body) {
  let timer;
  const team = h('input', { id: 'f-team', name: 'team', type: 'search', 'data-filter': 'team', placeholder: 'team or user', autocomplete: 'off' });
  const fields = { team, challenge: select('challenge', []), state: select('state', STATES), worker: select('worker', []) };
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter instances', onsubmit: (e) => e.preventDefault() },
    field('team', 'Team', team), field('challenge', 'Challenge', fields.challenge), field('state', 'State', fields.state), field('worker', 'Worker', fields.worker));
  const onChange = (name, delay) => () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      filters[name] = fields[name].value.trim();
      page = 0;
      draw();
    }, delay);
  };
  team.addEventListener('input', onChange('team', 120));
  for (const k of ['challenge', 'state', 'worker']) fields[k].addEventListener('change', onChange(k, 0));
  const count = h('p', { class: 'count', role: 'status', 'aria-live': 'polite', id: 'instances-count' });
  const rows = h('div', { id: 'instances-table' });
  const prev = h('button', { type: 'button', 'data-page': 'prev', onclick: () => { page--; draw(); } }, 'Previous');
  const next = h('button', { type: 'button', 'data-page': 'next', onclick: () => { page++; draw(); } }, 'Next');
  const where = h('span', { class: 'muted' });
  ui = { form, fields, count, rows, prev, next, where };
  for (const k of Object.keys(filters)) fields[k].value = filters[k];
  replace(body, form, count, rows, h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, ' ', where, ' ', next));
}

function row(i) {
  return h('tr', { 'data-id': i.id, 'data-status': i.status },
    h('th', { scope: 'row' }, h('a', { href: `#instances/${i.id}`, 'data-key': `i-${i.id}` }, h('code', {}, i.id.slice(0, 8)))),
    h('td', { 'data-col': 'owner' }, i.team, i.user ? h('span', { class: 'muted' }, ` / ${i.user}`) : null),
    h('td', { 'data-col': 'challenge' }, i.challenge),
    h('td', { 'data-col': 'status' }, statusCell(i)),
    h('td', { 'data-col': 'generation' }, i.generation ?? '…'),
    h('td', { 'data-col': 'worker' }, i.worker ?? '—'),
    h('td', { 'data-col': 'expires', 'data-exp': live(i) ? i.expiresAt : undefined }, live(i) ? relative(i.expiresAt) : '—'));
}

function live(i) {
  return i.status !== 'stopped' && i.status !== 'failed';
}

function newestFirst(a, b) {
  return a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0;
}

/** Redraws the counts, filter options, the current page and the pager. */
function draw() {
  if (!ui) return;
  const all = [...state.instances.values()];
  syncOptions(ui.fields.challenge, [...new Set(all.map((i) => i.challenge))].sort());
  syncOptions(ui.fields.worker, [...new Set(all.map((i) => i.worker).filter(Boolean))].sort(), [['-', 'not placed']]);
  const shown = all.filter(matches).sort(newestFirst);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  page = Math.min(Math.max(0, page), pages - 1);
  const slice = shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  ui.count.textContent = !state.instancesLoaded ? (state.instancesError ? `Could not read the instances: ${state.instancesError.message}` : 'Loading…')
    : `${shown.length.toLocaleString()} of ${all.length.toLocaleString()} instances${shown.length > PAGE_SIZE ? `, ${page * PAGE_SIZE + 1}–${page * PAGE_SIZE + slice.length} shown` : ''}`;
  ui.count.dataset.shown = String(shown.length);
  replace(ui.rows, slice.length === 0 ? h('p', { class: 'muted' }, state.instancesLoaded ? 'No instance matches.' : '')
    : table('Instances, newest first', ['Id', 'Owner', 'Challenge', 'Status', 'Gen.', 'Worker', 'Expires'], slice.map(row), { class: 'instances' }));
  ui.where.textContent = `Page ${page + 1} of ${pages}`;
  ui.prev.disabled = page === 0;
  ui.next.disabled = page >= pages - 1;
}

/** Draws the list into `body` (mounting the filters once). */
export function renderInstances(body) {
  if (!ui || !body.contains(ui.form)) mount(body);
  draw();
}

/** Forgets the mounted list (the detail view replaced it). */
export function unmountInstances() {
  ui = undefined;
}
