// Confirmation, notices and actions. Every action asks first (a modal <dialog>: Escape or
// Cancel backs out, focus returns to the button that asked), then calls the API and says what
// happened in a polite live region.
import { api } from './api.js';
import { reload } from './live.js';

/** True when the signed-in key may act (admin); operators read only. */
export const CAN_ACT = document.body.dataset.role === 'admin';

let toastTimer;
/** Shows `text` for a few seconds (announced to screen readers); `kind`: 'ok' | 'error'. */
export function toast(text, kind = 'ok') {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 12_000 : 5000);
}

/**
 * Opens `dialog` modally with `focus` focused; resolves the value of the button that closed it
 * ('' for Escape). Focus returns to what had it before.
 */
export function showDialog(dialog, focus) {
  const back = document.activeElement;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (back instanceof HTMLElement && back.isConnected) back.focus();
      resolve(dialog.returnValue);
    }, { once: true });
    dialog.showModal();
    focus.focus();
  });
}

/** Asks `question` in the modal dialog; resolves true on Confirm. */
export async function confirmAction(question, confirmLabel = 'Confirm') {
  document.getElementById('confirm-text').textContent = question;
  const ok = document.getElementById('confirm-ok');
  ok.textContent = confirmLabel;
  return (await showDialog(document.getElementById('confirm'), ok)) === 'ok';
}

/**
 * Confirms, then runs `method path [body]`; says what happened, re-reads `refresh` (names of
 * live.js loaders) and the audit ring. Resolves the answer, or undefined when cancelled/failed.
 */
export async function act({ question, label, method, path, body, done, refresh = [] }) {
  if (!CAN_ACT) return undefined;
  if (!(await confirmAction(question, label))) return undefined;
  return perform({ label, method, path, body, done, refresh });
}

/** `act` once the admin has said yes (in its own dialog): the call, the notice, the re-reads. */
export async function perform({ label, method, path, body, done, refresh = [] }) {
  if (!CAN_ACT) return undefined;
  try {
    const res = await api(method, path, body);
    toast(done);
    for (const what of [...refresh, 'audit']) void reload(what);
    return res ?? {};
  } catch (err) {
    toast(`${label} failed: ${err.message}`, 'error');
    void reload('audit');
    return undefined;
  }
}

/** A button for an action (only for admins; operators see none). */
export function actionButton(text, attrs, onclick) {
  if (!CAN_ACT) return null;
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  for (const [k, v] of Object.entries(attrs)) b.setAttribute(k, v);
  b.addEventListener('click', onclick);
  return b;
}
