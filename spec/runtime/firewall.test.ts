/**
 * Host firewall (issue 8) against the real engine and real iptables. Every probe runs inside a
 * container; the host only talks to 127.0.0.1 published ports. Run alone:
 *   node --import tsx node_modules/uvu/bin.js spec 'runtime/firewall'
 * The test uses its own bridge prefix (`tfw<hex>`) and chain prefix, outside Poseidon's `pz`: a
 * Poseidon firewall on the same host (`poseidon serve` as root installs it with the default
 * POSEIDON_FIREWALL=auto and leaves it when it stops; suites run before this one in `npm test` do
 * that) must neither be touched nor apply to the test's bridges. Under `pz`, its drops (its egress
 * prefix is `pzg`, it allows no host port) and, while a Poseidon process re-ensures it, its jumps
 * moved above ours would decide the probes instead of the rules under test.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FirewallCodes, HostFirewall, assess, canonicalCidr, parseTable, planFirewall, removal, type FirewallOptions } from '../../src/runtime/firewall.ts';
import { CI, ROOT, haveDocker } from '../helpers/deps.ts';
import { TEST_LABEL, cleanupByLabel, docker, exec, testManagerId } from '../helpers/docker.ts';

const pure = suite('host firewall plan (pure)');

pure('options are validated: a prefix that could match host interfaces, bad ports, bad CIDRs are refused', () => {
  const bad: [string, object][] = [
    ['one letter', { bridgePrefix: 'p' }], ['matches eth0', { bridgePrefix: 'et' }], ['matches docker0', { bridgePrefix: 'docker' }],
    ['matches veth', { bridgePrefix: 've' }], ['uppercase', { bridgePrefix: 'PZ' }], ['shell chars', { bridgePrefix: 'pz;x' }],
    ['wildcard', { bridgePrefix: 'pz+' }], ['too long', { bridgePrefix: 'pzabcdefghi' }],
    ['egress prefix not extending', { bridgePrefix: 'pz', egressBridgePrefix: 'qzg' }], ['egress = prefix', { bridgePrefix: 'pz', egressBridgePrefix: 'pz' }],
    ['port 0', { bridgePrefix: 'pz', allowHostPorts: [0] }], ['port 65536', { bridgePrefix: 'pz', allowHostPorts: [65536] }],
    ['port 1.5', { bridgePrefix: 'pz', allowHostPorts: [1.5] }], ['CIDR /33', { bridgePrefix: 'pz', denyDestinations: ['1.2.3.4/33'] }],
    ['IPv6 CIDR', { bridgePrefix: 'pz', denyDestinations: ['fd00::/8'] }], ['octet 300', { bridgePrefix: 'pz', denyDestinations: ['300.1.1.1'] }],
    ['chain prefix with space', { bridgePrefix: 'pz', chainPrefix: 'A B' }],
  ];
  for (const [why, o] of bad) assert.throws(() => planFirewall(o as { bridgePrefix: string }), /firewall:/, why);
  assert.is(canonicalCidr('192.0.2.7/24'), '192.0.2.0/24');
  assert.is(canonicalCidr('10.1.2.3'), '10.1.2.3/32');
  assert.is(canonicalCidr('0.0.0.0/0'), '0.0.0.0/0');
});

pure('the plan: same-bridge and replies first, then instance bridges, metadata, LAN; egress last; IPv6 routes nothing', () => {
  const [v4, v6] = planFirewall({ bridgePrefix: 'pz', egressBridgePrefix: 'pzg', allowHostPorts: [53, 53], denyDestinations: ['192.0.2.9/24'] });
  assert.equal(v4!.jumps, [{ hook: 'INPUT', rule: '-i pz+ -j POSEIDON-INPUT' }, { hook: 'DOCKER-USER', rule: '-i pz+ -j POSEIDON-ISOLATION' }]);
  assert.equal(v6!.jumps.map((j) => j.hook), ['INPUT', 'FORWARD']);
  assert.equal(v4!.chains[0]!.rules, ['-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN', '-p tcp -m tcp --dport 53 -j RETURN', '-p udp -m udp --dport 53 -j RETURN', '-j DROP']);
  const fwd = v4!.chains[1]!.rules;
  assert.equal(fwd.slice(0, 4), ['-m physdev --physdev-is-bridged -j RETURN', '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN', '-o pz+ -j DROP', '-d 169.254.169.254/32 -j DROP']);
  assert.ok(fwd.includes('-d 10.0.0.0/8 -j DROP') && fwd.includes('-d 100.64.0.0/10 -j DROP') && fwd.includes('-d 192.0.2.0/24 -j DROP'));
  assert.equal(fwd.slice(-2), ['-i pzg+ -j RETURN', '-j DROP']);
  assert.not.ok(planFirewall({ bridgePrefix: 'pz' })[0]!.chains[1]!.rules.includes('-j DROP'), 'no egress prefix: public left to Docker');
  assert.equal(v6!.chains[1]!.rules.at(-1), '-j DROP');
});

pure('assess: what ensure() would change in a given ruleset, and what it cannot fix', () => {
  const [v4] = planFirewall({ bridgePrefix: 'pz' });
  const full = ['-P INPUT ACCEPT', '-P FORWARD DROP', '-N DOCKER-USER', '-N POSEIDON-INPUT', '-N POSEIDON-ISOLATION', '-A FORWARD -j DOCKER-USER',
    ...v4!.chains.flatMap((c) => c.rules.map((r) => `-A ${c.name} ${r}`))];
  const cases: [string, string[], string[], string[]][] = [
    ['all in place', [...full, '-A INPUT -i pz+ -j POSEIDON-INPUT', '-A DOCKER-USER -i pz+ -j POSEIDON-ISOLATION', '-A DOCKER-USER -j RETURN'], [], []],
    ['jump below another rule', [...full, '-A INPUT -i lo -j ACCEPT', '-A INPUT -i pz+ -j POSEIDON-INPUT', '-A DOCKER-USER -i pz+ -j POSEIDON-ISOLATION'],
      ['ipv4: moved to the top jump INPUT -i pz+ -j POSEIDON-INPUT'], []],
    ['duplicate jump, stale prefix', [...full, '-A INPUT -i pz+ -j POSEIDON-INPUT', '-A INPUT -i pz+ -j POSEIDON-INPUT', '-A INPUT -i old+ -j POSEIDON-INPUT', '-A DOCKER-USER -i pz+ -j POSEIDON-ISOLATION'],
      ['ipv4: removed stale jump INPUT -i old+ -j POSEIDON-INPUT', 'ipv4: collapsed 2 copies of jump INPUT -i pz+ -j POSEIDON-INPUT'], []],
    ['another install\'s jump above, prefix disjoint from ours: left there', [...full, '-A INPUT -i qa+ -j OTHER-INPUT', '-A INPUT -i pz+ -j POSEIDON-INPUT',
      '-A DOCKER-USER -i pza1+ -j X-ISOLATION', '-A DOCKER-USER -i pz+ -j POSEIDON-ISOLATION'], ['ipv4: moved to the top jump DOCKER-USER -i pz+ -j POSEIDON-ISOLATION'], []],
    ['a jump above whose prefix covers ours: moved', [...full, '-A INPUT -i p+ -j OTHER-INPUT', '-A INPUT -i pz+ -j POSEIDON-INPUT', '-A DOCKER-USER -i pz+ -j POSEIDON-ISOLATION'],
      ['ipv4: moved to the top jump INPUT -i pz+ -j POSEIDON-INPUT'], []],
    ['no DOCKER-USER', ['-P INPUT ACCEPT', '-P FORWARD DROP'], ['ipv4: created chain POSEIDON-INPUT', 'ipv4: created chain POSEIDON-ISOLATION', 'ipv4: added jump INPUT -i pz+ -j POSEIDON-INPUT'],
      ['ipv4: chain DOCKER-USER is missing (is dockerd running with iptables enabled?)']],
  ];
  for (const [why, ruleset, changes, blocked] of cases) {
    const a = assess(v4!, parseTable(ruleset.join('\n')));
    assert.equal(a.changes, changes, why);
    assert.equal(a.blocked, blocked, why);
  }
  // Foreign rules are never touched: removal lists only our jumps and chains.
  const r = removal(v4!, parseTable([...full, '-A INPUT -i pz+ -j POSEIDON-INPUT', '-A INPUT -i pz+ -j ACCEPT', '-A DOCKER-USER -j RETURN'].join('\n')));
  assert.equal(r.lines, ['-D INPUT -i pz+ -j POSEIDON-INPUT', '-F POSEIDON-INPUT', '-X POSEIDON-INPUT', '-F POSEIDON-ISOLATION', '-X POSEIDON-ISOLATION']);
});

pure.run();

const t = suite('host firewall (real iptables, probes from inside containers)');

function haveIptables(): boolean {
  let ok = process.getuid?.() === 0;
  try { if (ok) execFileSync('iptables', ['-w', '10', '-S', 'DOCKER-USER'], { stdio: 'ignore', timeout: 15_000 }); } catch { ok = false; }
  if (ok) return true;
  // Same contract as spec/helpers/deps.ts: fail under CI, say so loudly otherwise.
  if (CI) throw new Error('root with iptables and Docker\'s DOCKER-USER chain is required under CI=true');
  console.warn('\n  !! SKIPPED: host firewall test needs root, iptables and a running dockerd\n');
  return false;
}

const enabled = haveDocker() && haveIptables();
const mgr = testManagerId();
const hex = randomBytes(3).toString('hex').slice(0, 5);
const P = `tfw${hex}`; // bridges: P+'i' instance, P+'o' other instance, P+'r' routed (no NAT), P+'g' egress
const CHAINS = `TFW${hex.toUpperCase()}`;
const lines: { level: string; msg: string; obj: object }[] = [];
const log = { info: (obj: object, msg: string) => { lines.push({ level: 'info', msg, obj }); }, warn: (obj: object, msg: string) => { lines.push({ level: 'warn', msg, obj }); } };
const servers: net.Server[] = [];
const w: { ip: Record<string, string>; gw: Record<string, string>; ports: Record<string, number>; lan?: string; fw?: HostFirewall; opts?: FirewallOptions } = { ip: {}, gw: {}, ports: {} };

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

// ---------- helpers ----------
async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 1000; i++) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: 60_000 }, (e, out, err) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${err || e.message}`)) : resolve(out))));
}

async function network(name: string, kind: 'internal' | 'routed' | 'nat'): Promise<void> {
  const Options: Record<string, string> = { 'com.docker.network.bridge.name': name };
  if (kind === 'routed') Options['com.docker.network.bridge.enable_ip_masquerade'] = 'false';
  await docker.createNetwork({ Name: name, Internal: kind === 'internal', Labels: { [TEST_LABEL]: mgr }, Options, CheckDuplicate: true });
  const gw: unknown = (await docker.getNetwork(name).inspect())?.IPAM?.Config?.[0]?.Gateway;
  assert.type(gw, 'string', `${name} has a gateway`);
  w.gw[name] = gw as string;
}

async function container(name: string, net: string, body: string, publish = false): Promise<string> {
  const c = await docker.createContainer({
    name, Image: 'busybox:1.35', Labels: { [TEST_LABEL]: mgr }, ExposedPorts: { '8080/tcp': {} },
    Cmd: ['sh', '-c', `mkdir -p /tmp/w; echo ${body} > /tmp/w/index.html; httpd -p 8080 -h /tmp/w; exec sleep 3600`],
    HostConfig: { NetworkMode: net, ...(publish ? { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }, { HostIp: '0.0.0.0', HostPort: '' }] } } : {}) },
  });
  await c.start();
  const info = await c.inspect();
  w.ip[name] = info.NetworkSettings.Networks[net]!.IPAddress;
  await waitFor(`${name} httpd`, async () => ((await exec(c.id, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'])).out.includes(body) ? true : undefined));
  return c.id;
}

function hostServer(host: string, banner: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer((sock) => sock.end(`${banner}\n`)).on('error', reject);
    servers.push(s);
    s.listen(0, host, () => resolve((s.address() as net.AddressInfo).port));
  });
}

type Outcome = 'open' | 'refused' | 'unreachable' | 'no answer';
/** TCP connect from inside `ctr` (no payload sent): what came back. */
async function probe(ctr: string, ip: string, port: number): Promise<string> {
  const r = await exec(ctr, ['sh', '-c', 'timeout 4 nc "$1" "$2" </dev/null 2>&1; echo "rc=$?"', 'sh', ip, String(port)]);
  const text = r.out.trim();
  const outcome: Outcome = /rc=0$/.test(text) ? 'open' : /refused/.test(text) ? 'refused' : /unreachable/i.test(text) ? 'unreachable' : 'no answer';
  const banner = text.replace(/rc=\d+$/, '').trim();
  return outcome === 'open' && banner ? `open (${banner})` : outcome;
}

/** Packet counters of every rule in `chain`, keyed by the rule as `iptables -S` prints it. */
async function counters(chain: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (const l of (await sh('iptables', ['-w', '30', '-v', '-S', chain])).split('\n')) {
    const x = /^-A \S+ (.*?) ?-c (\d+) \d+(.*)$/.exec(l);
    if (x) m.set(`${x[1]}${x[3]}`.trim(), Number(x[2]));
  }
  return m;
}
const delta = (a: Map<string, number>, b: Map<string, number>, rule: string) => (b.get(rule) ?? 0) - (a.get(rule) ?? 0);
const sum = (m: Map<string, number>, pred: (r: string) => boolean) => [...m].filter(([r]) => pred(r)).reduce((s, [, n]) => s + n, 0);

/** The host's resolv.conf nameservers in ranges the firewall blocks: Docker's DNS forwards to them. */
function privateResolvers(): string[] {
  const all = readFileSync('/etc/resolv.conf', 'utf8').split('\n').map((l) => /^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1]);
  return all.filter((ip): ip is string => !!ip && /^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|169\.254\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.)/.test(ip));
}

async function gatewayFetch(gw: string, target: string): Promise<string> {
  const script = 'ip=$(nslookup "$1" 127.0.0.11 | sed -n "s/^Address: *\\([0-9.]*\\)$/\\1/p" | tail -1); [ -n "$ip" ] || exit 9; timeout 5 wget -q -O - "http://$ip:8080/"';
  return (await exec(gw, ['sh', '-c', script, 'sh', target])).out.trim();
}

async function hostFetch(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(10_000) });
  return (await res.text()).trim();
}

async function jumpCount(family: 'iptables' | 'ip6tables', hook: string, chain: string): Promise<number> {
  return (await sh(family, ['-w', '30', '-S', hook])).split('\n').filter((l) => l === `-A ${hook} -i ${P}+ -j ${chain}`).length;
}

/** Removes our chains and every jump into them without the module under test. */
async function rawCleanup(): Promise<void> {
  for (const bin of ['iptables', 'ip6tables']) {
    const all = await sh(bin, ['-w', '30', '-S']).catch(() => '');
    for (const l of all.split('\n').filter((x) => x.startsWith('-A ') && new RegExp(`-j ${CHAINS}-`).test(x) && !x.startsWith(`-A ${CHAINS}-`))) {
      await sh(bin, ['-w', '30', '-D', ...l.slice(3).split(' ')]).catch(() => undefined);
    }
    for (const c of [`${CHAINS}-INPUT`, `${CHAINS}-ISOLATION`]) {
      await sh(bin, ['-w', '30', '-F', c]).catch(() => undefined);
      await sh(bin, ['-w', '30', '-X', c]).catch(() => undefined);
    }
  }
}

t.after(async () => {
  if (!enabled) return;
  for (const s of servers) s.close();
  await w.fw?.remove().catch(() => undefined);
  await rawCleanup();
  await cleanupByLabel(mgr);
});

// ---------- the world: four instance bridges, a gateway, host servers ----------
const C = { inst: `${P}-inst`, other: `${P}-other`, pub: `${P}-pub`, egress: `${P}-egress`, gw: `${P}-gw`, client: `${P}-client` };
const ids: Record<string, string> = {};

it('sets up instance networks (internal, routed, NAT), containers and host servers', async () => {
  await network(`${P}i`, 'internal');
  await network(`${P}o`, 'internal');
  await network(`${P}r`, 'routed');
  await network(`${P}g`, 'nat');
  await docker.createNetwork({ Name: `${P}-lan`, Labels: { [TEST_LABEL]: mgr }, CheckDuplicate: true }); // a non-Poseidon network: the "LAN client"
  ids.inst = await container(C.inst, `${P}i`, 'instance-ok');
  ids.other = await container(C.other, `${P}o`, 'other-ok');
  ids.pub = await container(C.pub, `${P}r`, 'pub-ok', true);
  ids.egress = await container(C.egress, `${P}g`, 'egress-ok');
  ids.gw = await container(C.gw, `${P}i`, 'gw-ok');
  ids.client = await container(C.client, `${P}-lan`, 'client-ok');
  const ports = (await docker.getContainer(ids.pub).inspect()).NetworkSettings.Ports['8080/tcp'] ?? [];
  w.ports.loopback = Number(ports.find((b) => b.HostIp === '127.0.0.1')?.HostPort);
  w.ports.leased = Number(ports.find((b) => b.HostIp === '0.0.0.0')?.HostPort);
  w.ports.any = await hostServer('0.0.0.0', 'host-any');
  w.ports.allowed = await hostServer('0.0.0.0', 'host-allowed');
  w.ports.gwBound = await hostServer(w.gw[`${P}i`]!, 'host-gateway-ip');
  // Another host address: a non-Docker interface (eth0 here), else docker0.
  const ifs = Object.entries(os.networkInterfaces()).filter(([n]) => !/^(pz|br-|veth|lo)/.test(n) && !n.startsWith(P));
  const v4 = (n: string) => ifs.find(([x]) => x === n)?.[1]?.find((a) => a.family === 'IPv4')?.address;
  w.lan = ifs.map(([n]) => n).filter((n) => n !== 'docker0').map(v4).find(Boolean) ?? v4('docker0');
  assert.ok(w.lan, 'a second host address');
  w.opts = { bridgePrefix: P, egressBridgePrefix: `${P}g`, chainPrefix: CHAINS, allowHostPorts: [w.ports.allowed], allowDns: privateResolvers(), log };
  w.fw = new HostFirewall(w.opts);
});

const SOURCES = () => [['inst (internal)', ids.inst!], ['pub (routed, no NAT)', ids.pub!], ['egress (NAT)', ids.egress!]] as const;
const HOST_TARGETS = () => [
  ['host via own bridge gateway, 0.0.0.0 server', 'own'],
  ['host via server bound to the i-bridge gateway IP', 'gwBound'],
  ['host via another bridge\'s gateway IP', 'otherGw'],
  [`host via its LAN address ${w.lan}`, 'lan'],
  ['other instance :8080 (other instance bridge)', 'other'],
] as const;

function target(src: string, kind: string): [string, number] {
  const ownNet = src === ids.inst ? `${P}i` : src === ids.pub ? `${P}r` : `${P}g`;
  switch (kind) {
    case 'own': return [w.gw[ownNet]!, w.ports.any!];
    case 'gwBound': return [w.gw[`${P}i`]!, w.ports.gwBound!];
    case 'otherGw': return [w.gw[`${P}o`]!, w.ports.any!];
    case 'lan': return [w.lan!, w.ports.any!];
    default: return [w.ip[C.other]!, 8080];
  }
}

async function table(title: string): Promise<Record<string, Record<string, string>>> {
  const rows: Record<string, Record<string, string>> = {};
  await Promise.all(SOURCES().flatMap(([sname, id]) => HOST_TARGETS().map(async ([tname, kind]) => {
    const [ip, port] = target(id, kind);
    (rows[tname] ??= {})[sname] = await probe(id, ip, port);
  })));
  rows['gateway container -> instance (same bridge, by DNS name)'] = { 'gw on i': (await gatewayFetch(ids.gw!, C.inst)) || 'FAILED' };
  rows['host -> 127.0.0.1 published port'] = { host: await hostFetch(w.ports.loopback!).catch((e) => `FAILED ${e}`) };
  rows['client container on a non-Poseidon network -> leased 0.0.0.0 port at the LAN address'] = {
    client: (await exec(ids.client!, ['timeout', '5', 'wget', '-q', '-O', '-', `http://${w.lan}:${w.ports.leased}/`])).out.trim() || 'FAILED',
  };
  console.log(`\n  ${title}`);
  console.table(rows);
  return rows;
}

/** Wildcard rules of other firewalls that match our bridges (`-i <prefix>+` with P under it): none may exist. */
async function foreignRules(): Promise<string[]> {
  const all = (await sh('iptables', ['-w', '30', '-S'])).split('\n');
  return all.filter((l) => { const m = /^-A \S+ .*-i (\S+)\+ /.exec(l); return !!m && P.startsWith(m[1]!) && !l.includes(`-j ${CHAINS}-`); });
}

let before: Record<string, Record<string, string>> = {};

it('BEFORE ensure(): an instance reaches the host on every address (Docker 20.10 behaviour)', async () => {
  const st = await w.fw!.status();
  assert.is(st.installed, false);
  // Another firewall matching our bridges would decide every probe below and after ensure().
  assert.equal(await foreignRules(), [], `rules of another firewall match the test's bridges ${P}*`);
  before = await table('BEFORE ensure() (rows: target; columns: source container)');
  assert.match(before['host via own bridge gateway, 0.0.0.0 server']!['inst (internal)']!, /open \(host-any\)/);
  assert.match(before['host via server bound to the i-bridge gateway IP']!['inst (internal)']!, /open \(host-gateway-ip\)/);
  assert.match(before[`host via its LAN address ${w.lan}`]!['inst (internal)']!, /open/);
  assert.is(before['gateway container -> instance (same bridge, by DNS name)']!['gw on i'], 'instance-ok');
  assert.is(before['host -> 127.0.0.1 published port']!.host, 'pub-ok');
});

it('BEFORE ensure(): a routed (no-NAT) instance sends packets to a public address', async () => {
  const accept = `-i ${P}r ! -o ${P}r -j ACCEPT`;
  const a = await counters('FORWARD');
  await probe(ids.pub!, '203.0.113.7', 9);
  const b = await counters('FORWARD');
  console.log(`  before: routed instance -> 203.0.113.7:9 forwarded by Docker's "${accept}": +${delta(a, b, accept)} packets`);
  assert.ok(delta(a, b, accept) >= 1);
});

it('ensure() installs the chains and jumps; a second ensure() changes nothing', async () => {
  const [first, second] = [await w.fw!.ensure(), await w.fw!.ensure()];
  assert.ok(first.some((c) => c.includes(`created chain ${CHAINS}-ISOLATION`)), first.join('\n'));
  assert.ok(first.some((c) => c.includes(`added jump DOCKER-USER -i ${P}+`)));
  assert.equal(second, []);
  assert.is(lines.filter((l) => l.msg === 'host firewall repaired').length, 1, 'the change is logged once, the no-op is not');
  assert.is((await w.fw!.status()).installed, true);
  assert.is(await jumpCount('iptables', 'DOCKER-USER', `${CHAINS}-ISOLATION`), 1);
  assert.is(await jumpCount('iptables', 'INPUT', `${CHAINS}-INPUT`), 1);
  console.log(`\n  installed (ipv4):\n${(await sh('iptables', ['-w', '30', '-S'])).split('\n').filter((l) => l.includes(CHAINS)).map((l) => `    ${l}`).join('\n')}`);
});

it('AFTER ensure(): no instance reaches the host or another instance; gateway, published ports, DNS still work', async () => {
  const iso = `${CHAINS}-ISOLATION`;
  const [fa, ia] = [await counters(iso), await counters(`${CHAINS}-INPUT`)];
  const after = await table('AFTER ensure()');
  const [fb, ib] = [await counters(iso), await counters(`${CHAINS}-INPUT`)];
  for (const [tname] of HOST_TARGETS()) {
    for (const [sname] of SOURCES()) assert.is(after[tname]![sname], 'no answer', `${sname} -> ${tname}`);
  }
  assert.ok(delta(ia, ib, '-j DROP') >= 12, 'host probes were dropped by our INPUT chain');
  assert.ok(delta(fa, fb, `-o ${P}+ -j DROP`) >= 3, 'other-instance probes were dropped by our FORWARD chain');
  assert.is(after['gateway container -> instance (same bridge, by DNS name)']!['gw on i'], 'instance-ok');
  assert.ok(delta(fa, fb, '-m physdev --physdev-is-bridged -j RETURN') >= 1, 'same-bridge traffic went through our RETURN');
  assert.is(after['host -> 127.0.0.1 published port']!.host, 'pub-ok');
  assert.is(after['client container on a non-Poseidon network -> leased 0.0.0.0 port at the LAN address']!.client, 'pub-ok');
  const dns = await exec(ids.inst!, ['sh', '-c', 'nslookup "$1" 127.0.0.11', 'sh', C.gw]); // nslookup is a shell applet here
  assert.match(dns.out, new RegExp(`Address: *${w.ip[C.gw]!.replace(/\./g, '\\.')}`), 'Docker DNS answers inside');
});

it('AFTER ensure(): metadata, LAN and (for non-egress bridges) public destinations are dropped; egress reaches public', async () => {
  const iso = `${CHAINS}-ISOLATION`;
  const cases: [string, string, number, string][] = [
    ['inst', '169.254.169.254', 80, '-d 169.254.169.254/32 -j DROP'],
    ['egress', '169.254.169.254', 80, '-d 169.254.169.254/32 -j DROP'],
    ['pub', '169.254.169.254', 80, '-d 169.254.169.254/32 -j DROP'],
    ['egress', '192.168.77.1', 80, '-d 192.168.0.0/16 -j DROP'],
    ['egress', '172.20.0.1', 80, '-d 172.16.0.0/12 -j DROP'],
    ['egress', '10.99.0.1', 80, '-d 10.0.0.0/8 -j DROP'],
    ['egress', '100.64.0.1', 80, '-d 100.64.0.0/10 -j DROP'],
    ['pub', '192.168.77.1', 80, '-d 192.168.0.0/16 -j DROP'],
    ['pub', '203.0.113.7', 9, '-j DROP'],
    ['inst', '203.0.113.7', 9, '-j DROP'],
  ];
  // In parallel: each probe's packets stop at the first matching rule, so a rule shared by k
  // cases must count at least k packets.
  const a = await counters(iso);
  const outs = await Promise.all(cases.map(([src, ip, port]) => probe(ids[src]!, ip, port)));
  const b = await counters(iso);
  cases.forEach(([src, ip, port, rule], i) => console.log(`  ${src} -> ${ip}:${port}: ${outs[i]}; rule "${rule}" +${delta(a, b, rule)} in total`));
  for (const [i, [src, ip, , rule]] of cases.entries()) {
    assert.is(outs[i], 'no answer', `${src} -> ${ip}`);
    assert.ok(delta(a, b, rule) >= cases.filter((c) => c[3] === rule).length, `${src} -> ${ip} counted on ${rule}`);
  }
  // Egress: a TEST-NET-3 SYN passes our chain untouched and reaches Docker's ACCEPT for the NAT bridge.
  const accept = `-i ${P}g ! -o ${P}g -j ACCEPT`;
  const [fa, oa] = [await counters('FORWARD'), await counters(iso)];
  await probe(ids.egress!, '203.0.113.7', 9);
  const [fb, ob] = [await counters('FORWARD'), await counters(iso)];
  console.log(`  egress -> 203.0.113.7:9: Docker "${accept}" +${delta(fa, fb, accept)}; our DROPs +${sum(ob, (r) => r.endsWith('-j DROP')) - sum(oa, (r) => r.endsWith('-j DROP'))}`);
  assert.ok(delta(fa, fb, accept) >= 1, 'forwarded to the Internet by Docker');
  assert.is(sum(ob, (r) => r.endsWith('-j DROP')) - sum(oa, (r) => r.endsWith('-j DROP')), 0, 'none of our DROP rules saw it');
});

it('allowDns: Docker DNS of an egress instance forwards to the host\'s private resolver on port 53 only', async () => {
  const [resolver] = w.opts!.allowDns!;
  if (!resolver) return console.log('  (the host resolver is public or loopback: nothing to allow, nothing to check)');
  const iso = `${CHAINS}-ISOLATION`;
  const rule = `-d ${resolver}/32 -i ${P}g+ -p udp -m udp --dport 53 -j RETURN`;
  const a = await counters(iso);
  await exec(ids.egress!, ['sh', '-c', 'timeout 10 nslookup example.com 127.0.0.11']); // the answer depends on the network; the path does not
  const b = await counters(iso);
  console.log(`  egress: Docker DNS -> ${resolver}:53 via "${rule}" +${delta(a, b, rule)}`);
  assert.ok(delta(a, b, rule) >= 1, 'the query left through the DNS allowance');
  assert.is(sum(b, (r) => r.endsWith('-j DROP')) - sum(a, (r) => r.endsWith('-j DROP')), 0);
  assert.is(await probe(ids.egress!, resolver, 80), 'no answer', 'only port 53 is allowed');
});

it('allowHostPorts: the one allowed host port is reachable, others are not', async () => {
  assert.is(await probe(ids.inst!, w.gw[`${P}i`]!, w.ports.allowed!), 'open (host-allowed)');
  assert.is(await probe(ids.inst!, w.gw[`${P}i`]!, w.ports.any!), 'no answer');
});

it('ensure() repairs: a jump deleted by hand, a tampered chain, a duplicated or displaced jump', async () => {
  await sh('iptables', ['-w', '30', '-D', 'DOCKER-USER', '-i', `${P}+`, '-j', `${CHAINS}-ISOLATION`]);
  assert.is((await w.fw!.status()).installed, false);
  assert.equal(await w.fw!.ensure(), [`ipv4: added jump DOCKER-USER -i ${P}+ -j ${CHAINS}-ISOLATION`]);
  assert.is(await probe(ids.inst!, w.ip[C.other]!, 8080), 'no answer');
  await sh('iptables', ['-w', '30', '-D', `${CHAINS}-INPUT`, '-j', 'DROP']);
  await sh('iptables', ['-w', '30', '-I', 'INPUT', '1', '-i', `${P}+`, '-j', `${CHAINS}-INPUT`]);
  const fixed = await w.fw!.ensure();
  assert.equal(fixed.sort(), [`ipv4: collapsed 2 copies of jump INPUT -i ${P}+ -j ${CHAINS}-INPUT`, `ipv4: rewrote chain ${CHAINS}-INPUT (its rules differed)`].sort());
  assert.is(await jumpCount('iptables', 'INPUT', `${CHAINS}-INPUT`), 1);
  assert.is(await probe(ids.inst!, w.gw[`${P}i`]!, w.ports.any!), 'no answer');
  assert.equal(await w.fw!.ensure(), []);
});

it('concurrent ensure() from several processes and in-process calls installs each rule once', async () => {
  await w.fw!.remove();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pzfw-'));
  try {
    const script = path.join(dir, 'ensure.mts');
    writeFileSync(script, `import { HostFirewall } from ${JSON.stringify(path.join(ROOT, 'src/runtime/firewall.ts'))};\n` +
      `const log = { info() {}, warn() {} };\nconsole.log(JSON.stringify(await new HostFirewall({ ...JSON.parse(process.argv[2]), log }).ensure()));\n`);
    const { log: _l, ...plain } = w.opts!;
    const child = () => sh(process.execPath, ['--import', 'tsx', script, JSON.stringify(plain)]);
    const results = await Promise.all([child(), child(), child(), w.fw!.ensure(), new HostFirewall(w.opts!).ensure()]);
    const all = results.flatMap((r) => (typeof r === 'string' ? JSON.parse(r) as string[] : r));
    assert.is(all.filter((c) => c.startsWith('ipv4: added jump DOCKER-USER')).length, 1, all.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const [bin, hook, chain] of [['iptables', 'DOCKER-USER', 'ISOLATION'], ['iptables', 'INPUT', 'INPUT'], ['ip6tables', 'INPUT', 'INPUT'], ['ip6tables', 'FORWARD', 'ISOLATION']] as const) {
    const available = (await w.fw!.status()).families.find((f) => f.family === (bin === 'iptables' ? 'ipv4' : 'ipv6'))!.available;
    if (available) assert.is(await jumpCount(bin, hook, `${CHAINS}-${chain}`), 1, `${bin} ${hook}`);
  }
  assert.is((await w.fw!.status()).installed, true);
});

it('without iptables on PATH, or not root, the module says so (E_FIREWALL_UNAVAILABLE)', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pzfw-'));
  try {
    const script = path.join(dir, 'status.mts');
    writeFileSync(script, `import { HostFirewall } from ${JSON.stringify(path.join(ROOT, 'src/runtime/firewall.ts'))};\n` +
      `const fw = new HostFirewall({ bridgePrefix: 'pzq', lockPath: ${JSON.stringify(path.join(dir, 'lock'))}, log: { info() {}, warn() {} } });\n` +
      `for (const op of ['status', 'ensure']) { try { await fw[op](); console.log(op, 'OK'); } catch (e) { console.log(op, e.code, e.message); } }\n`);
    chmodSync(dir, 0o755); // readable by `nobody`
    const run = (opts: object) => new Promise<string>((resolve) => execFile(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, timeout: 60_000, ...opts }, (_e, out) => resolve(out.trim())));
    const noPath = await run({ env: { ...process.env, PATH: '/nonexistent' } });
    for (const op of ['status', 'ensure']) assert.match(noPath, new RegExp(`^${op} ${FirewallCodes.unavailable} .*iptables not found`, 'm'), noPath);
    const nobody = await run({ uid: 65534, gid: 65534, env: { ...process.env, HOME: dir } });
    for (const op of ['status', 'ensure']) assert.match(nobody, new RegExp(`^${op} ${FirewallCodes.unavailable} .*not permitted`, 'm'), nobody);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('remove() deletes the jumps and the chains; the host is reachable again (our rules were the barrier)', async () => {
  const removed = await w.fw!.remove();
  assert.ok(removed.includes(`ipv4: chain ${CHAINS}-ISOLATION`), removed.join('\n'));
  for (const bin of ['iptables', 'ip6tables']) {
    const all = await sh(bin, ['-w', '30', '-S']).catch(() => '');
    assert.not.ok(all.includes(CHAINS), `${bin} still mentions ${CHAINS}`);
  }
  assert.is((await w.fw!.status()).installed, false);
  assert.equal(await w.fw!.remove(), []);
  assert.is(await probe(ids.inst!, w.gw[`${P}i`]!, w.ports.gwBound!), 'open (host-gateway-ip)');
});

t.run();
