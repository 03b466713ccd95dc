// The JSON API as the page calls it: same origin, the session cookie (sent by the browser), and
// on every non-GET request the session's CSRF token from the page's <meta>.

const CSRF = document.querySelector('meta[name="poseidon-csrf"]')?.getAttribute('content') ?? '';

/** An API answer that was not 2xx: `status`, the problem's `code` and `detail`. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail ? `${detail}${code ? ` (${code})` : ''}` : `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

const listeners = new Set();
/** Calls `fn()` whenever an answer says the session is gone (401). */
export function onSignedOut(fn) {
  listeners.add(fn);
}

/**
 * `method path [body]` -> parsed JSON (undefined for an empty answer). Throws ApiError for a
 * non-2xx answer (and tells the sign-out listeners about a 401).
 */
export async function api(method, path, body, { signal } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['x-poseidon-csrf'] = CSRF;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store', signal,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    if (res.status === 401) for (const fn of listeners) fn();
    throw new ApiError(res.status, data?.code, data?.detail);
  }
  return data;
}

/** Like `api('GET', path)` but answers `undefined` for a 404 (a route or record not there). */
export async function optional(path) {
  try {
    return await api('GET', path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}
