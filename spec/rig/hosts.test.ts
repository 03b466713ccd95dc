/**
 * Proves the multi-host test rig (scripts/test-hosts.sh) for real: separate engines with their
 * own address pools, namespace addresses the host reaches, one registry all engines pull from,
 * and gVisor on w1 only. Traffic goes only to the rig's own host addresses (10.250.0.x) or stays
 * inside Docker; never from the host to a container address.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TEST_LABEL, docker as hostDocker } from '../helpers/docker.ts';
import { type TestHost, type TestHosts, dockerFor, inNamespace, testHosts } from '../helpers/hosts.ts';

const run = promisify(execFile);
const t = suite('multi-host rig (real engines, namespaces, registry)');
const id = `rig-${randomBytes(4).toString('hex')}`;
const marker = randomBytes(8).toString('hex');
let pushedTag: string | undefined;

const it = (name: string, fn: (rig: TestHosts) => Promise<void>) =>
  t(name, async () => {
    const rig = testHosts();
    if (rig) await fn(rig);
  });

/** Runs `cmd` in a labelled busybox-based container on `d`; returns its output once it exits. */
async function runOnce(d: Docker, image: string, cmd: string[], extra: Docker.HostConfig = {}): Promise<{ out: string; code: number }> {
  const c = await d.createContainer({ Image: image, Cmd: cmd, Labels: { [TEST_LABEL]: id }, HostConfig: extra });
  await c.start();
  const { StatusCode } = (await c.wait()) as { StatusCode: number };
  const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
  return { out: demuxText(logs), code: StatusCode };
}

function demuxText(buf: Buffer): string {
  let s = '';
  for (let i = 0; i + 8 <= buf.length;) {
    const len = buf.readUInt32BE(i + 4);
    s += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  return s;
}

function pull(d: Docker, ref: string): Promise<void> {
  return new Promise((resolve, reject) => {
    d.pull(ref, (err: Error | null, stream: NodeJS.ReadableStream) => {
      if (err) return reject(err);
      d.modem.followProgress(stream, (e: Error | null, out: Array<{ error?: string }>) => {
        const failed = out?.find((o) => o.error);
        if (e || failed) reject(e ?? new Error(failed!.error));
        else resolve();
      });
    });
  });
}

/** Starts a one-shot TCP greeter inside `host`'s namespace on its own address; resolves once it listens. */
async function greeterIn(host: TestHost, port: number): Promise<() => void> {
  const code = `require('net').createServer((s) => s.end('hello from ${host.name}\\n'))` +
    `.listen(${port}, '${host.address}', () => console.log('listening'))`;
  const child = inNamespace(host, process.execPath, ['-e', code]);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`greeter in ${host.netns} did not start: ${err}`)), 5000);
    child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    child.stdout!.on('data', (c: Buffer) => { if (c.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (c) => { clearTimeout(timer); reject(new Error(`greeter in ${host.netns} exited ${c}: ${err}`)); });
  });
  return () => child.kill('SIGKILL');
}

function dial(address: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: address, port, timeout: 3000 });
    let data = '';
    s.on('data', (c) => { data += c.toString(); });
    s.on('end', () => resolve(data));
    s.on('timeout', () => { s.destroy(); reject(new Error(`timeout dialling ${address}:${port}`)); });
    s.on('error', reject);
  });
}

t.after(async () => {
  const rig = testHosts();
  if (!rig) return;
  for (const d of [hostDocker, ...rig.hosts.map(dockerFor)]) {
    for (const c of await d.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${id}`] } })) {
      await d.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
    }
    if (pushedTag) await d.getImage(pushedTag).remove({ force: true }).catch(() => undefined);
    for (const i of await d.listImages({ filters: { label: [`${TEST_LABEL}=${id}`] } })) {
      await d.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    }
  }
  // Registry content may stay; the tag's manifest goes (the rig's registry allows deletes).
  if (pushedTag) {
    const [repo, tag] = pushedTag.slice(rig.registry.length + 1).split(':') as [string, string];
    const base = `http://${rig.registry}/v2/${repo}/manifests`;
    const head = await fetch(`${base}/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } }).catch(() => undefined);
    const digest = head?.headers.get('docker-content-digest');
    if (digest) await fetch(`${base}/${digest}`, { method: 'DELETE' }).catch(() => undefined);
  }
});

it('the rig describes N >= 3 hosts with distinct addresses, sockets, namespaces and pools', async (rig) => {
  assert.ok(rig.hosts.length >= 3, `at least 3 hosts (got ${rig.hosts.length})`);
  assert.is(rig.hostAddress, '10.250.0.1');
  assert.is(rig.registry, '10.250.0.1:5000');
  rig.hosts.forEach((h, i) => {
    assert.is(h.name, `w${i + 1}`);
    assert.is(h.address, `10.250.0.1${i + 1}`);
    assert.is(h.netns, `pt-w${i + 1}`);
    assert.is(h.pool, `10.22${i + 1}.0.0/16`);
  });
  for (const k of ['address', 'socket', 'netns', 'pool'] as const) {
    assert.is(new Set(rig.hosts.map((h) => h[k])).size, rig.hosts.length, `distinct ${k}`);
  }
});

it('each engine answers info as a separate engine with its own address pool and host name', async (rig) => {
  const hostId = (await hostDocker.info()).ID as string;
  const ids = new Set<string>([hostId]);
  for (const h of rig.hosts) {
    const info = await dockerFor(h).info();
    ids.add(info.ID);
    assert.is(info.Name, h.hostname);
    assert.equal(info.DefaultAddressPools, [{ Base: h.pool, Size: 24 }]);
    assert.ok(info.RegistryConfig.IndexConfigs[rig.registry], `${h.name} knows the registry`);
    assert.is(info.RegistryConfig.IndexConfigs[rig.registry].Secure, false);
    const bridge = await dockerFor(h).getNetwork('bridge').inspect();
    assert.is(bridge.IPAM?.Config?.[0]?.Subnet, h.pool.replace('.0.0/16', '.0.0/24'));
  }
  assert.is(ids.size, rig.hosts.length + 1, 'every engine (and the host engine) has its own ID');
});

it('a container on engine 2 gets an address from 10.222.x and reaches the host side of the bridge', async (rig) => {
  const w2 = rig.hosts[1]!;
  // From inside Docker on w2 (never host -> container): the registry answers on the host's address.
  // (nc, not wget: the static busybox's wget crashes here, exit 139.)
  const [addr, port] = rig.registry.split(':') as [string, string];
  // The container prints its own address first: inspected after a command this short, an exited
  // container may already have lost it.
  const r = await runOnce(dockerFor(w2), 'busybox:1.35', ['sh', '-c', `hostname -i; printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc ${addr} ${port}`]);
  assert.is(r.code, 0, r.out);
  const [ip = '', ...reply] = r.out.split('\n');
  const out = reply.join('\n');
  assert.match(ip.trim(), /^10\.222\.\d+\.\d+$/);
  assert.match(out, /^HTTP\/1\.[01] 200 /);
  assert.match(out, /Docker-Distribution-Api-Version: registry\/2\.0/);
  // The container is not on the host engine.
  assert.is((await hostDocker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${id}`] } })).length, 0);
});

it('the host reaches each namespace address, and namespaces reach each other across the bridge', async (rig) => {
  const port = 17000 + Math.floor(Math.random() * 2000);
  const stops: Array<() => void> = [];
  try {
    for (const h of rig.hosts) stops.push(await greeterIn(h, port));
    for (const h of rig.hosts) assert.is(await dial(h.address, port), `hello from ${h.name}\n`);
    // w1 -> w2: bridged between namespaces (this crosses the host's FORWARD chain).
    const [w1, w2] = rig.hosts as [TestHost, TestHost];
    const client = inNamespace(w1, process.execPath, ['-e',
      `setTimeout(() => { console.error('timeout'); process.exit(2); }, 5000).unref();` +
      `require('net').connect(${port}, '${w2.address}').on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.error(e.message); process.exit(1); })`]);
    let out = '';
    client.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    const code = await new Promise<number | null>((resolve) => client.on('exit', resolve));
    assert.is(code, 0);
    assert.is(out, `hello from ${w2.name}\n`);
  } finally {
    for (const stop of stops) stop();
  }
});

it('an image built on the host engine is pushed to the registry and pulled by every engine', async (rig) => {
  const tag = `${rig.registry}/poseidon-test/${id}:1`;
  const build = run('docker', ['build', '-q', '-t', tag, '--label', `${TEST_LABEL}=${id}`, '-'], { timeout: 60_000 });
  build.child.stdin!.end(`FROM busybox:1.35\nRUN echo ${marker} > /marker\n`);
  await build;
  pushedTag = tag;
  await run('docker', ['push', tag], { timeout: 60_000 });
  const hostImageId = (await hostDocker.getImage(tag).inspect()).Id;
  await Promise.all(rig.hosts.map((h) => pull(dockerFor(h), tag)));
  for (const h of rig.hosts) {
    const d = dockerFor(h);
    assert.is((await d.getImage(tag).inspect()).Id, hostImageId, `${h.name} has the same image`);
    const r = await runOnce(d, tag, ['cat', '/marker']);
    assert.is(r.code, 0);
    assert.is(r.out.trim(), marker);
  }
});

it('gVisor (runsc) is offered by w1 only, and runs a container there', async (rig) => {
  const [w1, ...rest] = rig.hosts as [TestHost, ...TestHost[]];
  assert.ok(Object.keys((await dockerFor(w1).info()).Runtimes).includes('runsc'), 'w1 offers runsc');
  assert.ok(w1.runtimes.includes('runsc'), 'hosts.env lists runsc on w1');
  for (const h of rest) {
    assert.not.ok(Object.keys((await dockerFor(h).info()).Runtimes).includes('runsc'), `${h.name} does not offer runsc`);
    assert.not.ok(h.runtimes.includes('runsc'));
  }
  const r = await runOnce(dockerFor(w1), 'busybox:1.35', ['sh', '-c', 'busybox dmesg | head -3; echo in-gvisor'], { Runtime: 'runsc' });
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /gVisor/);
  assert.match(r.out, /in-gvisor/);
});

t.run();
