// Workers: state, heartbeat age, slots and what is reserved, instances, images ready, runtimes,
// labels, launch settings in effect; cordon, uncordon and drain (admins, after a confirmation);
// launch settings (admins, in their own dialog).
import { duration, failed, h, replace, table } from './dom.js';
import { state } from './live.js';
import { act, actionButton, CAN_ACT, perform, showDialog } from './ui.js';

const VERBS = {
  cordon: { question: (id) => `Cordon worker ${id}? It takes no new instances; those running stay.`, done: 'cordoned' },
  uncordon: { question: (id) => `Uncordon worker ${id}? It takes new instances again.`, done: 'uncordoned' },
  drain: { question: (id) => `Drain worker ${id}? Every instance on it is moved elsewhere (a new container each), then it stays cordoned.`, done: 'draining' },
};

const LAUNCH_FIELDS = ['networkPool', 'launchConcurrency'];

/**
 * The launch settings dialog for `w`, filled with what an admin set (empty: the worker's own,
 * shown as the placeholder when it reports it). Apply sets the fields given; "The worker's own"
 * clears the override. The dialog is outside the table, so a refresh does not wipe what is typed.
 */
async function editLaunch(w) {
  const dialog = document.getElementById('launch-settings');
  document.getElementById('launch-worker').textContent = w.id;
  const inputs = LAUNCH_FIELDS.map((f) => dialog.querySelector(`input[name="${f}"]`));
  inputs.forEach((input, i) => {
    const field = LAUNCH_FIELDS[i];
    input.value = w.launchOverride?.[field] ?? '';
    input.placeholder = w.launch ? String(w.launch[field]) : '';
  });
  const choice = await showDialog(dialog, inputs[0]);
  if (choice !== 'apply' && choice !== 'reset') return;
  const body = {};
  if (choice === 'apply') inputs.forEach((input, i) => { if (input.value !== '') body[LAUNCH_FIELDS[i]] = Number(input.value); });
  const what = Object.entries(body).map(([k, v]) => `${k} ${v}`).join(', ') || 'the worker\'s own';
  await perform({
    label: 'Launch settings', method: 'PUT', path: `/v1/workers/${encodeURIComponent(w.id)}/launch-settings`, body,
    done: `Worker ${w.id}: launch settings ${what}, in effect at its next heartbeat.`, refresh: ['workers'],
  });
}

function actions(w) {
  const verbs = w.admin === 'active' ? ['cordon', 'drain'] : w.admin === 'cordoned' ? ['uncordon', 'drain'] : ['uncordon'];
  const launch = w.launch ? [actionButton('Launch settings', { 'data-action': 'launch', 'data-key': `w-${w.id}-launch` }, () => void editLaunch(w))] : [];
  return [...launch, ...verbs.map((verb) => actionButton(verb[0].toUpperCase() + verb.slice(1), { 'data-action': verb, 'data-key': `w-${w.id}-${verb}`, class: verb === 'drain' ? 'danger' : '' }, () => {
    void act({
      question: VERBS[verb].question(w.id), label: verb[0].toUpperCase() + verb.slice(1), method: 'POST',
      path: `/v1/workers/${encodeURIComponent(w.id)}/${verb}`, done: `Worker ${w.id} ${VERBS[verb].done}.`, refresh: ['workers'],
    });
  }))];
}

function images(w) {
  const all = Object.values(w.images ?? {});
  const ready = all.filter((i) => i.state === 'present').length;
  const bad = all.filter((i) => i.state === 'failed');
  return h('span', { title: Object.entries(w.images ?? {}).map(([ref, i]) => `${ref}: ${i.state}${i.error ? ` (${i.error})` : ''}`).join('\n') },
    `${ready} of ${all.length}`, bad.length ? h('span', { class: 'bad' }, ` (${bad.length} failed)`) : null);
}

function gib(bytes) {
  if (!bytes) return '0';
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/**
 * The network pool (with how many of its networks are ready) and launch concurrency in effect,
 * marked when an admin overrode them.
 */
function launch(w) {
  if (!w.launch) return '—';
  const overridden = Object.keys(w.launchOverride ?? {});
  const pool = w.launch.networkPool > 0 ? `pool ${w.launch.networkPool} (${w.networkPoolReady ?? '?'} ready)` : 'pool 0';
  return h('span', { 'data-col': 'launch', title: overridden.length ? `set by an admin: ${overridden.join(', ')} (PUT /v1/workers/:id/launch-settings)` : 'the worker\'s configuration' },
    `${pool}, ${w.launch.launchConcurrency} at once`, overridden.length ? h('div', { class: 'warn' }, 'overridden') : null);
}

function row(w) {
  const age = w.heartbeatAgeMs ?? NaN;
  return h('tr', { 'data-worker': w.id, 'data-state': w.state },
    h('th', { scope: 'row' }, h('code', {}, w.id), h('div', { class: 'small muted' }, w.address ?? '')),
    h('td', {}, h('span', { class: `pill w-${w.state}`, 'data-col': 'state' }, w.state), w.admin !== 'active' && w.state === 'lost' ? h('div', { class: 'small' }, `admin: ${w.admin}`) : null),
    h('td', { 'data-age': String(age), 'data-age-base': String(state.workersAt) }, duration(age)),
    h('td', {}, `${w.reserved?.slots ?? 0} / ${w.slots}`, h('div', { class: 'small muted' }, `cpu ${(w.reserved?.cpu ?? 0).toFixed(2)} / ${w.capacity?.cpu ?? '—'}, mem ${gib(w.reserved?.memoryBytes)} / ${gib(w.capacity?.memoryBytes)}`)),
    h('td', {}, String(w.instances ?? 0)),
    h('td', {}, images(w)),
    h('td', {}, (w.runtimes ?? []).join(', ') || '—'),
    h('td', { class: 'small' }, launch(w)),
    h('td', { class: 'small' }, Object.entries(w.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—', w.version ? h('div', { class: 'muted' }, `v${w.version}`) : null),
    CAN_ACT ? h('td', { class: 'row-actions' }, actions(w)) : null);
}

/** Draws the workers view into `body`. */
export function renderWorkers(body) {
  const ws = state.workers;
  if (!ws) return replace(body, state.workersError ? failed('the workers', state.workersError) : h('p', { class: 'muted' }, 'Loading…'));
  replace(body,
    state.workersError ? failed('the workers (showing the last answer)', state.workersError) : null,
    ws.length === 0 ? h('p', {}, 'No worker has registered.') : table('Workers', ['Worker', 'State', 'Heartbeat age', 'Slots reserved', 'Instances', 'Images ready', 'Runtimes', 'Launches', 'Labels', ...(CAN_ACT ? ['Actions'] : [])],
      ws.map(row), { class: 'workers' }));
}
