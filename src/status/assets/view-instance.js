// One instance: its record (as `GET /v1/instances/:id` answers: no flag, no secret, no token
// is ever in it), the events this page has seen for it, and stop and restart (admins).
import { facts, h, reasonParts, relative, replace, statusCell, table, when } from './dom.js';
import { loadInstance, state } from './live.js';
import { act, actionButton } from './ui.js';

/** Never drawn, whatever a future API adds to the record. */
const HIDDEN = /flag|secret|token|key|seal|password/i;
const SHOWN = new Set(['id', 'challenge', 'team', 'user', 'status', 'desired', 'reason', 'hostname', 'generation', 'renewals', 'worker', 'createdAt', 'expiresAt', 'maxExpiresAt', 'queue', 'endpoints']);
let loadedFor;
let loadError;

function endpoints(inst) {
  if (!inst.endpoints?.length) return '—';
  return h('ul', { class: 'plain' }, inst.endpoints.map((e) => h('li', {},
    h('b', {}, e.name), ` ${e.protocol ?? ''} `, e.url ? h('code', {}, e.url) : null,
    e.published ? h('span', { class: 'muted' }, ` (published ${e.published.host}:${e.published.port})`) : null)));
}

function record(inst) {
  const { code, message } = reasonParts(inst);
  const pairs = [
    ['Id', h('code', {}, inst.id)],
    ['Owner', inst.user ? `${inst.team} / ${inst.user}` : inst.team],
    ['Challenge', inst.challenge],
    ['Status', statusCell(inst)],
    ['Reason', code || message ? [code ? h('code', {}, code) : null, message ? ` ${message}` : null] : '—'],
    ['Desired', inst.desired ?? '—'],
    ['Generation', String(inst.generation ?? '…')],
    ['Renewals', String(inst.renewals ?? '…')],
    ['Worker', inst.worker ?? '—'],
    ['Hostname', inst.hostname ? h('code', {}, inst.hostname) : '—'],
    ['Endpoints', endpoints(inst)],
    ['Created', when(inst.createdAt)],
    ['Expires', inst.expiresAt ? h('span', {}, `${when(inst.expiresAt)} (`, h('span', { 'data-exp': inst.expiresAt }, relative(inst.expiresAt)), ')') : '—'],
    ['Lifetime ends', when(inst.maxExpiresAt)],
  ];
  if (inst.queue) pairs.push(['Queue', `position ${inst.queue.position}${inst.queue.estimatedStartAt ? `, start about ${when(inst.queue.estimatedStartAt)}` : ''}`]);
  for (const [k, v] of Object.entries(inst)) {
    if (!SHOWN.has(k) && !HIDDEN.test(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) pairs.push([k, String(v)]);
  }
  return facts(pairs, { 'data-record': inst.id });
}

function timeline(inst) {
  const seen = state.timeline.get(inst.id) ?? [];
  const rows = [
    ...(inst.createdAt ? [{ at: inst.createdAt, type: 'created', status: '', reason: '' }] : []),
    ...seen,
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return [
    h('p', { class: 'muted small' }, 'Events seen by this page since it opened (status changes, restarts, expiry warnings, failures with reasons), oldest first.'),
    table(`Events of ${inst.id}`, ['When', 'Event', 'Status', 'Reason'], rows.map((e) => h('tr', { 'data-event': e.type },
      h('td', {}, when(e.at)), h('td', {}, e.type), h('td', {}, e.status ? statusCell(e) : '—'),
      h('td', {}, e.position ? `queue position ${e.position}` : e.reason ?? '')))),
  ];
}

function buttons(inst) {
  const over = inst.status === 'stopped' || inst.status === 'failed';
  const path = `/v1/instances/${encodeURIComponent(inst.id)}`;
  return h('p', { class: 'row-actions' },
    over ? null : actionButton('Stop', { 'data-action': 'stop', class: 'danger', 'data-key': 'stop' }, () => void act({
      question: `Stop instance ${inst.id} (${inst.team}, ${inst.challenge})? Its container is removed.`, label: 'Stop', method: 'DELETE', path, done: `Instance ${inst.id} is stopping.`,
    }).then((r) => r && loadInstance(inst.id))),
    over ? null : actionButton('Restart', { 'data-action': 'restart', 'data-key': 'restart' }, () => void act({
      question: `Restart instance ${inst.id}? It gets a fresh container (next generation), same hostname and expiry.`, label: 'Restart', method: 'POST', path: `${path}/restart`, done: `Instance ${inst.id} is restarting.`,
    }).then((r) => r && loadInstance(inst.id))));
}

/** Draws instance `id` into `body`; reads it fresh once per visit. */
export function renderInstance(body, id) {
  if (loadedFor !== id) {
    loadedFor = id;
    loadError = undefined;
    loadInstance(id).catch((err) => { loadError = err; });
  }
  const inst = state.instances.get(id);
  const back = h('p', {}, h('a', { href: '#instances' }, '← All instances'));
  if (!inst) return replace(body, back, h('p', { class: loadError ? 'error' : 'muted' }, loadError ? `Could not read instance ${id}: ${loadError.message}` : state.instancesLoaded ? `Instance ${id} is not known.` : 'Loading…'));
  replace(body, back, h('h3', {}, `Instance `, h('code', {}, inst.id)), buttons(inst), record(inst), h('h3', {}, 'Timeline'), ...timeline(inst));
}

/** Forgets which instance was read (the next visit reads it again). */
export function leaveInstance() {
  loadedFor = undefined;
}
