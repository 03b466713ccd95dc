/**
 * Verifying git hosting webhooks before anything else happens: GitHub (`X-Hub-Signature-256:
 * sha256=<hex HMAC-SHA256(secret, body)>`), Gitea/Forgejo (`X-Gitea-Signature: <hex HMAC>`) and
 * GitLab (`X-Gitlab-Token: <secret>`). Comparisons are constant-time; nothing here logs.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type WebhookProvider = 'github' | 'gitea' | 'gitlab';

export type WebhookVerdict = { ok: true; provider: WebhookProvider } | { ok: false; why: string };

type Headers = Record<string, string | string[] | undefined>;

/** Which signature header the request carries (GitHub, then Gitea, then GitLab), if any. */
export function signatureHeader(headers: Headers): { provider: WebhookProvider; value: string } | undefined {
  const pick = (name: string): string | undefined => {
    const v = headers[name];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const github = pick('x-hub-signature-256');
  if (github) return { provider: 'github', value: github };
  const gitea = pick('x-gitea-signature') ?? pick('x-gogs-signature');
  if (gitea) return { provider: 'gitea', value: gitea };
  const gitlab = pick('x-gitlab-token');
  if (gitlab) return { provider: 'gitlab', value: gitlab };
  return undefined;
}

/** Checks the request's signature over the exact body bytes against `secret`. */
export function verifyWebhook(headers: Headers, body: Buffer, secret: string | undefined): WebhookVerdict {
  if (!secret) return { ok: false, why: 'webhooks are disabled: POSEIDON_WEBHOOK_SECRET is not set' };
  const sig = signatureHeader(headers);
  if (!sig) return { ok: false, why: 'unsigned request: expected X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token' };
  if (sig.provider === 'gitlab') return sameSecret(sig.value, secret) ? { ok: true, provider: 'gitlab' } : { ok: false, why: 'X-Gitlab-Token does not match' };
  const hex = sig.provider === 'github' ? /^sha256=([0-9a-f]{64})$/i.exec(sig.value)?.[1] : /^([0-9a-f]{64})$/i.exec(sig.value)?.[1];
  if (!hex) return { ok: false, why: `malformed ${sig.provider === 'github' ? 'X-Hub-Signature-256' : 'X-Gitea-Signature'}` };
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(hex, 'hex')) ? { ok: true, provider: sig.provider } : { ok: false, why: 'signature does not match the body' };
}

/** Constant-time equality of two strings of any length (compares their digests). */
function sameSecret(given: string, secret: string): boolean {
  const d = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(d(given), d(secret));
}

/**
 * The pushed ref of a push event body (JSON, or GitHub's form encoding `payload=<json>`);
 * undefined when the body has none (ping and other events).
 */
export function pushedRef(body: Buffer): string | undefined {
  let text = body.toString('utf8');
  if (text.startsWith('payload=')) text = decodeURIComponent(text.slice('payload='.length).replace(/\+/g, ' '));
  try {
    const ref = (JSON.parse(text) as { ref?: unknown } | null)?.ref;
    return typeof ref === 'string' ? ref : undefined;
  } catch {
    return undefined;
  }
}
