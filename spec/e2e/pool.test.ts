/**
 * Warm pools end to end (issue 11), through the HTTP API, on the real engine and a real Redis:
 * a pooled challenge keeps its members running with no owner; a launch takes one (the same
 * container, with the owner's flag written into its flag file), the pool refills, a member never
 * reaches two teams, and a spec change drains the old version's members.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { suite } from 'uvu';
import { parse } from 'yaml';
import * as assert from 'uvu/assert';
import { deriveFlag } from '../../src/core/flag.ts';
import { POOL_TEAM } from '../../src/core/instance.ts';
import { signBody } from '../../src/events/webhook.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { haveDocker, haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { docker, exec, fetchFromProbe, startProbe, testManagerId } from '../helpers/docker.ts';
import { teardownE2e } from '../helpers/e2e.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('e2e: warm pools');
const enabled = haveDocker() && haveRedis();
const mgr = testManagerId();
const KEY = 'e2e-pool-admin-key-0123456789';
const SECRET = 'e2e-pool-flag-secret-0123456789';
const FORMAT = 'pool{%s}';
const TEAM_A_KEY = 'e2e-pool-team-a-key-0123456789';
const METRICS_TOKEN = 'e2e-pool-metrics-token-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-pool-'));
const challengesDir = path.join(work, 'challenges');
const BOUND = 120_000;
let server: ServeProcess | undefined;
let api: ReturnType<typeof apiClient>;
let gateway = '';
let store: RedisStore | undefined;
const HOOK_SECRET = 'e2e-pool-webhook-secret-0123456789';
/** Event webhook deliveries received (the platform's side), with whether each was signed right. */
const hooks: { event: any; signed: boolean }[] = [];
let receiver: Server | undefined;

/** The pooled challenge; `greeting` changes its version. */
function writePooled(greeting: string, size = 2): void {
  mkdirSync(path.join(challengesDir, 'pooled'), { recursive: true });
  writeFileSync(path.join(challengesDir, 'pooled', 'challenge.yaml'), [
    'id: pooled', 'name: Pooled', 'image: busybox:1.35',
    'command: [sh, -c, "mkdir -p /tmp/w && echo \\"$GREETING\\" > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
    'expose: [{ name: web, port: 8080, protocol: http }]',
    `env: { GREETING: "${greeting}" }`,
    `flag: { file: /flag.txt, format: "${FORMAT}" }`,
    'healthcheck: { type: http, port: web, path: / }',
    `pool: { size: ${size} }`, '',
  ].join('\n'));
}

t.before(async () => {
  if (!enabled) return;
  writePooled('v1');
  gateway = await startProbe(mgr, `${mgr}-gw`);
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      hooks.push({ event: JSON.parse(body), signed: req.headers['x-poseidon-signature'] === signBody(HOOK_SECRET, body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
  const hookPort = (receiver.address() as { port: number }).port;
  server = await startServe({
    POSEIDON_EVENTS_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hooks`, POSEIDON_EVENTS_WEBHOOK_SECRET: HOOK_SECRET,
    POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: SECRET, REDIS_URL, POSEIDON_REDIS_PREFIX: `${mgr}:`,
    POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: challengesDir, POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_GATEWAY_CONTAINER: `${mgr}-gw`, POSEIDON_RESYNC_SECONDS: '2',
    POSEIDON_METRICS_TOKEN: METRICS_TOKEN,
    POSEIDON_API_KEYS: `a:platform:team-a:${createHash('sha256').update(TEAM_A_KEY).digest('hex')}`, POSEIDON_TEAM_LIMIT: '0', POSEIDON_RATE_LIMITS: 'launch=100000/60,stop=100000/60',
  });
  api = apiClient(server.url, KEY);
  store = new RedisStore({ url: REDIS_URL, prefix: `${mgr}:` });
});

t.after(async () => {
  if (!enabled) return;
  await store?.close();
  await teardownE2e({ server, managerId: mgr, work });
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

/**
 * Members of `pooled` asked to run, as the admin API lists them, each with the version it runs
 * (read from the store: the API's view does not show spec hashes).
 */
async function members(): Promise<any[]> {
  const list = ((await api('GET', '/v1/instances?challenge=pooled')).body.instances as any[]).filter((i) => i.team === POOL_TEAM && i.desired === 'running');
  return Promise.all(list.map(async (i) => ({ ...i, specHash: (await store!.getInstance(i.id))?.specHash })));
}

/** Waits until the pool holds `n` running members of the current version; returns them. */
async function fullPool(n: number): Promise<any[]> {
  const hash = (await api('GET', '/v1/catalog/pooled')).body.versions.find((v: any) => v.current).hash;
  return waitFor(`${n} running members of ${hash}`, async () => {
    const list = await members();
    const running = list.filter((m) => m.status === 'running' && m.specHash === hash);
    return running.length === n && list.length === n ? running : undefined;
  }, BOUND, 250);
}

/** The one container of `id` on the engine. */
async function containerOf(id: string): Promise<Docker.ContainerInfo> {
  const list = await docker.listContainers({ all: true, filters: { label: [`poseidon.managed-by=${mgr}`, `poseidon.instance=${id}`] } });
  assert.is(list.length, 1, `one container for ${id}`);
  return list[0] as Docker.ContainerInfo;
}

async function running(id: string): Promise<any> {
  return waitFor(`${id} running`, async () => {
    const inst = (await api('GET', `/v1/instances/${id}`)).body;
    if (inst.status === 'failed') throw new Error(`${id} failed: ${inst.reason}`);
    return inst.status === 'running' ? inst : undefined;
  }, BOUND, 100);
}

/** The flag the instance's container reads from its flag file. */
async function flagIn(id: string): Promise<string> {
  const r = await exec((await containerOf(id)).Id, ['cat', '/flag.txt']);
  assert.is(r.code, 0, r.err);
  return r.out.trim();
}

/** The backend Traefik would dial for `hostname`, from the written file (waits until it is routed). */
async function routeFor(hostname: string): Promise<string> {
  return waitFor(`a route for ${hostname}`, async () => {
    const cfg = parse(readFileSync(path.join(work, 'traefik', 'poseidon.yml'), 'utf8')) as any;
    const entry = Object.entries(cfg?.http?.routers ?? {}).find(([, r]: [string, any]) => r.rule === `Host(\`${hostname}\`)`);
    const url = entry ? cfg.http.services[(entry[1] as any).service]?.loadBalancer?.servers?.[0]?.url as string | undefined : undefined;
    return url?.replace(/^http:\/\//, '');
  }, BOUND, 100);
}

/** `poseidon_pool_claims_total` for `pooled` by result, from the server's /metrics. */
async function claims(): Promise<{ claimed: number; cold: number }> {
  const text = await (await fetch(`${server!.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const read = (result: string): number => Number(new RegExp(`^poseidon_pool_claims_total\\{challenge="pooled",result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { claimed: read('claimed'), cold: read('cold') };
}

const teamFlag = (inst: any): string => deriveFlag(SECRET, { team: inst.team, challenge: 'pooled', instance: inst.id }, FORMAT);

it('a pooled challenge keeps its members running with no owner, and no team can list them', async () => {
  const list = await fullPool(2);
  for (const m of list) assert.ok(m.worker, `${m.id} is placed`);
  const seen = await apiClient(server!.url, TEAM_A_KEY)('GET', '/v1/instances');
  assert.is(seen.status, 200);
  assert.equal(seen.body.instances, [], 'a team-scoped key lists no member');
  const member = await apiClient(server!.url, TEAM_A_KEY)('GET', `/v1/instances/${list[0].id}`);
  assert.is(member.status, 403, 'nor reads one');
});

it('a launch takes a running member: the same container, the owner\'s flag in its file, routed', async () => {
  const before = await fullPool(2);
  const containers = new Map(await Promise.all(before.map(async (m) => [m.id, (await containerOf(m.id)).Id] as const)));
  const res = await api('POST', '/v1/instances', { challenge: 'pooled', team: 'team-a' });
  assert.is(res.status, 202, JSON.stringify(res.body));
  assert.ok(containers.has(res.body.id), `the launch took a member (${res.body.id} of ${[...containers.keys()].join(', ')})`);
  assert.is(res.body.team, 'team-a');
  const inst = await running(res.body.id);
  assert.is((await containerOf(inst.id)).Id, containers.get(inst.id), 'no new container: the member\'s own');
  assert.is(await flagIn(inst.id), teamFlag(inst), 'the flag file holds team-a\'s flag');
  const page = await fetchFromProbe(gateway, await routeFor(inst.hostname));
  assert.is(page.out.trim(), 'v1', `served through its route (${page.err})`);
  // The pool refills behind it, with other members.
  const refilled = await fullPool(2);
  assert.not.ok(refilled.some((m) => m.id === inst.id));
});

it('event webhooks: the platform hears the claimed instance under its owner, and never a member', async () => {
  const mine = (await api('GET', '/v1/instances?team=team-a&challenge=pooled')).body.instances[0];
  await waitFor(`${mine.id} running for team-a, by webhook`, async () => (
    hooks.some(({ event }) => event.instance.id === mine.id && event.instance.team === 'team-a' && event.instance.status === 'running') ? true : undefined
  ), BOUND, 100);
  // Members were created, placed and started before the claim (the first case waited for them).
  assert.equal(hooks.filter(({ event }) => event.instance.team === POOL_TEAM).map(({ event }) => `${event.instance.id} ${event.instance.status}`), []);
  assert.ok(hooks.every((h) => h.signed), 'every delivery carries the right signature');
});

it('concurrent launches for more teams than members: each team its own instance and flag, none shared', async () => {
  await fullPool(2);
  const before = await claims();
  const teams = ['t1', 't2', 't3', 't4', 't5'];
  const res = await Promise.all(teams.map((team) => api('POST', '/v1/instances', { challenge: 'pooled', team })));
  for (const r of res) assert.is(r.status, 202, JSON.stringify(r.body));
  const ids = res.map((r) => r.body.id as string);
  assert.is(new Set(ids).size, teams.length, 'distinct instances');
  const insts = await Promise.all(ids.map(running));
  const flags = new Set<string>();
  for (const inst of insts) {
    const flag = await flagIn(inst.id);
    assert.is(flag, teamFlag(inst), `${inst.team}: its own flag`);
    flags.add(flag);
  }
  assert.is(flags.size, teams.length);
  const engineIds = await Promise.all(ids.map(async (id) => (await containerOf(id)).Id));
  assert.is(new Set(engineIds).size, teams.length, 'one container per team');
  const after = await claims();
  const [claimed, cold] = [after.claimed - before.claimed, after.cold - before.cold];
  assert.is(claimed + cold, teams.length, `every pooled launch counted once (${claimed} claimed, ${cold} cold)`);
  assert.ok(claimed >= 1 && claimed <= 2, `at most the pool's 2 members claimed (${claimed})`);
  await fullPool(2);
});

it('a second launch of the same team is refused with the instance it holds (one per owner holds for claims)', async () => {
  const first = (await api('GET', '/v1/instances?team=team-a&challenge=pooled&live=true')).body.instances as any[];
  assert.is(first.length, 1);
  const again = await api('POST', '/v1/instances', { challenge: 'pooled', team: 'team-a' });
  assert.is(again.status, 409, JSON.stringify(again.body));
  assert.is(again.body.instance?.id, first[0].id);
});

it('a spec change drains the old version\'s members and fills the pool with the new one; claimed instances stay', async () => {
  const old = await fullPool(2);
  const claimed = (await api('GET', '/v1/instances?team=team-a&challenge=pooled')).body.instances[0];
  writePooled('v2');
  const sync = await api('POST', '/v1/sync', { wait: true });
  assert.ok(sync.status < 300, JSON.stringify(sync.body));
  const fresh = await fullPool(2);
  assert.not.ok(fresh.some((m) => old.some((o) => o.id === m.id)), 'new members');
  await waitFor('the old members gone from the engine', async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [`poseidon.managed-by=${mgr}`] } });
    const oldMembers = left.filter((c) => old.some((o) => o.id === c.Labels['poseidon.instance']));
    return oldMembers.length === 0 ? true : undefined;
  }, BOUND, 250);
  const still = (await api('GET', `/v1/instances/${claimed.id}`)).body;
  assert.is(still.status, 'running', 'the claimed instance keeps running its version');
  assert.is((await fetchFromProbe(gateway, await routeFor(fresh[0].hostname))).out.trim(), 'v2');
});

it('a smaller pool stops the extra members; a pool removed from the spec drains all', async () => {
  writePooled('v2', 1);
  await api('POST', '/v1/sync', { wait: true });
  await fullPool(1);
  const spec = path.join(challengesDir, 'pooled', 'challenge.yaml');
  writeFileSync(spec, readFileSync(spec, 'utf8').replace(/^pool:.*$/m, ''));
  await api('POST', '/v1/sync', { wait: true });
  await waitFor('no member left', async () => ((await members()).length === 0 ? true : undefined), BOUND, 250);
});

t.run();
