// The status page's entry point: the sign-in form, or the signed-in page (navigation by the
// address's #fragment, the live data, a one-second tick for relative times and due reads).
import { api, ApiError, onSignedOut } from './api.js';
import { duration, relative } from './dom.js';
import { changed, connect, onChange, poll, signedOut, state } from './live.js';
import { renderCatalog } from './view-catalog.js';
import { leaveInstance, renderInstance } from './view-instance.js';
import { renderInstances, setInstanceFilters, unmountInstances } from './view-instances.js';
import { renderAudit, renderIncidents } from './view-lists.js';
import { renderOverview } from './view-overview.js';
import { renderWorkers } from './view-workers.js';

/** What each view draws from (names passed to `changed`). */
const VIEWS = {
  overview: { draw: renderOverview, uses: ['instances', 'workers', 'catalog', 'summary', 'incidents'] },
  workers: { draw: renderWorkers, uses: ['workers'] },
  instances: { draw: renderInstances, uses: ['instances'] },
  catalog: { draw: renderCatalog, uses: ['catalog', 'plan'] },
  incidents: { draw: renderIncidents, uses: ['incidents'] },
  audit: { draw: renderAudit, uses: ['audit'] },
};
let current = { view: 'overview', id: undefined };

function parseHash() {
  const raw = decodeURIComponent(location.hash.slice(1));
  const [pathPart, query = ''] = raw.split('?');
  const [view, id] = pathPart.split('/');
  return { view: VIEWS[view] ? view : 'overview', id: view === 'instances' && id ? id : undefined, params: new URLSearchParams(query) };
}

function body(view) {
  return document.querySelector(`[data-body="${view}"]`);
}

function draw() {
  const { view, id } = current;
  if (view === 'instances' && id) {
    unmountInstances();
    renderInstance(body(view), id);
  } else VIEWS[view].draw(body(view));
}

function navigate(focus) {
  const next = parseHash();
  if (next.view === 'instances' && !next.id) setInstanceFilters(next.params);
  if (next.id !== current.id) leaveInstance();
  current = next;
  for (const section of document.querySelectorAll('section.view')) section.hidden = section.dataset.view !== next.view;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === next.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${document.querySelector(`[data-nav="${next.view}"]`)?.textContent ?? 'Status'} · Poseidon status`;
  draw();
  poll(next.view);
  if (focus) document.getElementById(`h-${next.view}`)?.focus();
}

function showConnection() {
  const el = document.getElementById('conn');
  el.dataset.state = state.conn;
  el.replaceChildren();
  if (state.conn === 'signed-out') {
    const a = document.createElement('a');
    a.href = '/status';
    a.textContent = 'Sign in again';
    el.append('Your session has ended. ', a);
  } else el.textContent = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting… (the page catches up when the stream is back)' }[state.conn];
}

const SESSION_ENDS = Date.parse(document.querySelector('meta[name="poseidon-session-expires"]')?.getAttribute('content') ?? '');

/** Relative times and heartbeat ages tick without a redraw (and without moving focus). */
function tick() {
  const now = Date.now();
  // The session ends at a known time: say so then, rather than at the next refused read.
  if (now >= SESSION_ENDS && state.conn !== 'signed-out') signedOut();
  for (const el of document.querySelectorAll('section.view:not([hidden]) [data-exp]')) el.textContent = relative(el.dataset.exp, now);
  for (const el of document.querySelectorAll('section.view:not([hidden]) [data-age]')) {
    el.textContent = duration(Number(el.dataset.age) + now - Number(el.dataset.ageBase));
  }
  poll(current.view);
}

function startStatus() {
  onSignedOut(signedOut);
  onChange((what) => {
    if (what.has('conn')) showConnection();
    const uses = current.view === 'instances' && current.id ? ['instances'] : VIEWS[current.view].uses;
    if (uses.some((u) => what.has(u))) draw();
  });
  document.getElementById('logout').addEventListener('click', async () => {
    await api('POST', '/status/logout').catch(() => undefined);
    location.assign('/status');
  });
  window.addEventListener('hashchange', () => navigate(true));
  document.addEventListener('visibilitychange', () => poll(current.view));
  navigate(false); // reads what the view needs, the instance list included
  connect();
  setInterval(tick, 1000);
  changed('conn');
}

function startLogin() {
  const form = document.getElementById('login');
  const error = document.getElementById('login-error');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = form.elements.key.value.trim();
    error.textContent = '';
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await api('POST', '/status/login', { key });
      form.elements.key.value = '';
      location.reload();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? 'That key is not valid.' : `Sign-in failed: ${err.message}`;
      form.elements.key.focus();
    } finally {
      button.disabled = false;
    }
  });
}

if (document.body.dataset.page === 'login') startLogin();
else startStatus();
