/**
 * Delegate mode end to end, through the Traefik stand-in (spec/helpers/mini-traefik.ts) fed with
 * the configuration Poseidon serves: a request for team A's instance reaches it with a team A
 * player's CTFd session cookie, and team B's session, no session or a forged one do not, because
 * Traefik's forward-auth asks Poseidon, which asks the plugin (`/plugins/poseidon/auth`) whose
 * session it is. The CTFd stand-in and Poseidon come from tests/rig.py; the gateway is a probe
 * container Poseidon joins to instance networks. Exported as a uvu suite for spec/integrations.
 */
import { request } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanupByLabel, fetchFromProbe, startProbe, testManagerId } from '../../../spec/helpers/docker.ts';
import { startMiniTraefik, type BackendAnswer, type MiniTraefik } from '../../../spec/helpers/mini-traefik.ts';
import { startRig, stopRig, sweep, type Rig, type RigInfo } from './panel.chromium.ts';

/** A CTFd stand-in session for `name`: its Cookie header and CSRF nonce. */
async function signIn(info: RigInfo, name: string): Promise<{ cookie: string; nonce: string }> {
  const res = await fetch(`${info.standin}/test/login/${info.users[name]}`, { redirect: 'manual' });
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  await res.body?.cancel();
  const page = await (await fetch(`${info.standin}/challenges`, { headers: { cookie } })).text();
  const nonce = /csrfNonce: "([0-9a-f]+)"/.exec(page)?.[1];
  if (!cookie || !nonce) throw new Error(`could not sign in as ${name}`);
  return { cookie, nonce };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export function traefikSuite(enabled: () => boolean) {
  const t = suite('ctfd plugin: delegate mode through the Traefik stand-in');
  const mgr = testManagerId();
  let on = false;
  let rig: Rig | undefined;
  let gateway: MiniTraefik | undefined;
  let probe = '';

  t.before(async () => {
    on = enabled();
    if (!on) return;
    probe = await startProbe(mgr, `${mgr}-gw`);
    rig = await startRig({ CTFD_RIG_GATEWAY: `${mgr}-gw` });
    const info = rig.info;
    gateway = await startMiniTraefik({
      config: async () => (await fetch(`${info.poseidon}/v1/traefik/config`, { headers: { 'x-api-key': info.key } })).json(),
      backend: async (hostPort, p): Promise<BackendAnswer> => {
        const r = await fetchFromProbe(probe, hostPort, p);
        return r.code === 0 ? { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: r.out } : { status: 502, headers: {}, body: r.err };
      },
    });
  });
  t.after(async () => {
    await gateway?.close().catch(() => undefined);
    await stopRig(rig);
    // The probe is attached to Poseidon's instance networks: remove it, then those networks.
    await cleanupByLabel(mgr);
    if (rig) sweep(rig.info.manager);
  });

  t('team B cannot open team A\'s instance; team A (any member) can', async () => {
    if (!on) return;
    const info = (rig as Rig).info;
    const alice = await signIn(info, 'alice');
    const launched = await fetch(`${info.standin}/plugins/poseidon/api/v1/challenges/${info.challenges.fast}/instance`, {
      method: 'POST', headers: { cookie: alice.cookie, 'content-type': 'application/json', 'csrf-token': alice.nonce }, body: '{}',
    });
    assert.is(launched.status, 202, await launched.text());
    const list = await until('team A\'s instance running', async () => {
      const r = await (await fetch(`${info.poseidon}/v1/instances?team=t${info.teams.red}&challenge=fast-web`, { headers: { 'x-api-key': info.key } })).json();
      return r.instances.find((i: any) => i.status === 'running');
    });
    const host = list.hostname as string;
    // As a browser would send it to Traefik: the instance's Host, and the CTFd session cookie
    // (with SESSION_COOKIE_DOMAIN covering the instance hostnames).
    const via = (cookie?: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gateway!.port, path: '/', headers: { host, accept: 'text/html', ...(cookie ? { cookie } : {}) } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.end();
    });
    const own = await until('the route to team A\'s instance', async () => {
      const r = await via(alice.cookie);
      return r.status === 200 && r.body.includes('Your flag') ? r : undefined;
    });
    assert.match(own.body, /ctf\{[0-9a-f]+\}/);
    const bob = await via((await signIn(info, 'bob')).cookie);
    assert.is(bob.status, 200, 'a teammate');
    const carol = await via((await signIn(info, 'carol')).cookie);
    assert.is(carol.status, 403, 'team B');
    assert.not.match(carol.body, /ctf\{/);
    assert.is((await via()).status, 401, 'no session');
    assert.is((await via('session=forged')).status, 401, 'a session CTFd does not know');
    const denied = gateway!.authCalls.filter(([h, s]) => h === host && s === 403);
    assert.ok(denied.length >= 1, 'the refusal came from forward-auth');
    await fetch(`${info.standin}/plugins/poseidon/api/v1/challenges/${info.challenges.fast}/instance/stop`, {
      method: 'POST', headers: { cookie: alice.cookie, 'content-type': 'application/json', 'csrf-token': alice.nonce }, body: '{}',
    });
  });

  return t;
}
