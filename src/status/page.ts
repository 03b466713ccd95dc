/**
 * The status page's HTML: a sign-in page, and the shell of the signed-in page (navigation, one
 * empty section per view, a confirmation dialog). Everything inside the views is drawn by
 * `/status/app.js` from the JSON API; the shell carries only the session's CSRF token, the
 * signed-in key's name and role. No inline script or style: the CSP allows `'self'` only.
 */

/** The views, in navigation order: `[hash, title]`. */
export const VIEWS: readonly (readonly [string, string])[] = [
  ['overview', 'Overview'], ['workers', 'Workers'], ['instances', 'Instances'], ['catalog', 'Catalog'],
  ['incidents', 'Incidents'], ['audit', 'Audit log'],
];

/** Headers of every status page answer (HTML and assets). */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** HTML-escapes text for element content and double-quoted attributes. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * `modules`: the page's JS files; all but the entry point are preloaded, so the browser fetches
 * them at once instead of import by import.
 */
function head(title: string, meta: string, modules: readonly string[]): string {
  const preload = modules.filter((n) => n.endsWith('.js') && n !== 'app.js');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
${meta}<title>${esc(title)}</title>
<link rel="stylesheet" href="/status/app.css">
<script type="module" src="/status/app.js"></script>
${preload.map((n) => `<link rel="modulepreload" href="/status/${esc(n)}">\n`).join('')}</head>
`;
}

/** The sign-in page (`message`: why the previous attempt or session ended, if any). */
export function loginPage(modules: readonly string[], message?: string): string {
  return `${head('Sign in · Poseidon status', '', modules)}<body data-page="login">
<main id="main" class="login">
<h1>Poseidon status</h1>
<form id="login" autocomplete="off" novalidate>
<label for="key">API key <span class="hint">(an admin key, or an operator key for a read-only view)</span></label>
<input id="key" name="key" type="password" required minlength="16" maxlength="1024" autocomplete="off" spellcheck="false" autofocus>
<button type="submit">Sign in</button>
<p id="login-error" class="error" role="alert">${message ? esc(message) : ''}</p>
</form>
<p class="hint">The key is exchanged once for a 12-hour session cookie; it is never stored by the page.</p>
</main>
</body>
</html>
`;
}

/**
 * The signed-in shell for key `name` with `role`; `csrf` goes with every action the page sends;
 * `summary`: the URL of the activity summary when the server has that route (the page asks
 * nothing it would get a 404 for).
 */
export function shellPage(opts: { name: string; role: string; csrf: string; expiresAt: string; summary?: string; modules: readonly string[] }): string {
  const meta = `<meta name="poseidon-csrf" content="${esc(opts.csrf)}">
${opts.summary ? `<meta name="poseidon-summary" content="${esc(opts.summary)}">\n` : ''}<meta name="poseidon-role" content="${esc(opts.role)}">
<meta name="poseidon-session-expires" content="${esc(opts.expiresAt)}">
`;
  const nav = VIEWS.map(([id, title]) => `<li><a href="#${id}" data-nav="${id}">${esc(title)}</a></li>`).join('');
  const sections = VIEWS.map(([id, title]) => `<section id="view-${id}" class="view" data-view="${id}" aria-labelledby="h-${id}" hidden>
<h2 id="h-${id}" tabindex="-1">${esc(title)}</h2>
<div class="view-body" data-body="${id}"><p class="muted">Loading…</p></div>
</section>`).join('\n');
  const readOnly = opts.role === 'admin' ? '' : ' <span class="badge" title="operator keys read everything and act on nothing">read-only</span>';
  return `${head('Poseidon status', meta, opts.modules)}<body data-page="status" data-role="${esc(opts.role)}">
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<p class="brand">Poseidon <span class="muted">status</span></p>
<nav aria-label="Views"><ul>${nav}</ul></nav>
<div class="who"><span>Signed in as <b>${esc(opts.name)}</b> (${esc(opts.role)})${readOnly}</span>
<button type="button" id="logout" class="link">Sign out</button></div>
</header>
<p id="conn" class="conn" role="status" aria-live="polite" data-state="connecting">Connecting…</p>
<main id="main" tabindex="-1">
${sections}
</main>
<p id="toast" class="toast" role="status" aria-live="polite"></p>
<dialog id="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-text">
<form method="dialog">
<h2 id="confirm-title">Confirm</h2>
<p id="confirm-text"></p>
<div class="actions"><button value="cancel" type="submit">Cancel</button> <button value="ok" type="submit" class="danger" id="confirm-ok">Confirm</button></div>
</form>
</dialog>
<dialog id="launch-settings" aria-labelledby="launch-title" aria-describedby="launch-text">
<form method="dialog">
<h2 id="launch-title">Launch settings of <code id="launch-worker"></code></h2>
<p id="launch-text" class="small">Set over the worker's configuration, in effect at its next heartbeat. Empty: the worker's own.</p>
<label>Network pool (0-256) <input name="networkPool" type="number" min="0" max="256" step="1" inputmode="numeric"></label>
<label>Launches at once (1-64) <input name="launchConcurrency" type="number" min="1" max="64" step="1" inputmode="numeric"></label>
<div class="actions"><button value="cancel" type="submit" formnovalidate>Cancel</button> <button value="reset" type="submit" formnovalidate id="launch-reset">The worker's own</button> <button value="apply" type="submit" id="launch-apply">Apply</button></div>
</form>
</dialog>
</body>
</html>
`;
}
