// Small DOM and formatting helpers. Everything is built with createElement and textContent:
// nothing from the API ever goes through innerHTML, so no text can become markup.

/**
 * Creates an element: `h('td', { class: 'x', 'data-id': id }, 'text', child)`. Attributes with
 * undefined/false values are skipped; `on*` function attributes become listeners.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function' && k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/**
 * Replaces `el`'s children with `children`, keeping keyboard focus on the element with the same
 * `data-key` when one had it (views redraw as data arrives; focus must not jump away).
 */
export function replace(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.getAttribute('data-key') : null;
  const frag = document.createDocumentFragment();
  append(frag, children);
  el.replaceChildren(frag);
  if (key) el.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/** A table with a caption (for screen readers), header row and body rows. */
export function table(caption, headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

/** A definition list from `[term, value]` pairs (values may be nodes). */
export function facts(pairs, attrs = {}) {
  return h('dl', { class: 'facts', ...attrs }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k }, v ?? '—')]));
}

/** "3 s", "4 m 10 s", "2 h 5 m", "3 d 4 h" for a duration in ms. */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${s % 60} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m % 60} m`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

/** "in 4 m 10 s" / "4 m 10 s ago" relative to now, for an ISO time. */
export function relative(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  return t >= now ? `in ${duration(t - now)}` : `${duration(now - t)} ago`;
}

/** Local date and time of an ISO string, or a dash. */
export function when(iso) {
  const t = Date.parse(iso ?? '');
  return Number.isFinite(t) ? new Date(t).toLocaleString() : '—';
}

/** A revision or hash, shortened for display (full value in the title). */
export function short(rev, n = 12) {
  if (!rev) return '—';
  return h('code', { title: rev }, rev.length > n ? rev.slice(0, n) : rev);
}

/**
 * An instance's reason split into its stable code and message: `E_WORKER_LOST: worker …` gives
 * `{ code: 'E_WORKER_LOST', message: 'worker …' }`; free text has no code.
 */
export function reasonParts(inst) {
  const reason = inst.reason ?? '';
  if (inst.reasonCode) return { code: inst.reasonCode, message: reason };
  const m = /^(E_[A-Z0-9_]+)(?::\s*|\s+|$)(.*)$/s.exec(reason);
  return m ? { code: m[1], message: m[2] } : { code: undefined, message: reason };
}

/** A status with its reason code (and the message as the title). */
export function statusCell(inst) {
  const { code, message } = reasonParts(inst);
  return h('span', { class: 'status' },
    h('span', { class: `pill s-${inst.status}` }, inst.status),
    code ? h('code', { class: 'code', title: message || code }, code) : null,
    !code && message ? h('span', { class: 'reason' }, message) : null);
}

/** Counts of `items` by `key(item)`, as a Map in first-seen order. */
export function countBy(items, key) {
  const out = new Map();
  for (const it of items) {
    const k = key(it);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

/** A message line that says data could not be read (`err`: an ApiError or Error). */
export function failed(what, err) {
  return h('p', { class: 'error', role: 'alert' }, `Could not read ${what}: ${err?.message ?? err}`);
}
