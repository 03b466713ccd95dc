// The page's data and how it stays current. Instances follow the SSE stream `GET /v1/events`:
// each event updates the row at once and marks the instance for one re-read (events carry no
// worker or generation); a (re)connected stream re-reads the whole list, so a reconnect resumes
// from the truth. Workers, catalog, summary, incidents and the audit ring have no event stream:
// they are re-read on a slow timer, only for the view on screen and only while the tab is visible.
import { api, ApiError, optional } from './api.js';

export const EVENT_TYPES = ['status', 'queue', 'expiring', 'expired', 'failed'];
const TIMELINE_MAX = 50;
const TIMELINE_IDS = 5000;
/** A burst this large re-reads the list instead of each instance. */
const BURST = 20;
const FULL_EVERY_MS = 5000;
/** Where the activity summary is, when the server has it (the shell says so). */
const SUMMARY = document.querySelector('meta[name="poseidon-summary"]')?.getAttribute('content');

export const state = {
  /** id -> the instance (as `GET /v1/instances` shows it). */
  instances: new Map(),
  instancesLoaded: false,
  instancesError: undefined,
  /** id -> events seen since the page opened, oldest first. */
  timeline: new Map(),
  /** 'connecting' | 'live' | 'reconnecting' | 'signed-out' */
  conn: 'connecting',
  workers: undefined, workersAt: 0, workersError: undefined,
  catalog: undefined, catalogError: undefined,
  plan: undefined, planError: undefined,
  /** The summary (`/v1/status/summary`), or null while that route is not there. */
  summary: undefined, summaryError: undefined,
  incidents: undefined, incidentsError: undefined,
  audit: undefined, auditError: undefined, auditScope: undefined,
};

const listeners = new Set();
let pending = new Set();
let scheduled = false;
/** Calls `fn(whatChanged: Set)` after changes, at most once per animation frame. */
export function onChange(fn) {
  listeners.add(fn);
}
export function changed(what) {
  pending.add(what);
  if (scheduled) return;
  scheduled = true;
  const run = () => {
    scheduled = false;
    const what = pending;
    pending = new Set();
    for (const fn of listeners) fn(what);
  };
  if (document.visibilityState === 'visible') requestAnimationFrame(run);
  else setTimeout(run, 250);
}

// Events and reads race: a read that started before an instance's latest event must not undo
// what the event said. Each event gets a number; a read keeps the event's fields when newer.
let seq = 0;
const lastEvent = new Map();

function merge(view, startedAt) {
  const old = state.instances.get(view.id);
  if (old && (lastEvent.get(view.id) ?? 0) > startedAt) {
    state.instances.set(view.id, { ...view, status: old.status, reason: old.reason, expiresAt: old.expiresAt, queue: old.queue });
    markDirty(view.id);
  } else state.instances.set(view.id, view);
}

let lastFull = 0;
let fullInFlight;
/** Reads every instance (`GET /v1/instances`). */
export function loadInstances() {
  fullInFlight ??= (async () => {
    const startedAt = seq;
    lastFull = Date.now();
    try {
      const { instances } = await api('GET', '/v1/instances');
      const keep = new Set(instances.map((i) => i.id));
      for (const id of state.instances.keys()) if (!keep.has(id) && (lastEvent.get(id) ?? 0) <= startedAt) state.instances.delete(id);
      for (const v of instances) merge(v, startedAt);
      state.instancesLoaded = true;
      state.instancesError = undefined;
    } catch (err) {
      state.instancesError = err;
    } finally {
      fullInFlight = undefined;
      changed('instances');
    }
  })();
  return fullInFlight;
}

/** Reads one instance now (the detail view), keeping the list current. */
export async function loadInstance(id) {
  const startedAt = seq;
  try {
    merge(await api('GET', `/v1/instances/${encodeURIComponent(id)}`), startedAt);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
    state.instances.delete(id);
  }
  changed('instances');
}

const dirty = new Set();
let flushTimer;
function markDirty(id) {
  dirty.add(id);
  flushTimer ??= setTimeout(flush, 1000);
}

async function flush() {
  flushTimer = undefined;
  if (dirty.size > BURST) {
    const wait = lastFull + FULL_EVERY_MS - Date.now();
    if (wait > 0) {
      flushTimer = setTimeout(flush, wait);
      return;
    }
    dirty.clear();
    await loadInstances();
    return;
  }
  const ids = [...dirty];
  dirty.clear();
  await Promise.all(ids.map((id) => loadInstance(id).catch(() => undefined)));
}

function onEvent(type, e) {
  let ev;
  try {
    ev = JSON.parse(e.data);
  } catch {
    return;
  }
  const i = ev.instance;
  if (!i?.id) return;
  lastEvent.set(i.id, ++seq);
  const old = state.instances.get(i.id) ?? { id: i.id, createdAt: ev.at, generation: undefined };
  const next = { ...old, challenge: i.challenge, team: i.team, status: i.status, expiresAt: i.expiresAt };
  if (i.user !== undefined) next.user = i.user;
  if (i.reason !== undefined) next.reason = i.reason;
  else delete next.reason;
  if (i.queue) next.queue = i.queue;
  else if (i.status !== 'queued') delete next.queue;
  state.instances.set(i.id, next);
  addTimeline(i.id, { at: ev.at, type, status: i.status, reason: i.reason, position: i.queue?.position });
  markDirty(i.id);
  changed('instances');
}

function addTimeline(id, entry) {
  let list = state.timeline.get(id);
  if (!list) {
    if (state.timeline.size >= TIMELINE_IDS) state.timeline.delete(state.timeline.keys().next().value);
    list = [];
    state.timeline.set(id, list);
  }
  list.push(entry);
  if (list.length > TIMELINE_MAX) list.shift();
}

let source;
let retryMs = 1000;
let reopened = false;
/** Opens the event stream; a stream that closes is opened again with backoff (1 s to 30 s). */
export function connect() {
  source?.close();
  const es = new EventSource('/v1/events');
  source = es;
  es.onopen = () => {
    retryMs = 1000;
    state.conn = 'live';
    changed('conn');
    // What happened before the stream (re)opened came as no event: read the list again, unless
    // the first read is still on its way (then it is at least as new as the stream).
    if (state.instancesLoaded || reopened) void loadInstances();
    reopened = true;
  };
  es.onerror = () => {
    if (state.conn === 'signed-out') return es.close();
    state.conn = 'reconnecting';
    changed('conn');
    if (es.readyState !== EventSource.CLOSED) return;
    // Closed for good (the answer was not a stream: a 401 after the session ended, a restart):
    // ask once whether the session is still valid (a 401 signs the page out), then retry.
    void api('GET', '/status/audit').catch(() => undefined).finally(() => {
      if (state.conn === 'signed-out' || source !== es) return;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    });
  };
  for (const type of EVENT_TYPES) es.addEventListener(type, (e) => onEvent(type, e));
}

/** Stops everything after the session has ended. */
export function signedOut() {
  state.conn = 'signed-out';
  source?.close();
  changed('conn');
}

const loaders = {
  instances: () => loadInstances(),
  workers: async () => {
    state.workers = (await api('GET', '/v1/workers')).workers;
    state.workersAt = Date.now();
  },
  catalog: async () => { state.catalog = await api('GET', '/v1/catalog'); },
  plan: async () => { state.plan = await api('GET', '/v1/catalog/plan'); },
  summary: async () => { state.summary = SUMMARY ? (await optional(SUMMARY)) ?? null : null; },
  incidents: async () => { state.incidents = (await api('GET', '/v1/flags/incidents')).incidents; },
  audit: async () => { const a = await api('GET', '/status/audit'); state.audit = a.entries; state.auditScope = a.scope; },
};

/** What each view reads, and how often (ms) while it is on screen. */
// Instances come from the stream; the whole list is read again once a minute anyway, since
// events are prompts that can be lost (README, Events).
const POLL = {
  overview: { instances: 60_000, workers: 10_000, catalog: 15_000, summary: 15_000, incidents: 30_000 },
  workers: { instances: 60_000, workers: 10_000 },
  instances: { instances: 60_000, workers: 60_000 },
  catalog: { instances: 60_000, catalog: 15_000, plan: 60_000, workers: 60_000 },
  incidents: { instances: 60_000, incidents: 30_000 },
  audit: { instances: 60_000, audit: 15_000 },
};
const lastLoad = {};
const inFlight = {};

/** Reads `what` now (after an action, or on demand); errors are kept in `state[what + 'Error']`. */
export function reload(what) {
  inFlight[what] ??= loaders[what]().then(
    () => { state[`${what}Error`] = undefined; },
    (err) => { state[`${what}Error`] = err; },
  ).finally(() => {
    lastLoad[what] = Date.now();
    inFlight[what] = undefined;
    changed(what);
  });
  return inFlight[what];
}

/** Called every second and on navigation: reads what the view needs and is due. */
export function poll(view) {
  if (state.conn === 'signed-out' || document.visibilityState !== 'visible') return;
  for (const [what, every] of Object.entries(POLL[view] ?? {})) {
    if (!inFlight[what] && Date.now() - (lastLoad[what] ?? 0) >= every) void reload(what);
  }
}
