// Incidents (flag sharing, newest first) and the audit log (operator and admin actions seen by
// the shared trail on Redis, or this server process in memory; newest first).
import { failed, h, relative, replace, table, when } from './dom.js';
import { state } from './live.js';

/** Draws the incidents view into `body`. */
export function renderIncidents(body) {
  const list = state.incidents;
  if (!list) return replace(body, state.incidentsError ? failed('the incidents', state.incidentsError) : h('p', { class: 'muted' }, 'Loading…'));
  replace(body,
    state.incidentsError ? failed('the incidents (showing the last answer)', state.incidentsError) : null,
    h('p', { class: 'muted small' }, 'A team submitted a flag that belongs to another team\'s instance. Newest first; the flags themselves are never kept.'),
    list.length === 0 ? h('p', {}, 'No flag-sharing incident.') : table('Flag-sharing incidents, newest first', ['When', 'Challenge', 'Submitted by', 'Flag owner', 'Owner\'s instance'],
      list.map((i) => h('tr', { 'data-incident': i.at },
        h('td', {}, when(i.at), h('div', { class: 'small muted' }, relative(i.at))), h('td', {}, i.challenge), h('td', {}, i.submittedBy), h('td', {}, i.owner),
        h('td', {}, i.instance ? h('a', { href: `#instances/${i.instance}` }, h('code', {}, i.instance.slice(0, 8))) : '—'))), { class: 'incidents' }));
}

/** Draws the audit view into `body`. */
export function renderAudit(body) {
  const list = state.audit;
  if (!list) return replace(body, state.auditError ? failed('the audit log', state.auditError) : h('p', { class: 'muted' }, 'Loading…'));
  replace(body,
    state.auditError ? failed('the audit log (showing the last answer)', state.auditError) : null,
    h('p', { class: 'muted small' }, `The last 500 actions of operators and admins (through this page or with a key) ${state.auditScope === 'shared' ? 'on every Poseidon server of this deployment' : 'that reached this server process'}; every one is also a log line ("operator action").`),
    list.length === 0 ? h('p', {}, 'No action yet.') : table('Audit log, newest first', ['When', 'Who', 'Action', 'Target', 'Result'],
      list.map((e) => h('tr', { 'data-audit': e.action, 'data-result': e.result },
        h('td', {}, when(e.at)), h('td', {}, e.who, h('span', { class: 'muted' }, ` (${e.role}, ${e.via})`)), h('td', {}, e.action),
        h('td', {}, e.target ? h('code', {}, e.target) : '—'), h('td', {}, h('span', { class: e.result === 'ok' ? 'ok' : 'bad' }, `${e.result} (${e.status})`)))), { class: 'audit' }));
}
