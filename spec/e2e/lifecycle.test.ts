/**
 * End to end, through the HTTP API only, on the real engine and a real Redis: every example
 * challenge for two teams, flags, limits, labels, Traefik routes, stop and expiry.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { deriveFlag } from '../../src/core/flag.ts';
import { haveDocker, haveRedis, oracle, REDIS_URL, ROOT } from '../helpers/deps.ts';
import { docker, fetchFromProbe, startProbe, tcpFromProbe, testManagerId } from '../helpers/docker.ts';
import { teardownE2e } from '../helpers/e2e.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('e2e: lifecycle through the API');
const enabled = haveDocker() && haveRedis();
const mgr = testManagerId();
const KEY = 'e2e-admin-key-0123456789';
const SECRET = 'e2e-flag-secret-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-e2e-'));
const challengesDir = path.join(work, 'challenges');
const traefikDir = path.join(work, 'traefik');
let server: ServeProcess;
let api: ReturnType<typeof apiClient>;
let gateway = '';
const launched = new Map<string, any>(); // `${challenge}/${team}` -> instance view

function writeShortLived(): void {
  mkdirSync(path.join(challengesDir, 'short-lived'), { recursive: true });
  writeFileSync(path.join(challengesDir, 'short-lived', 'challenge.yaml'), [
    'id: short-lived', 'name: Short lived', 'image: busybox:1.35',
    'command: [sh, -c, "mkdir -p /tmp/w && echo \\"$FLAG\\" > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
    'expose: [{ name: web, port: 8080, protocol: http }]', 'ttl: { default: 10s, max: 20s, renewals: 0 }', '',
  ].join('\n'));
}

t.before(async () => {
  if (!enabled) return;
  cpSync(path.join(ROOT, 'challenges'), challengesDir, { recursive: true });
  writeShortLived();
  gateway = await startProbe(mgr, `${mgr}-gw`);
  server = await startServe({
    POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: SECRET, REDIS_URL, POSEIDON_REDIS_PREFIX: `${mgr}:`,
    POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: challengesDir, POSEIDON_TRAEFIK_DIR: traefikDir,
    POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_GATEWAY_CONTAINER: `${mgr}-gw`, POSEIDON_RESYNC_SECONDS: '2',
    // This file checks the one-per-owner rule alone; team limits and rate limits have their own tests.
    POSEIDON_TEAM_LIMIT: '0', POSEIDON_RATE_LIMITS: 'launch=100000/60,stop=100000/60',
  });
  api = apiClient(server.url, KEY);
});

t.after(async () => {
  if (!enabled) return;
  await teardownE2e({ server, managerId: mgr, work });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

function traefik(): any {
  return parse(readFileSync(path.join(traefikDir, 'poseidon.yml'), 'utf8'));
}

/** The backend Traefik would dial for `hostname`, read from the written file. */
function routeFor(hostname: string): string | undefined {
  const cfg = traefik();
  const entry = Object.entries(cfg.http?.routers ?? {}).find(([, r]: [string, any]) => r.rule === `Host(\`${hostname}\`)`);
  if (!entry) return undefined;
  const service = cfg.http.services[(entry[1] as any).service];
  return service?.loadBalancer?.servers?.[0]?.url?.replace(/^http:\/\//, '');
}

function expectedFlag(inst: any, format: string): string {
  return deriveFlag(SECRET, { team: inst.team, challenge: inst.challenge, instance: inst.id }, format);
}

it('rejects calls without the key and lists the example challenges', async () => {
  const anon = await fetch(`${server.url}/v1/challenges`);
  assert.is(anon.status, 401);
  assert.is((await anon.json()).code, 'E_UNAUTHORIZED');
  const res = await api('GET', '/v1/challenges');
  assert.is(res.status, 200);
  assert.equal(res.body.challenges.map((c: any) => c.id), ['pwn-echo', 'short-lived', 'two-ports', 'web-hello']);
  assert.equal(res.body.invalid, []);
});

it('launches every example challenge for two teams and they reach running', async () => {
  for (const challenge of ['web-hello', 'pwn-echo', 'two-ports']) {
    for (const team of ['red', 'blue']) {
      const res = await api('POST', '/v1/instances', { challenge, team });
      assert.is(res.status, 202, JSON.stringify(res.body));
      assert.is(res.body.status, 'pending');
      assert.match(res.body.hostname, new RegExp(`^[0-9a-f]{16}\\.${challenge}\\.localhost$`));
      launched.set(`${challenge}/${team}`, res.body);
    }
  }
  for (const [key, inst] of launched) {
    const running = await waitFor(`${key} running`, async () => {
      const r = await api('GET', `/v1/instances/${inst.id}`);
      if (r.body.status === 'failed') throw new Error(`failed: ${r.body.reason}`);
      return r.body.status === 'running' ? r.body : undefined;
    }, 60_000, 200);
    assert.ok(running.endpoints.length >= 1);
    launched.set(key, running);
  }
});

it('a second live launch for the same owner is refused with the existing instance', async () => {
  const first = launched.get('web-hello/red');
  const res = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'red' });
  assert.is(res.status, 409);
  assert.is(res.body.code, 'E_OWNER_LIMIT');
  assert.is(res.body.instance.id, first.id);
});

it('50 concurrent launches for one team give exactly one 202', async () => {
  const results = await Promise.all(Array.from({ length: 50 }, () => api('POST', '/v1/instances', { challenge: 'web-hello', team: 'green' })));
  const statuses = results.map((r) => r.status);
  assert.is(statuses.filter((s) => s === 202).length, 1);
  assert.is(statuses.filter((s) => s === 409).length, 49);
  const winner = results.find((r) => r.status === 202)!.body.id;
  assert.ok(results.every((r) => r.status === 202 || r.body.instance.id === winner));
  assert.is((await api('DELETE', `/v1/instances/${winner}`)).status, 202);
});

it('containers carry labels and the hardening limits from the spec', async () => {
  const inst = launched.get('web-hello/blue');
  const [info] = await docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${inst.id}`] } });
  assert.ok(info);
  const c = await docker.getContainer(info.Id).inspect();
  assert.is(c.Name, `/poseidon-${inst.id}`);
  const labels = c.Config.Labels;
  assert.is(labels['poseidon.managed-by'], mgr);
  assert.is(labels['poseidon.challenge'], 'web-hello');
  assert.is(labels['poseidon.owner'], 'team:blue');
  assert.is(labels['poseidon.generation'], '1');
  assert.match(labels['poseidon.spec-hash'] ?? '', /^[0-9a-f]{16}$/);
  assert.is(c.HostConfig.Memory, 32 * 1024 * 1024);
  assert.is(c.HostConfig.PidsLimit, 32);
  assert.is(c.HostConfig.NanoCpus, 250_000_000);
  assert.equal(c.HostConfig.CapDrop, ['ALL']);
  assert.equal(c.HostConfig.SecurityOpt, ['no-new-privileges']);
  assert.ok(c.HostConfig.ReadonlyRootfs);
  const net = await docker.getNetwork(`poseidon-${inst.id}`).inspect();
  assert.ok(net.Internal, 'no egress by default');
  assert.is(net.Labels?.['poseidon.instance'], inst.id);
  assert.not.ok(c.Config.Env.some((e: string) => e.includes(SECRET)), 'flag secret never enters a container');
});

it('the Traefik file validates and routes each hostname to the owning team\'s backend', async () => {
  const schemaPath = oracle('traefik-v3-file-provider.json');
  if (schemaPath) {
    const validate = new Ajv().compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
    assert.ok(validate(traefik()), JSON.stringify(validate.errors));
  }
  for (const team of ['red', 'blue']) {
    const web = launched.get(`web-hello/${team}`);
    const backend = routeFor(web.hostname);
    assert.is(backend, `poseidon-${web.id}:8080`);
    const page = await fetchFromProbe(gateway, backend!);
    assert.ok(page.out.includes(expectedFlag(web, 'poseidon{%s}')), `${team} web page: ${page.out} ${page.err}`);

    const two = launched.get(`two-ports/${team}`);
    const [front, admin] = two.endpoints;
    assert.is.not(front.hostname, admin.hostname);
    assert.is(routeFor(admin.hostname), `poseidon-${two.id}:8081`);
    const flag = await fetchFromProbe(gateway, routeFor(admin.hostname)!, '/flag.txt');
    assert.is(flag.out.trim(), expectedFlag(two, 'flag{%s}'));
    assert.match((await fetchFromProbe(gateway, routeFor(front.hostname)!)).out, /Nothing to see/);

    const pwn = launched.get(`pwn-echo/${team}`);
    assert.is(pwn.endpoints[0].protocol, 'tcp');
    const talk = await tcpFromProbe(gateway, `poseidon-${pwn.id}:9000`, 'hello');
    assert.match(talk.out, /you said: hello/);
    assert.ok(talk.out.includes(expectedFlag(pwn, 'poseidon{%s}')), talk.out);
  }
  assert.is.not(expectedFlag(launched.get('web-hello/red'), '%s'), expectedFlag(launched.get('web-hello/blue'), '%s'));
});

it('a gateway that lost an instance network (recreated Traefik) is joined again', async () => {
  const inst = launched.get('web-hello/blue');
  const net = `poseidon-${inst.id}`;
  await docker.getNetwork(net).disconnect({ Container: gateway, Force: true });
  await waitFor('gateway rejoined', async () => {
    const info = await docker.getContainer(gateway).inspect();
    return info.NetworkSettings.Networks[net] ? true : undefined;
  }, 15_000, 200);
  const page = await fetchFromProbe(gateway, routeFor(inst.hostname)!);
  assert.ok(page.out.includes(expectedFlag(inst, 'poseidon{%s}')));
});

it('stopping an instance removes its container, network and route', async () => {
  const inst = launched.get('web-hello/red');
  const res = await api('DELETE', `/v1/instances/${inst.id}`);
  assert.is(res.status, 202);
  await waitFor('stopped', async () => ((await api('GET', `/v1/instances/${inst.id}`)).body.status === 'stopped' ? true : undefined), 60_000);
  assert.equal(await docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${inst.id}`] } }), []);
  assert.equal(await docker.listNetworks({ filters: { label: [`poseidon.instance=${inst.id}`] } }), []);
  await waitFor('route removed', async () => (routeFor(inst.hostname) === undefined ? true : undefined), 60_000);
  assert.ok(routeFor(launched.get('web-hello/blue').hostname), 'the other team keeps its route');
  const again = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'red' });
  assert.is(again.status, 202, 'a stopped instance frees the slot');
  await api('DELETE', `/v1/instances/${again.body.id}`);
});

it('an instance expires at expiresAt: its container goes, never before (the latency is a benchmark: npm run bench expiry)', async () => {
  const res = await api('POST', '/v1/instances', { challenge: 'short-lived', team: 'red' });
  assert.is(res.status, 202);
  const expiresAt = Date.parse(res.body.expiresAt);
  await waitFor('running', async () => ((await api('GET', `/v1/instances/${res.body.id}`)).body.status === 'running' ? true : undefined), 60_000);
  const gone = await waitFor('container removed', async () => {
    const list = await docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${res.body.id}`] } });
    return list.length === 0 ? Date.now() : undefined;
  }, 60_000, 50);
  assert.ok(gone >= expiresAt - 50, 'not before expiry');
  const after = await waitFor('stopped', async () => {
    const r = await api('GET', `/v1/instances/${res.body.id}`);
    return r.body.status === 'stopped' ? r.body : undefined;
  }, 5000);
  assert.is(after.reason, 'expired');
});

it('bad requests get problem+json naming the field', async () => {
  const cases: [unknown, number, RegExp][] = [
    [{ challenge: 'nope', team: 'red' }, 404, /nope/],
    [{ challenge: 'web-hello' }, 400, /team/],
    [{ challenge: 'web-hello', team: 'red', extra: 1 }, 400, /extra/],
    [{ challenge: 'Web_Hello', team: 'red' }, 400, /challenge/],
    [{ challenge: 'web-hello', team: 'red:x' }, 400, /team/],
  ];
  for (const [body, status, detail] of cases) {
    const r = await api('POST', '/v1/instances', body);
    assert.is(r.status, status, JSON.stringify(body));
    assert.match(r.body.detail, detail);
    assert.is(r.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  }
  assert.is((await api('GET', '/v1/instances/..%2F..%2Fetc')).status, 400);
  assert.is((await api('GET', '/v1/instances/ffffffffffffffffffffffff')).status, 404);
});

it('lists filter by team and challenge', async () => {
  const r = await api('GET', '/v1/instances?team=blue&challenge=two-ports');
  assert.is(r.status, 200);
  assert.equal(r.body.instances.map((i: any) => i.id), [launched.get('two-ports/blue').id]);
});

it('no flag and no secret ever appears in the logs', async () => {
  const logs = server.logs();
  assert.ok(logs.includes('container created'), 'logs were captured');
  for (const inst of launched.values()) assert.not.ok(logs.includes(expectedFlag(inst, '%s')), `flag of ${inst.id} in logs`);
  assert.not.ok(logs.includes(SECRET));
  assert.not.ok(logs.includes(KEY));
});

t.run();
