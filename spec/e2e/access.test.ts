/**
 * Player access end to end: `poseidon serve` on the real engine and Redis, a stand-in for
 * Traefik that routes by the configuration Poseidon serves (spec/helpers/mini-traefik.ts), the
 * gateway probe joined to instance networks, and plain TCP on leased ports published on
 * 127.0.0.1. Browser checks are in access-browser.test.ts.
 */
import { connect } from 'node:net';
import { request } from 'node:http';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { RedisLeaseStore } from '../../src/store/redis-leases.ts';
import { oracle, REDIS_URL } from '../helpers/deps.ts';
import { docker, tcpFromProbe } from '../helpers/docker.ts';
import { waitFor } from '../helpers/server.ts';
import { accessRig, expectedFlag, WORKER, type AccessRig } from './access-rig.ts';

const t = suite('e2e: player access through the gateway');
let rig: AccessRig;
const enabled = accessRig.enabled();

t.before(async () => { if (enabled) rig = await accessRig.start('e2e-access'); });
t.after(async () => { if (enabled) await rig?.stop(); });
const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

/** One request through the stand-in Traefik as a client would send it (Host header, no port). */
function viaGateway(host: string, p: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: rig.gateway.port, path: p, headers: { host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Follows an access link through the gateway; returns the cookie it set. */
async function signIn(url: string): Promise<string> {
  const u = new URL(url);
  const res = await viaGateway(u.host, u.pathname + u.search);
  assert.is(res.status, 302, res.body);
  return String(res.headers['set-cookie']).split(';')[0] as string;
}

/** Sends one line to 127.0.0.1:port and returns everything that came back (bounded). */
function nc(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const s = connect({ host: '127.0.0.1', port }, () => s.write(`${line}\n`));
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('data', (c: Buffer) => { out += c.toString(); });
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

it('the file and the HTTP provider hold the same configuration, valid for Traefik v3', async () => {
  await rig.launchRunning('web-hello', 'red');
  const fromFile = await waitFor('file lists the route', async () => {
    const doc = parse(readFileSync(path.join(rig.traefikDir, 'poseidon.yml'), 'utf8'));
    return Object.keys(doc.http.routers).some((n) => n.startsWith('i-')) ? doc : undefined;
  }, 10_000);
  const fromHttp = (await rig.api('GET', '/v1/traefik/config')).body;
  assert.equal(fromHttp, fromFile);
  const schemaPath = oracle('traefik-v3-file-provider.json');
  if (schemaPath) {
    const validate = new Ajv().compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
    assert.ok(validate(fromHttp), JSON.stringify(validate.errors));
  }
  assert.is(fromHttp.http.middlewares['poseidon-authz'].forwardAuth.trustForwardHeader, false);
});

it("through the gateway each team reaches its own instance's flag, and only its own", async () => {
  const red = await rig.launchRunning('web-hello', 'red');
  const blue = await rig.launchRunning('web-hello', 'blue');
  const redCookie = await signIn((await rig.api('POST', `/v1/instances/${red.id}/access`)).body.url);
  const blueCookie = await signIn((await rig.api('POST', `/v1/instances/${blue.id}/access`)).body.url);
  const page = await waitFor('red routed', async () => {
    const r = await viaGateway(red.hostname, '/', { cookie: redCookie });
    return r.status === 200 ? r : undefined;
  }, 10_000);
  assert.ok(page.body.includes(expectedFlag(red, 'poseidon{%s}')), page.body);
  assert.not.ok(page.body.includes(expectedFlag(blue, 'poseidon{%s}')));
  const cross = await viaGateway(red.hostname, '/', { cookie: blueCookie, accept: 'text/html' });
  assert.is(cross.status, 401);
  assert.not.ok(cross.body.includes('poseidon{'), 'no flag on a denial');
  // A client cannot talk its way in with forwarded headers: the gateway sends its own.
  const spoofed = await viaGateway(red.hostname, '/', { cookie: blueCookie, 'x-forwarded-host': blue.hostname, 'x-forwarded-uri': '/', 'x-forwarded-method': 'GET' });
  assert.is(spoofed.status, 401);
  assert.ok(rig.gateway.authCalls.every(([host]) => !host.includes(',')), 'forward-auth always saw exactly one host');
  const noCookie = await viaGateway(blue.hostname, '/');
  assert.is(noCookie.status, 401);
});

it('the access header token never reaches the backend, and a bypass token lets a checker in', async () => {
  const red = await rig.launchRunning('web-hello', 'red');
  const bypass = (await rig.api('POST', '/v1/access/bypass', { name: 'checker', challenge: 'web-hello' })).body;
  const res = await waitFor('routed', async () => {
    const r = await viaGateway(red.hostname, '/', { 'x-poseidon-access': bypass.token });
    return r.status === 200 ? r : undefined;
  }, 10_000);
  assert.ok(res.body.includes(expectedFlag(red, 'poseidon{%s}')));
  const cfg = (await rig.api('GET', '/v1/traefik/config')).body;
  const router = Object.values(cfg.http.routers as Record<string, { rule: string; middlewares?: string[] }>).find((r) => r.rule === `Host(\`${red.hostname}\`)`);
  assert.equal(router?.middlewares, ['poseidon-authz', 'poseidon-strip']);
  assert.match(rig.server.logs(), /access bypass used/);
});

it('TCP over SNI: a HostSNI router with TLS whose backend answers the owning team', async () => {
  const pwn = await rig.launchRunning('pwn-echo', 'red');
  const cfg = await waitFor('tcp router', async () => {
    const c = (await rig.api('GET', '/v1/traefik/config')).body;
    return c.tcp ? c : undefined;
  }, 10_000);
  const [name, router] = Object.entries(cfg.tcp.routers as Record<string, { rule: string; tls: object; service: string }>).find(([, r]) => r.rule === `HostSNI(\`${pwn.hostname}\`)`)!;
  assert.ok(router.tls, 'TLS terminates at the gateway');
  const address = cfg.tcp.services[name].loadBalancer.servers[0].address;
  const talk = await tcpFromProbe(rig.probe, address, 'hello');
  assert.ok(talk.out.includes(expectedFlag(pwn, 'poseidon{%s}')), talk.out);
  assert.match(pwn.endpoints[0].url, new RegExp(`^tls://${pwn.hostname.replaceAll('.', '\\.')}:80$`));
});

it('leased ports: plain nc on 127.0.0.1 reaches the owner, ports are distinct, no NAT, freed on stop', async () => {
  const red = await rig.launchRunning('lease-echo', 'red');
  const blue = await rig.launchRunning('lease-echo', 'blue');
  const portOf = (inst: typeof red) => Number(new URL(inst.endpoints[0].url).port);
  const [rp, bp] = [portOf(red), portOf(blue)];
  assert.is.not(rp, bp);
  for (const p of [rp, bp]) assert.ok(p >= rig.leaseRange.lo && p <= rig.leaseRange.hi, String(p));
  assert.is(red.endpoints[0].published.host, '127.0.0.1');
  assert.ok((await nc(rp, 'hi')).includes(expectedFlag(red, 'poseidon{%s}')));
  assert.ok((await nc(bp, 'hi')).includes(expectedFlag(blue, 'poseidon{%s}')));
  const net = await docker.getNetwork(`poseidon-${red.id}`).inspect();
  assert.is(net.Internal, false, 'publishing needs a bridge');
  assert.is(net.Options?.['com.docker.network.bridge.enable_ip_masquerade'], 'false', 'but no NAT: no route out');
  const subnet = net.IPAM?.Config?.[0]?.Subnet as string;
  const nat = execFileSync('iptables', ['-t', 'nat', '-S', 'POSTROUTING'], { encoding: 'utf8' });
  assert.not.ok(nat.split('\n').some((l) => l.includes(`-s ${subnet}`) && l.includes('MASQUERADE')), nat);
  const leases = new RedisLeaseStore({ url: REDIS_URL, prefix: `${rig.mgr}:w:${WORKER}:` });
  try {
    assert.equal((await leases.list()).map((l) => l.port).sort(), [rp, bp].sort());
    assert.is((await rig.api('DELETE', `/v1/instances/${red.id}`)).status, 202);
    await waitFor('lease freed', async () => ((await leases.list()).some((l) => l.port === rp) ? undefined : true), 60_000);
    assert.is(await nc(rp, 'hi').catch(() => 'refused'), 'refused');
    const again = await rig.launchRunning('lease-echo', 'red');
    assert.is.not(portOf(again), rp, 'a port just freed is not handed out again at once');
    assert.is.not(portOf(again), bp);
  } finally {
    await leases.close();
  }
});

it('a full lease range keeps the next launch pending with its reason until a port frees', async () => {
  const size = rig.leaseRange.hi - rig.leaseRange.lo + 1;
  const held = async () => {
    const leases = new RedisLeaseStore({ url: REDIS_URL, prefix: `${rig.mgr}:w:${WORKER}:` });
    try { return (await leases.list()).length; } finally { await leases.close(); }
  };
  const fillers = [];
  for (let i = 0; (await held()) < size && i < size; i++) fillers.push(await rig.launchRunning('lease-echo', `fill${i}`));
  assert.is(await held(), size);
  const over = await rig.api('POST', '/v1/instances', { challenge: 'lease-echo', team: 'overflow' });
  assert.is(over.status, 202);
  const waiting = await waitFor('waiting for a port', async () => {
    const r = (await rig.api('GET', `/v1/instances/${over.body.id}`)).body;
    return r.status === 'pending' && /no free port/.test(r.reason ?? '') ? r : undefined;
  }, 20_000, 200);
  assert.match(waiting.reason, new RegExp(`${rig.leaseRange.lo}-${rig.leaseRange.hi}`));
  const freed = Number(new URL(fillers[0].endpoints[0].url).port);
  assert.is((await rig.api('DELETE', `/v1/instances/${fillers[0].id}`)).status, 202);
  const running = await waitFor('overflow running', async () => {
    const r = (await rig.api('GET', `/v1/instances/${over.body.id}`)).body;
    return r.status === 'running' ? r : undefined;
  }, 30_000, 200);
  assert.is(Number(new URL(running.endpoints[0].url).port), freed, 'the only free port');
  assert.ok((await nc(freed, 'hi')).includes(expectedFlag(running, 'poseidon{%s}')));
});

it('no token, cookie or flag ever appears in the server logs', async () => {
  const logs = rig.server.logs();
  assert.ok(logs.includes('access link issued'), 'logs were captured');
  assert.not.match(logs, /poseidon_access=/);
  assert.not.match(logs, /[slb]\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}/);
  assert.not.match(logs, /poseidon\{[0-9a-f]{32}\}/);
});

t.run();
