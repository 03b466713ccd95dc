import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { planContainer, planNetwork } from '../../src/core/container-plan.ts';
import { DockerRuntime, parseEvent } from '../../src/runtime/docker.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, exec, fetchFromProbe, startProbe, TEST_LABEL, testManagerId } from '../helpers/docker.ts';
import { makeInstance, makeSpec } from '../helpers/specs.ts';

const t = suite('docker runtime (real engine)');
const enabled = haveDocker();
const mgr = testManagerId();
const owner = { managerId: mgr, deployment: `d${mgr.slice(-8)}` };
const rt = new DockerRuntime(owner);
const inst = makeInstance({ id: `${mgr.slice(-8)}0000000000000000` });
const spec = makeSpec({ command: ['sh', '-c', 'mkdir -p /tmp/w; echo backend-ok > /tmp/w/index.html; echo "$FLAG" > /tmp/f; exec httpd -f -p 8080 -h /tmp/w'], resources: { cpu: 0.25, memoryBytes: 32 << 20, pids: 16 } });
let plan = planContainer(inst, spec, { owner, image: 'busybox:1.35', flag: 'flag{abc}', publishAddress: '' });

t.after(async () => { if (enabled) await cleanupByLabel(mgr); });

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('networks are created once, labelled, and internal', async () => {
  const np = planNetwork(inst, spec, owner, false);
  // Docker's CheckDuplicate is racy: concurrent creates may duplicate, and ensureNetwork converges.
  const ids = await Promise.all([rt.ensureNetwork(np), rt.ensureNetwork(np), rt.ensureNetwork(np)]);
  const nets = await rt.listNetworks(inst.id);
  assert.is(nets.length, 1);
  assert.is(await rt.ensureNetwork(np), nets[0]!.id);
  assert.ok(ids.includes(nets[0]!.id));
  plan = { ...plan, network: nets[0]!.id };
  const info = await docker.getNetwork(nets[0]!.id).inspect();
  assert.ok(info.Internal);
  assert.is(info.Labels?.['poseidon.instance'], inst.id);
  assert.is(info.Options?.['com.docker.network.bridge.name'], `pz${inst.id.slice(0, 12)}`, 'the host firewall matches pz+');
});

it('a network whose shape no longer matches the plan is replaced, not reused', async () => {
  const other = makeInstance({ id: `${mgr.slice(-8)}2222222222222222` });
  const closed = planNetwork(other, spec, owner, false);
  const first = await rt.ensureNetwork(closed);
  const open = planNetwork(other, makeSpec({ network: { egress: true } }), owner, false);
  const second = await rt.ensureNetwork(open);
  assert.is.not(second, first);
  const nets = await rt.listNetworks(other.id);
  assert.equal(nets.map((n) => [n.id, n.mode]), [[second, `nat/pzg${other.id.slice(0, 12)}`]]);
  assert.is((await docker.getNetwork(second).inspect()).Internal, false);
  await rt.removeNetwork(second);
});

it('a retried create adopts the existing container (deterministic name, 409)', async () => {
  const a = await rt.createContainer(plan);
  const b = await rt.createContainer(plan);
  assert.is(a.id, b.id);
  assert.equal(a, b, 'a fresh create is described from its plan as the listing (the 409 path) shows it');
  assert.is((await rt.listContainers(inst.id)).length, 1);
  assert.is(a.state, 'created');
});

it('containers get the hardening defaults', async () => {
  const [c] = await rt.listContainers(inst.id);
  await rt.startContainer(c!.id);
  await rt.startContainer(c!.id); // already started: not an error
  const info = await docker.getContainer(c!.id).inspect();
  const hc = info.HostConfig;
  assert.equal(hc.CapDrop, ['ALL']);
  assert.equal(hc.SecurityOpt, ['no-new-privileges']);
  assert.is(hc.PidsLimit, 16);
  assert.is(hc.Memory, 32 << 20);
  assert.is(hc.NanoCpus, 250_000_000);
  assert.is(hc.ReadonlyRootfs, true);
  assert.is(hc.Privileged, false);
  assert.is(hc.NetworkMode, plan.network);
  assert.ok(Object.keys(info.NetworkSettings.Networks).includes(plan.name), 'joined the instance network');
  assert.equal(Object.keys(hc.PortBindings ?? {}), []);
  assert.is(info.Config.Labels['poseidon.managed-by'], mgr);
  const ro = await exec(c!.id, ['sh', '-c', 'touch /x 2>&1; echo rc=$?; cat /tmp/f']);
  assert.match(ro.out, /rc=1/);
  assert.match(ro.out, /flag\{abc\}/);
});

it('an instance reaches nothing outside its network, but the gateway reaches it by name', async () => {
  const [c] = await rt.listContainers(inst.id);
  const probe = await startProbe(mgr, `${mgr}-gw`);
  const probeIp = (await docker.getContainer(probe).inspect()).NetworkSettings.Networks[`${mgr}-gw`]?.IPAddress;
  assert.ok(probeIp);
  assert.is((await exec(probe, ['sh', '-c', 'timeout 3 wget -q -O - http://127.0.0.1:8080/'])).out.trim(), 'probe-ok');
  // Traffic stays inside Docker: the instance tries a container on another network, and fails.
  const across = await exec(c!.id, ['sh', '-c', `timeout 3 wget -q -O - http://${probeIp}:8080/; echo rc=$?`]);
  assert.not.match(across.out, /probe-ok/);
  await rt.connect(plan.network, probe);
  await rt.connect(plan.network, probe); // already connected: not an error
  const got = await fetchFromProbe(probe, `${plan.alias}:8080`);
  assert.is(got.out.trim(), 'backend-ok', `stderr: ${got.err} code ${got.code}`);
});

it('connect joins once, by name or id, and joins a gateway recreated under the same name again', async () => {
  const name = `${mgr}-gw`;
  const net = ((await docker.getNetwork(plan.network).inspect()) as { Name: string }).Name;
  const before = await rt.networksOf(name);
  assert.ok(before.includes(net), `joined by the case before: ${JSON.stringify(before)}`);
  await rt.connect(plan.network, name); // by name, already there
  assert.equal(await rt.networksOf(name), before, 'no second endpoint');
  // Recreated under the same name: the new container is on none of the old one's networks.
  await docker.getContainer(name).remove({ force: true });
  await docker.createContainer({ name, Image: 'busybox:1.35', Cmd: ['sleep', '3600'], Labels: { [TEST_LABEL]: mgr }, HostConfig: { NetworkMode: name } }).then((c) => c.start());
  assert.not.ok((await rt.networksOf(name)).includes(net));
  await rt.connect(plan.network, name);
  const joined = await rt.networksOf(name);
  assert.ok(joined.includes(net), 'joined again');
  // By id (full and a 12-character prefix), already there: nothing changes.
  const id = ((await docker.getContainer(name).inspect()) as { Id: string }).Id;
  await rt.connect(plan.network, id);
  await rt.connect(plan.network, id.slice(0, 12));
  assert.equal(await rt.networksOf(name), joined, 'no second endpoint by id');
  const missing = await rt.connect(`${mgr}-no-such-network`, name).then(() => undefined, (err: Error) => err);
  assert.match(missing?.message ?? 'no error', `${mgr}-no-such-network`);
});

it('removal is idempotent and takes the network even with the gateway attached', async () => {
  const [c] = await rt.listContainers(inst.id);
  await rt.removeContainer(c!.id);
  await rt.removeContainer(c!.id);
  await rt.removeNetwork(plan.network);
  await rt.removeNetwork(plan.network);
  assert.equal(await rt.listContainers(inst.id), []);
  assert.equal(await rt.listNetworks(inst.id), []);
});

it('builds an image from a context and reports build failures with output', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-build-'));
  try {
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox:1.35\nCOPY hello /hello\n');
    writeFileSync(path.join(dir, 'hello'), 'hi\n');
    const tag = `${mgr}/ok:1`;
    await rt.buildImage(dir, 'Dockerfile', tag, { 'poseidon.test': mgr });
    assert.ok(await rt.imageExists(tag));
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox:1.35\nRUN exit 3\n');
    try {
      await rt.buildImage(dir, 'Dockerfile', `${mgr}/bad:1`, { 'poseidon.test': mgr });
      assert.unreachable('build should fail');
    } catch (err) {
      assert.match((err as Error).message, /exit 3|returned a non-zero code/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('runtime gvisor runs the container under runsc with the same hardening', async () => {
  const gInst = makeInstance({ id: `${mgr.slice(-8)}1111111111111111` });
  const gSpec = makeSpec({ runtime: 'gvisor', command: ['sh', '-c', 'cat /proc/version; exec sleep 600'] });
  const net = await rt.ensureNetwork(planNetwork(gInst, gSpec, owner, false));
  const gPlan = { ...planContainer(gInst, gSpec, { owner, image: 'busybox:1.35', flag: 'f', publishAddress: '' }), network: net };
  const c = await rt.createContainer(gPlan);
  await rt.startContainer(c.id);
  const info = await docker.getContainer(c.id).inspect();
  assert.is(info.HostConfig.Runtime, 'runsc');
  assert.ok(info.State.Running);
  assert.equal(info.HostConfig.CapDrop, ['ALL']);
  assert.ok(info.HostConfig.ReadonlyRootfs);
  // gVisor reports its own kernel, not the host's.
  const version = await exec(c.id, ['cat', '/proc/version']);
  assert.match(version.out, /Linux version 4\.4\.0/, `${version.out} ${version.err}`);
  await rt.removeContainer(c.id);
  await rt.removeNetwork(net);
});

it('engine events about managed objects reach the watcher', async () => {
  const seen = new Set<string>();
  const ac = new AbortController();
  rt.watchEvents((ev) => seen.add(ev.instance), ac.signal);
  await sleep(300);
  const c = await rt.createContainer(plan);
  await rt.removeContainer(c.id);
  for (let i = 0; i < 400 && !seen.has(inst.id); i++) await sleep(50);
  ac.abort();
  assert.ok(seen.has(inst.id));
});

it('objects of another deployment, or with a malformed instance label, are never listed (nor removable through us)', async () => {
  const labels = (instance: string, deployment: string) => ({ 'poseidon.managed-by': mgr, 'poseidon.deployment': deployment, 'poseidon.instance': instance, [TEST_LABEL]: mgr });
  const foreign = `${mgr.slice(-8)}3333333333333333`;
  const make = (name: string, l: Record<string, string>) => docker.createContainer({ name, Image: 'busybox:1.35', Cmd: ['true'], Labels: l });
  await make(`${mgr}-other-dep`, labels(foreign, 'd-staging'));
  await make(`${mgr}-evil`, labels('../../victim', owner.deployment));
  await make(`${mgr}-ours`, labels(foreign, owner.deployment));
  const listed = await rt.listContainers();
  assert.equal(listed.map((c) => c.name).sort(), [`${mgr}-ours`], 'another deployment and a hostile label are invisible');
  assert.equal(await rt.listContainers('../../victim'), []);
  const staging = new DockerRuntime({ managerId: mgr, deployment: 'd-staging' });
  assert.equal((await staging.listContainers()).map((c) => c.name), [`${mgr}-other-dep`]);
});

it('a malformed event line is skipped, never thrown', async () => {
  assert.is(parseEvent('{"Action":"start"'), undefined);
  assert.is(parseEvent('null'), undefined);
  assert.is(parseEvent('[1,2]'), undefined);
  assert.equal(parseEvent('{"Action":"die","Actor":{"Attributes":{}}}'), { Action: 'die', Actor: { Attributes: {} } });
});

it('image facts: VOLUME paths and user, from the image', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-vol-'));
  try {
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox:1.35\nVOLUME ["/data", "/var/cache/app"]\nUSER 1234:1234\n');
    const tag = `${mgr}/vol:1`;
    await rt.buildImage(dir, 'Dockerfile', tag, { 'poseidon.test': mgr });
    assert.equal(await rt.imageFacts(tag), { volumes: ['/data', '/var/cache/app'], user: '1234:1234' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('builds have no network unless the challenge asks for one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-buildnet-'));
  try {
    // A build step that lists its network interfaces: with no network, only lo exists.
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox:1.35\nRUN ls /sys/class/net > /nets\n');
    await rt.buildImage(dir, 'Dockerfile', `${mgr}/nonet:1`, { 'poseidon.test': mgr });
    // Another step text: Docker's build cache does not key on the network mode.
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox:1.35\nRUN ls /sys/class/net > /nets && echo with-network\n');
    await rt.buildImage(dir, 'Dockerfile', `${mgr}/net:1`, { 'poseidon.test': mgr }, { network: true });
    const nets = async (tag: string) => {
      const c = await docker.createContainer({ Image: tag, Cmd: ['cat', '/nets'], Labels: { [TEST_LABEL]: mgr } });
      await c.start();
      await c.wait();
      const logs = (await c.logs({ stdout: true })).toString('utf8');
      await c.remove({ force: true });
      return logs.replace(/[^a-z0-9\n]/g, '').split('\n').filter(Boolean).sort();
    };
    assert.equal(await nets(`${mgr}/nonet:1`), ['lo'], 'no interface but loopback: no metadata service, no LAN');
    assert.ok((await nets(`${mgr}/net:1`)).includes('eth0'), 'network: true gives the build a network');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.run();
