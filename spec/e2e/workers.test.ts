/**
 * Issue 9 end to end, through the API only, on three real Docker engines (each in its own
 * network namespace), three `poseidon worker` processes, a manager without an embedded worker,
 * a real registry, and Traefik stand-ins as the edge and each host's ingress (spec/e2e/fleet-rig.ts).
 * The cases share one rig and run in order; each states the world it leaves.
 */
import { request as httpRequest } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deriveFlag } from '../../src/core/flag.ts';
import { haveDocker } from '../helpers/deps.ts';
import { apiClient } from '../helpers/server.ts';
import { CHALLENGES, EDGE_SECRET, eventually, FLAG_SECRET, KEY, startFleetRig, type FleetRig } from './fleet-rig.ts';

const t = suite('e2e: workers across three engines (issue 9)');
const enabled = haveDocker();
let rig: FleetRig | undefined;

t.before(async () => {
  if (enabled) rig = await startFleetRig();
});
t.after(async () => {
  await rig?.stop();
});
const it = (name: string, fn: (r: FleetRig) => Promise<void>) => t(name, async () => { if (rig) await fn(rig); });

/**
 * GET `/` at `base` with the given Host and headers; the body as text. (node:http, not fetch:
 * fetch silently replaces a Host header with the URL's.)
 */
function get(base: string, host: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: '/', method: 'GET', headers: { ...headers, host }, timeout: 30_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A TLS connection to `address` for `servername`, sending `line`, returning what came back. */
function tlsTalk(address: string, servername: string, line: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    let out = '';
    const s = tlsConnect({ host, port, servername, rejectUnauthorized: false }, () => s.write(`${line}\n`));
    s.setTimeout(20_000, () => s.destroy(new Error('timeout')));
    s.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('you said')) s.end(); });
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

const launched: any[] = [];

/** The fleet as the API sees it, for a failure's message: workers, and every instance not `running` or on `worker`. */
async function fleetState(r: FleetRig, worker?: string): Promise<string> {
  const workers = ((await r.api('GET', '/v1/workers')).body.workers as any[] ?? []).map((w) => `${w.id}:${w.state}:${w.instances}/${w.slots}`).join(' ');
  const instances = ((await r.api('GET', '/v1/instances')).body.instances as any[] ?? [])
    .filter((i) => i.status !== 'running' || i.worker === worker)
    .map((i) => `${i.id} ${i.team} ${i.status} desired=${i.desired} on ${i.worker ?? '-'} ${i.reason ?? ''}`);
  return `workers: ${workers}\ninstances:\n${instances.slice(0, 25).join('\n')}`;
}

/** `eventually`, with the fleet's state appended when it times out. */
async function settles<T>(r: FleetRig, what: string, fn: () => Promise<T | undefined>, timeoutMs?: number, worker?: string): Promise<T> {
  try {
    return await eventually(what, fn, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await fleetState(r, worker).catch((e: Error) => e.message)}`);
  }
}

it('workers register with their runtimes and the manager sees them ready', async (r) => {
  const workers = await eventually('3 ready workers', async () => {
    const list = (await r.api('GET', '/v1/workers')).body.workers as any[];
    return list.length === 3 && list.every((w) => w.state === 'ready') ? list : undefined;
  });
  assert.equal(workers.map((w) => w.id).sort(), r.workers.map((w) => w.host.name).sort());
  for (const w of workers) {
    const host = r.workers.find((x) => x.host.name === w.id)!.host;
    assert.is(w.address, host.address);
    assert.is(w.runtimes.includes('gvisor'), host.runtimes.includes('runsc'), `${w.id} offers gVisor exactly when its engine has runsc`);
    assert.ok(w.heartbeatAgeMs < 6000);
  }
});

it('30 instances of 3 challenges for 30 teams: each runs on the engine its instance names, evenly, with its own flag', async (r) => {
  // A version is launchable once one worker holds its image (a later case proves it), and placement
  // then uses the workers that have it: evenness is a claim about a fleet whose pulls finished, so
  // wait for every worker to report every current image present (as an event's start would).
  const images = await Promise.all(CHALLENGES.map(async (c) => ((await r.api('GET', `/v1/catalog/${c}`)).body.versions as any[]).find((v) => v.current).image as string));
  await eventually('every worker holds every image', async () => {
    const list = (await r.api('GET', '/v1/workers')).body.workers as any[];
    return list.length === 3 && list.every((w) => images.every((ref) => w.images[ref]?.state === 'present')) ? true : undefined;
  }, 240_000);
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => r.launchRunning(CHALLENGES[i % 3] as string, `team${i}`)));
  launched.push(...results);
  const containers = await r.containers();
  const byInstance = new Map<string, string[]>();
  for (const [worker, instance] of containers) byInstance.set(instance, [...(byInstance.get(instance) ?? []), worker]);
  for (const inst of results) assert.equal(byInstance.get(inst.id), [inst.worker], `${inst.id} runs exactly once, on ${inst.worker}`);
  const counts = r.workers.map((w) => results.filter((i) => i.worker === w.host.name).length);
  for (const c of counts) assert.ok(Math.abs(c - 10) <= 2, `spread within ±2 of even: ${counts.join(',')}`);
  // The flag, read from inside Docker on the instance's own engine, is this team's.
  for (const inst of results.filter((i) => i.challenge === 'web-hello')) {
    const w = r.workers.find((x) => x.host.name === inst.worker)!;
    const [c] = await w.docker.listContainers({ filters: { label: [`poseidon.instance=${inst.id}`] } });
    const e = await w.docker.getContainer(c!.Id).exec({ Cmd: ['sh', '-c', 'echo "$FLAG"'], AttachStdout: true });
    const out = await new Promise<string>((resolve) => e.start({ hijack: true, stdin: false }).then((s) => {
      let b = '';
      s.on('data', (d: Buffer) => { b += d.toString('latin1'); });
      s.on('end', () => resolve(b));
    }));
    assert.ok(out.includes(deriveFlag(FLAG_SECRET, { team: inst.team, challenge: inst.challenge, instance: inst.id }, 'poseidon{%s}')), `${inst.team}'s flag on ${inst.worker}`);
  }
});

it('the edge routes each hostname to its worker\'s ingress and through it to that team\'s container; the ingress alone answers nothing without the edge secret', async (r) => {
  for (const w of r.workers) {
    const inst = launched.find((i) => i.worker === w.host.name && i.challenge === 'web-hello');
    if (!inst) continue;
    const token = (await r.api('POST', `/v1/instances/${inst.id}/access`)).body.token;
    const flag = deriveFlag(FLAG_SECRET, { team: inst.team, challenge: inst.challenge, instance: inst.id }, 'poseidon{%s}');
    const through = await eventually(`edge -> ${w.host.name}`, async () => {
      const res = await get(r.edge.url, inst.hostname, { 'x-poseidon-access': token });
      return res.status === 200 ? res : undefined;
    });
    assert.ok(through.body.includes(flag), `${inst.hostname} reached ${inst.team}'s container on ${w.host.name}`);
    assert.is((await get(r.edge.url, inst.hostname)).status, 401, 'forward-auth at the edge: no token, no entry');
    const ingress = `http://${w.ingressHttp}`;
    assert.is((await get(ingress, inst.hostname)).status, 404, 'straight to the ingress: no route without the edge secret');
    assert.is((await get(ingress, inst.hostname, { 'x-poseidon-edge': 'guess-0123456789abcdef' })).status, 404, 'nor with a wrong one');
    assert.ok((await get(ingress, inst.hostname, { 'x-poseidon-edge': EDGE_SECRET })).body.includes(flag), 'the secret is what opens the hop');
  }
  // TCP over TLS: the edge passes the connection through to the worker's ingress, which terminates it.
  const pwn = launched.find((i) => i.challenge === 'pwn-echo');
  const flag = deriveFlag(FLAG_SECRET, { team: pwn.team, challenge: pwn.challenge, instance: pwn.id }, 'poseidon{%s}');
  const edgeAddress = `127.0.0.1:${r.edge.port}`;
  const said = await eventually('TLS through the edge', async () => {
    const out = await tlsTalk(edgeAddress, pwn.hostname, 'hello').catch(() => '');
    return out.includes(flag) ? out : undefined;
  });
  assert.match(said, /you said: hello/);
  // Straight to the worker's ingress TLS port from another test host: not the edge's address, refused.
  const w = r.workers.find((x) => x.host.name === pwn.worker)!;
  const other = r.workers.find((x) => x !== w)!;
  const direct = await r.tlsFrom(other.host, w.ingressTls, pwn.hostname, 'hello');
  assert.not.ok(direct.includes(flag), `a direct TLS connection from ${other.host.address} must not reach the instance: ${direct}`);
});

it('a gVisor-only challenge lands only on workers offering runsc', async (r) => {
  const sandboxHosts = r.workers.filter((w) => w.host.runtimes.includes('runsc')).map((w) => w.host.name);
  assert.ok(sandboxHosts.length >= 1 && sandboxHosts.length < r.workers.length, 'the rig has gVisor on some hosts only');
  const runs = await Promise.all(['g1', 'g2', 'g3'].map((team) => r.launchRunning('sandboxed', team)));
  for (const inst of runs) assert.ok(sandboxHosts.includes(inst.worker), `${inst.id} on ${inst.worker}`);
  for (const inst of runs) await r.api('DELETE', `/v1/instances/${inst.id}`);
  const ids = new Set(runs.map((i) => i.id));
  await eventually('sandboxed containers gone', async () => ((await r.containers()).some(([, id]) => ids.has(id)) ? undefined : true));
});

it('cordon: no new placements there, what runs stays; uncordon: placements again', async (r) => {
  const target = r.workers[0]!.host.name;
  const before = (await r.containers()).filter(([w]) => w === target).length;
  assert.is((await r.api('POST', `/v1/workers/${target}/cordon`)).body.state, 'cordoned');
  let runs: any[] = [];
  try {
    runs = await Promise.all(['c1', 'c2', 'c3', 'c4'].map((team) => r.launchRunning('web-hello', team)));
    assert.ok(runs.every((i) => i.worker !== target), runs.map((i) => i.worker).join(','));
    assert.is((await r.containers()).filter(([w]) => w === target).length, before, 'its instances keep running');
  } finally {
    assert.is((await r.api('POST', `/v1/workers/${target}/uncordon`)).body.state, 'ready');
  }
  for (const inst of runs) await r.api('DELETE', `/v1/instances/${inst.id}`);
  const ids = new Set(runs.map((i) => i.id));
  await eventually('cordon test containers gone', async () => ((await r.containers()).some(([, id]) => ids.has(id)) ? undefined : true));
});

it('drain: its instances continue elsewhere with the same hostnames and expiry, then it ends empty and cordoned', async (r) => {
  const target = r.workers[2]!.host.name;
  const on = (await r.api('GET', '/v1/instances')).body.instances.filter((i: any) => i.worker === target && i.status === 'running');
  assert.ok(on.length > 0, 'something to drain');
  assert.is((await r.api('POST', `/v1/workers/${target}/drain`)).status, 200);
  try {
  for (const inst of on) {
    const moved = await r.waitInstance(inst.id, `moved off ${target}`, (now) => now.status === 'running' && now.worker !== target);
    assert.equal([moved.hostname, moved.expiresAt], [inst.hostname, inst.expiresAt]);
    assert.is(moved.generation, inst.generation + 1, 'a fresh container');
  }
  await settles(r, `${target} empty`, async () => ((await r.containers()).some(([w]) => w === target) ? undefined : true), undefined, target);
  await settles(r, `${target} cordoned`, async () => ((await r.api('GET', '/v1/workers')).body.workers.find((w: any) => w.id === target).state === 'cordoned' ? true : undefined), undefined, target);
  } finally {
    await r.api('POST', `/v1/workers/${target}/uncordon`);
  }
});

it('kill -9 of a worker process deletes nothing; restarted, it converges with zero duplicates', async (r) => {
  const w = r.workers[1]!;
  const before = (await r.containers()).filter(([x]) => x === w.host.name);
  assert.ok(before.length > 0);
  await w.kill('SIGKILL');
  await new Promise((res) => setTimeout(res, 3000));
  assert.equal((await r.containers()).filter(([x]) => x === w.host.name), before, 'its containers keep running');
  await w.start();
  // Two resync periods after it registered again: still the very same containers, no duplicate.
  await new Promise((res) => setTimeout(res, 8000));
  assert.equal((await r.containers()).filter(([x]) => x === w.host.name), before);
});

it('a worker whose engine dies is lost: its instances run elsewhere; back, it removes its stale copies and runs nothing placed elsewhere', async (r) => {
  const w = r.workers[1]!;
  const on = (await r.api('GET', '/v1/instances')).body.instances.filter((i: any) => i.worker === w.host.name && i.status === 'running');
  assert.ok(on.length > 0);
  const { execFileSync } = await import('node:child_process');
  const pid = Number(execFileSync('cat', [w.host.socket.replace(/\.sock$/, '.pid')], { encoding: 'utf8' }).trim());
  process.kill(pid, 'SIGKILL');
  try {
    await eventually(`${w.host.name} lost`, async () => ((await r.api('GET', '/v1/workers')).body.workers.find((x: any) => x.id === w.host.name).state === 'lost' ? true : undefined));
    for (const inst of on) {
      await r.waitInstance(inst.id, `rescheduled off ${w.host.name}`, (now) => now.status === 'running' && now.worker !== w.host.name);
    }
  } finally {
    execFileSync('bash', ['scripts/test-hosts.sh', 'up'], { cwd: process.cwd(), stdio: 'ignore', timeout: 180_000 });
  }
  await eventually(`${w.host.name} ready again`, async () => ((await r.api('GET', '/v1/workers')).body.workers.find((x: any) => x.id === w.host.name).state === 'ready' ? true : undefined), 180_000);
  await eventually('stale copies removed', async () => {
    const ids = new Set(on.map((i: any) => i.id));
    return (await r.containers()).some(([x, id]) => x === w.host.name && ids.has(id)) ? undefined : true;
  }, 180_000);
  const all = await r.containers();
  for (const inst of on) assert.is(all.filter(([, id]) => id === inst.id).length, 1, `${inst.id} runs exactly once`);
});

it('a worker given 2 slots never holds more; the rest wait with E_NO_CAPACITY and start as slots free', async (r) => {
  const w = r.workers[2]!;
  await w.kill('SIGTERM');
  await w.start({ POSEIDON_WORKER_SLOTS: '2', POSEIDON_WORKER_LABELS: 'zone=c' });
  await eventually('slots visible', async () => ((await r.api('GET', '/v1/workers')).body.workers.find((x: any) => x.id === w.host.name)?.slots === 2 ? true : undefined));
  // The worker already holds instances (slots count them): free it first by draining, then take zoned ones.
  await r.api('POST', `/v1/workers/${w.host.name}/drain`);
  await eventually(`${w.host.name} empty`, async () => ((await r.containers()).some(([x]) => x === w.host.name) ? undefined : true), 180_000);
  await r.api('POST', `/v1/workers/${w.host.name}/uncordon`);
  const ids: string[] = [];
  for (const team of ['z1', 'z2', 'z3', 'z4']) ids.push((await r.api('POST', '/v1/instances', { challenge: 'zoned', team })).body.id);
  await settles(r, 'two running', async () => {
    const states = await Promise.all(ids.map(async (id) => (await r.api('GET', `/v1/instances/${id}`)).body));
    return states.filter((s) => s.status === 'running').length === 2 ? states : undefined;
  });
  const waiting = await eventually('two waiting with the reason', async () => {
    const states = await Promise.all(ids.map(async (id) => (await r.api('GET', `/v1/instances/${id}`)).body));
    const pending = states.filter((s) => s.status === 'pending' && /^E_NO_CAPACITY: no worker fits/.test(s.reason ?? ''));
    return pending.length === 2 ? pending : undefined;
  });
  assert.match(waiting[0].reason, /full/);
  assert.is((await r.containers()).filter(([x]) => x === w.host.name).length, 2);
  const running = (await Promise.all(ids.map(async (id) => (await r.api('GET', `/v1/instances/${id}`)).body))).filter((s) => s.status === 'running');
  await r.api('DELETE', `/v1/instances/${running[0].id}`);
  await eventually('a waiting one took the slot', async () => {
    const states = await Promise.all(ids.map(async (id) => (await r.api('GET', `/v1/instances/${id}`)).body));
    return states.filter((s) => s.status === 'running').length === 2 && states.filter((s) => s.status === 'pending').length === 1 ? true : undefined;
  });
  assert.ok((await r.containers()).filter(([x]) => x === w.host.name).length <= 2);
  for (const id of ids) await r.api('DELETE', `/v1/instances/${id}`);
});

it('a challenge change pushed to git is built once, pulled by every worker, and launchable before the last one has it', async (r) => {
  const late = r.workers[2]!;
  await late.kill('SIGTERM');
  r.git.write('challenges/web-hello/www/extra.html', `changed ${Date.now()}\n`);
  const revision = r.git.push('web-hello changes');
  const synced = await r.api('POST', '/v1/sync', {});
  assert.is(synced.body.revision, revision);
  const entry = await eventually('new version ready', async () => {
    const c = (await r.api('GET', '/v1/catalog/web-hello')).body;
    return c.state === 'ready' && c.revision === revision ? c : undefined;
  }, 240_000);
  const inst = await r.launchRunning('web-hello', 'after-push');
  assert.ok(inst.worker !== late.host.name, 'placed only where the image is');
  await late.start();
  await eventually(`${late.host.name} pulled it`, async () => {
    const w = (await r.api('GET', '/v1/workers')).body.workers.find((x: any) => x.id === late.host.name);
    return w?.images[entry.image]?.state === 'present' ? true : undefined;
  }, 240_000);
  const builds = r.manager.logs().split('\n').filter((l) => l.includes('"building image"') && l.includes(entry.image));
  assert.is(builds.length, 1, 'built once, on the manager\'s builder');
  assert.ok(entry.image.startsWith(r.registry), entry.image);
});

it('two managers racing on one Redis never place one instance twice', async (r) => {
  const second = await r.startManager();
  const apis = [r.api, apiClient(second.url, KEY)];
  const ids = (await Promise.all(Array.from({ length: 20 }, (_, i) => apis[i % 2]!('POST', '/v1/instances', { challenge: 'two-ports', team: `race${i}` })))).map((x) => x.body.id);
  // The first manager holds the manager lease and places everything, whichever API took the launch.
  for (const id of ids) {
    await r.waitInstance(id, 'running', (i) => i.status === 'running', 240_000).catch(async (err: Error) => {
      const logs = second.logs().split('\n').filter((l) => l.includes(id) || /"level":(40|50)/.test(l)).slice(-12).join('\n');
      // The fleet first: a long message is cut at the end.
      const [headline, ...details] = err.message.split('\n');
      throw new Error(`${headline}\n${await fleetState(r).catch((e: Error) => e.message)}\n${details.join('\n')}\nsecond manager:\n${logs}`);
    });
  }
  const all = await r.containers();
  for (const id of ids) {
    const copies = all.filter(([, i]) => i === id);
    const inst = (await r.api('GET', `/v1/instances/${id}`)).body;
    assert.equal(copies.map(([w]) => w), [inst.worker], `${id}: one container, on its worker`);
  }
  await second.stop();
});

t.run();
