/**
 * The pages a player sees instead of a bare 404 or an empty 401: the catch-all page for an
 * instance hostname that is not routed (starting, expired, stopped, failed, unknown) and the
 * forward-auth denials. A page says only which of these it is: no team, instance id, reason,
 * expiry or challenge detail, so it reveals nothing to someone holding another team's hostname.
 */
import { createHash } from 'node:crypto';
import { isLive, wantsRunning, type Instance } from '../core/instance.ts';

export type PageKind =
  | 'queued' | 'starting' | 'expired' | 'stopped' | 'failed' | 'unknown'
  | 'needs-link' | 'link-expired' | 'forbidden' | 'needs-login' | 'unavailable' | 'bad-request';

interface PageText { status: number; title: string; text: string }

const PAGES: Record<PageKind, PageText> = {
  queued: { status: 503, title: 'Waiting for a slot…', text: 'This instance is queued until there is room for it. This page reloads by itself.' },
  starting: { status: 503, title: 'Starting…', text: 'This instance is starting. This page reloads by itself until it is ready.' },
  expired: { status: 410, title: 'Expired', text: 'This instance has expired. Launch a new one from the platform.' },
  stopped: { status: 410, title: 'Stopped', text: 'This instance was stopped. Launch a new one from the platform.' },
  failed: { status: 503, title: 'Could not start', text: 'This instance failed to start. Launch it again from the platform, or ask the organisers.' },
  unknown: { status: 404, title: 'No instance here', text: 'There is no instance at this address. Check the link, or launch one from the platform.' },
  'needs-link': { status: 401, title: 'Access link needed', text: 'Open this instance from the platform: its link signs you in.' },
  'link-expired': { status: 401, title: 'Link expired', text: 'This access link is invalid or has expired. Get a new one from the platform.' },
  forbidden: { status: 403, title: 'No access', text: 'You do not have access to this instance.' },
  'needs-login': { status: 401, title: 'Sign in first', text: 'Sign in to the platform, then open this instance again.' },
  unavailable: { status: 503, title: 'Try again shortly', text: 'Access to this instance cannot be checked right now. Try again in a moment.' },
  'bad-request': { status: 400, title: 'Bad request', text: 'Access links work only when opened directly (a GET request).' },
};

/** HTTP status a page is served with. */
export function pageStatus(kind: PageKind): number {
  return PAGES[kind].status;
}

/** Seconds between reloads of the starting page. */
export const STARTING_REFRESH_SECONDS = 2;

const STYLE = 'body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#1d2733}' +
  'h1{font-size:1.6rem;margin:0 0 .5rem}p{margin:0;color:#4a5868}';
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

/** Response headers every page carries: no caching, no framing, no referrer, nothing but our inline style. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
});

/** A rendered page: status, content type and body (HTML for browsers, one line of text otherwise). */
export interface RenderedPage {
  status: number;
  contentType: string;
  body: string;
  /** Extra headers (Retry-After while starting). */
  headers: Record<string, string>;
}

const rendered = new Map<string, RenderedPage>();

/** Renders `kind` for a client that sent `accept`; HTML when it accepts text/html. Pages are static, so each is built once. */
export function renderPage(kind: PageKind, accept: string | undefined): RenderedPage {
  const html = accept?.includes('text/html') === true;
  const key = `${kind}:${html}`;
  let page = rendered.get(key);
  if (!page) {
    page = build(kind, html);
    Object.freeze(page.headers);
    Object.freeze(page);
    rendered.set(key, page);
  }
  return page;
}

function build(kind: PageKind, html: boolean): RenderedPage {
  const page = PAGES[kind];
  const waiting = kind === 'starting' || kind === 'queued';
  const headers: Record<string, string> = waiting ? { 'retry-after': String(STARTING_REFRESH_SECONDS) } : {};
  if (!html) {
    return { status: page.status, contentType: 'text/plain; charset=utf-8', body: `${page.title} ${page.text}\n`, headers };
  }
  const refresh = waiting ? `<meta http-equiv="refresh" content="${STARTING_REFRESH_SECONDS}">` : '';
  const body = '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    `<meta name="viewport" content="width=device-width,initial-scale=1">${refresh}` +
    `<meta name="robots" content="noindex"><title>${page.title}</title><style>${STYLE}</style></head>` +
    `<body><main data-state="${kind}"><h1>${page.title}</h1><p>${page.text}</p></main></body></html>\n`;
  return { status: page.status, contentType: 'text/html; charset=utf-8', body, headers };
}

/**
 * Which catch-all page an instance record calls for at `now`. A live instance whose route is not
 * there yet (starting, or running a moment before the gateway rewrites) is `starting`; one still
 * waiting in the admission queue is `queued`.
 */
export function pageFor(inst: Instance | undefined, now: number): PageKind {
  if (!inst) return 'unknown';
  if (inst.status === 'failed') return 'failed';
  if (inst.status === 'queued' && isLive(inst, now)) return 'queued';
  if (wantsRunning(inst, now)) return 'starting';
  const expired = (inst.desired === 'running' && now >= inst.expiresAt) ||
    inst.reason === 'expired' || (inst.finishedAt !== undefined && inst.finishedAt >= inst.expiresAt);
  return expired ? 'expired' : 'stopped';
}
