/**
 * Host firewall for instance isolation (issue 8, docs/firewall.md). Every Poseidon instance
 * network's Linux bridge is named `<bridgePrefix>…`, so the rules match `-i <prefix>+` whatever
 * the address pools. From an instance bridge nothing reaches the host (INPUT), another
 * instance bridge, the LAN or cloud metadata (FORWARD, via Docker's DOCKER-USER hook);
 * same-bridge traffic (the gateway joined to an instance network) and replies to connections
 * opened from outside (published ports) are left alone.
 *
 * Everything lives in two dedicated chains plus one jump into each; only rules of that shape are
 * ever added or deleted. Writes go through `iptables-restore --noflush` (one atomic transaction
 * per family) under an flock(1) lock, so concurrent Poseidon processes never duplicate rules.
 * Commands run through execFile with argument arrays (no shell); every token is validated.
 */
import { execFile, spawn } from 'node:child_process';
import { access, open, readdir } from 'node:fs/promises';
import { PoseidonError } from '../core/errors.ts';

/** Stable codes: `unavailable` (no iptables, not root: terminal), `failed` (transient). */
export const FirewallCodes = { unavailable: 'E_FIREWALL_UNAVAILABLE', failed: 'E_FIREWALL' } as const;

/** The two logger methods used; any Poseidon/pino logger fits (declared here while Logger moves to core/). */
export interface FirewallLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface FirewallOptions {
  /** Bridge-name prefix of instance networks (`pz`): 2-10 of [a-z0-9], starting with a letter. */
  bridgePrefix: string;
  /** Host ports (TCP and UDP) instances may reach on the host; default none. */
  allowHostPorts?: number[];
  /** Bridges with this prefix (it extends bridgePrefix, e.g. `pzg`) may reach public addresses;
   *  when set, every other instance bridge gets no routed traffic out at all. When unset, public
   *  destinations are left to Docker (internal networks are dropped by Docker itself). */
  egressBridgePrefix?: string;
  /** Extra IPv4 CIDRs instances must not reach (a LAN that is not in a private range). */
  denyDestinations?: string[];
  /** DNS resolvers (IPv4) that Docker's embedded DNS forwards to on behalf of egress instances when
   *  they sit in a blocked range (the host's resolv.conf: a LAN, 169.254.169.253, 168.63.129.16…):
   *  port 53 only, egress bridges only when egressBridgePrefix is set. Default none. */
  allowDns?: string[];
  /** Chain names are `<chainPrefix>-INPUT` and `<chainPrefix>-ISOLATION`; default `POSEIDON`. */
  chainPrefix?: string;
  /** flock file shared by every Poseidon process on the host; default /run/poseidon-firewall.lock. */
  lockPath?: string;
  log: FirewallLogger;
}

export type Family = 'ipv4' | 'ipv6';
export interface ChainPlan { name: string; rules: string[] }
export interface JumpPlan { hook: string; rule: string }
/** What one address family should contain: our chains (in order) and the jumps into them. */
export interface FamilyPlan { family: Family; chains: ChainPlan[]; jumps: JumpPlan[] }

export interface FamilyStatus { family: Family; available: boolean; reason?: string; problems: string[] }
/** `installed`: IPv4 is available and every available family has no problem left. */
export interface FirewallStatus { installed: boolean; families: FamilyStatus[] }

/** Cloud metadata endpoints: own rules, so their counters show attempts (AWS/GCP/Azure/…, Azure WireServer). */
export const METADATA_V4 = ['169.254.169.254/32', '168.63.129.16/32'];
/** Not the Internet: unspecified, RFC 1918, CGNAT, link-local, IETF, benchmarking, multicast/reserved. */
export const LOCAL_V4 = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/3'];

// Real interface names an over-short prefix would swallow (lockout guard, checked at validation).
const TAKEN = ['lo', 'eth0', 'ens3', 'enp0s3', 'eno1', 'wlan0', 'wlp2s0', 'wwan0', 'docker0', 'docker_gwbridge',
  'br-0a1b2c3d4e5f', 'veth0a1b2c3', 'virbr0', 'tun0', 'tap0', 'wg0', 'tailscale0', 'cni0', 'flannel.1', 'cali0a1b',
  'vxlan.calico', 'bond0', 'team0', 'ib0', 'em1', 'p1p1', 'ifb0', 'dummy0', 'kube-bridge', 'cilium_host', 'weave',
  'lxcbr0', 'lxdbr0', 'incusbr0', 'podman0', 'zt0a1b2c', 'gre0', 'sit0', 'ip6tnl0', 'nerdctl0', 'cbr0', 'vmbr0'];
const BIN: Record<Family, { read: string; restore: string }> = {
  ipv4: { read: 'iptables', restore: 'iptables-restore' },
  ipv6: { read: 'ip6tables', restore: 'ip6tables-restore' },
};

function invalid(message: string): PoseidonError {
  return new PoseidonError('E_CONFIG_INVALID', `firewall: ${message}`, { kind: 'terminal' });
}

/** Canonical IPv4 CIDR (host bits cleared, `/32` added) as iptables prints it; throws on anything else. */
export function canonicalCidr(input: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(input);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const len = m?.[5] === undefined ? 32 : Number(m[5]);
  if (!m || octets.some((o) => o > 255) || len > 32) throw invalid(`not an IPv4 CIDR: ${JSON.stringify(input)}`);
  const value = octets.reduce((a, o) => a * 256 + o, 0);
  const net = len === 0 ? 0 : value - (value % 2 ** (32 - len));
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${len}`;
}

/** Pure: validates the options and returns the rules for both families. Throws E_CONFIG_INVALID. */
export function planFirewall(opts: Omit<FirewallOptions, 'log' | 'lockPath'>): FamilyPlan[] {
  const { bridgePrefix: p, egressBridgePrefix: eg } = opts;
  if (!/^[a-z][a-z0-9]{1,9}$/.test(p)) throw invalid(`bridgePrefix must be 2-10 of [a-z0-9] starting with a letter: ${JSON.stringify(p)}`);
  const clash = TAKEN.find((n) => n.startsWith(p));
  if (clash) throw invalid(`bridgePrefix ${p} would match host interfaces such as ${clash}`);
  if (eg !== undefined && (!/^[a-z][a-z0-9]{2,11}$/.test(eg) || !eg.startsWith(p) || eg === p)) {
    throw invalid(`egressBridgePrefix must extend bridgePrefix ${p} (e.g. ${p}g): ${JSON.stringify(eg)}`);
  }
  const chain = opts.chainPrefix ?? 'POSEIDON';
  if (!/^[A-Z][A-Z0-9_-]{0,17}$/.test(chain)) throw invalid(`chainPrefix must be 1-18 of [A-Z0-9_-]: ${JSON.stringify(chain)}`);
  const ports = [...new Set(opts.allowHostPorts ?? [])].sort((a, b) => a - b);
  const bad = ports.find((n) => !Number.isInteger(n) || n < 1 || n > 65535);
  if (bad !== undefined) throw invalid(`allowHostPorts: not a port: ${bad}`);
  const deny = [...new Set((opts.denyDestinations ?? []).map(canonicalCidr))];
  const dns = [...new Set((opts.allowDns ?? []).map(canonicalCidr))];
  const dnsFrom = eg ? ` -i ${eg}+` : ''; // iptables prints -d before -i
  const input = `${chain}-INPUT`;
  const iso = `${chain}-ISOLATION`;
  const keep = ['-m physdev --physdev-is-bridged -j RETURN', '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN'];
  const inputRules = [keep[1]!, ...ports.flatMap((n) => [`-p tcp -m tcp --dport ${n} -j RETURN`, `-p udp -m udp --dport ${n} -j RETURN`]), '-j DROP'];
  const v4Forward = [...keep, `-o ${p}+ -j DROP`,
    ...dns.flatMap((d) => ['udp', 'tcp'].map((x) => `-d ${d}${dnsFrom} -p ${x} -m ${x} --dport 53 -j RETURN`)),
    ...[...METADATA_V4, ...LOCAL_V4, ...deny].map((d) => `-d ${d} -j DROP`),
    ...(eg ? [`-i ${eg}+ -j RETURN`, '-j DROP'] : [])];
  const jumps = (fwd: string): JumpPlan[] => [{ hook: 'INPUT', rule: `-i ${p}+ -j ${input}` }, { hook: fwd, rule: `-i ${p}+ -j ${iso}` }];
  return [
    { family: 'ipv4', chains: [{ name: input, rules: inputRules }, { name: iso, rules: v4Forward }], jumps: jumps('DOCKER-USER') },
    // IPv6: Docker 20.10 manages no ip6tables chains by default; nothing routes out of an instance bridge.
    { family: 'ipv6', chains: [{ name: input, rules: inputRules }, { name: iso, rules: [...keep, '-j DROP'] }], jumps: jumps('FORWARD') },
  ];
}

/** A parsed `iptables -S`: chain names and each chain's rules (without `-A CHAIN`), in order. */
export interface Table { chains: Set<string>; rules: Map<string, string[]> }
type Read = { ok: true; table: Table } | { ok: false; reason: string };
/** A change for one family: human-readable `changes`, `blocked` (cannot fix), and the restore lines. */
interface Assessment { changes: string[]; blocked: string[]; lines: string[] }

/** Pure: parses `iptables -S` output. */
export function parseTable(text: string): Table {
  const t: Table = { chains: new Set(), rules: new Map() };
  for (const line of text.split('\n')) {
    const m = /^-([NPA]) (\S+)(?: (.*))?$/.exec(line.trim());
    if (!m) continue;
    t.chains.add(m[2]!);
    if (m[1] === 'A') t.rules.set(m[2]!, [...(t.rules.get(m[2]!) ?? []), m[3] ?? '']);
  }
  return t;
}

/** Jumps into our chains shaped like ours (`-i <name>+ -j CHAIN`), in any chain: `[hook, rule]`. */
function ourJumps(plan: FamilyPlan, t: Table): [string, string][] {
  const names = plan.chains.map((c) => c.name);
  const found: [string, string][] = [];
  for (const [hook, rules] of t.rules) {
    for (const r of rules) {
      const m = /^-i [a-z][a-z0-9]*\+ -j (\S+)$/.exec(r);
      if (m && names.includes(m[1]!)) found.push([hook, r]);
    }
  }
  return found;
}

/**
 * A jump of another install's shape (`-i <name>+ -j CHAIN`) whose interface prefix and ours cannot
 * match one interface: it never sees a packet of our bridges, so it may sit above our jump (two
 * installs with disjoint prefixes would otherwise take the top from each other on every pass).
 */
function otherInstall(ours: string, rule: string): boolean {
  const p = /^-i (\S+)\+ /.exec(ours)![1]!;
  const x = /^-i ([a-z][a-z0-9]*)\+ -j \S+$/.exec(rule)?.[1];
  return x !== undefined && !x.startsWith(p) && !p.startsWith(x);
}

/** Pure: what `ensure` must change in `t` to match `plan`. */
export function assess(plan: FamilyPlan, t: Table): Assessment {
  const a: Assessment = { changes: [], blocked: [], lines: [] };
  const f = plan.family;
  for (const c of plan.chains) {
    const have = t.rules.get(c.name) ?? [];
    if (t.chains.has(c.name) && have.join('\n') === c.rules.join('\n')) continue;
    a.changes.push(t.chains.has(c.name) ? `${f}: rewrote chain ${c.name} (its rules differed)` : `${f}: created chain ${c.name}`);
    a.lines.push(`:${c.name} - [0:0]`, ...c.rules.map((r) => `-A ${c.name} ${r}`));
  }
  const wanted = new Set(plan.jumps.map((j) => `${j.hook} ${j.rule}`));
  for (const [hook, rule] of ourJumps(plan, t)) {
    if (wanted.has(`${hook} ${rule}`)) continue;
    a.changes.push(`${f}: removed stale jump ${hook} ${rule}`);
    a.lines.push(`-D ${hook} ${rule}`);
  }
  for (const j of plan.jumps) {
    if (!t.chains.has(j.hook)) { a.blocked.push(`${f}: chain ${j.hook} is missing (is dockerd running with iptables enabled?)`); continue; }
    const rules = t.rules.get(j.hook) ?? [];
    const n = rules.filter((r) => r === j.rule).length;
    if (n === 1 && rules.find((r) => !otherInstall(j.rule, r)) === j.rule) continue;
    a.changes.push(`${f}: ${n === 0 ? 'added' : n > 1 ? `collapsed ${n} copies of` : 'moved to the top'} jump ${j.hook} ${j.rule}`);
    a.lines.push(...Array.from({ length: n }, () => `-D ${j.hook} ${j.rule}`), `-I ${j.hook} 1 ${j.rule}`);
  }
  if (f === 'ipv4' && t.chains.has('DOCKER-USER') && !(t.rules.get('FORWARD') ?? []).includes('-j DOCKER-USER')) {
    a.blocked.push('ipv4: FORWARD does not jump to DOCKER-USER (is dockerd running with iptables enabled?)');
  }
  return a;
}

/** Pure: the restore lines that delete our jumps, then our chains (`removed` says what). */
export function removal(plan: FamilyPlan, t: Table): { removed: string[]; lines: string[] } {
  const jumps = ourJumps(plan, t);
  const lines = jumps.map(([hook, rule]) => `-D ${hook} ${rule}`);
  const removed = jumps.map(([hook, rule]) => `${plan.family}: jump ${hook} ${rule}`);
  for (const c of plan.chains.filter((x) => t.chains.has(x.name))) {
    lines.push(`-F ${c.name}`, `-X ${c.name}`);
    removed.push(`${plan.family}: chain ${c.name}`);
  }
  return { removed, lines };
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 90_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException;
      const text = `${stderr}`.trim().slice(0, 500) || e.message;
      if (e.code === 'ENOENT') return reject(new PoseidonError(FirewallCodes.unavailable, `firewall: ${cmd} not found on PATH`, { kind: 'terminal', cause: err }));
      if (/permission denied|must be root|operation not permitted/i.test(text)) {
        return reject(new PoseidonError(FirewallCodes.unavailable, `firewall: ${cmd} not permitted (needs root or CAP_NET_ADMIN): ${text}`, { kind: 'terminal', cause: err }));
      }
      reject(new PoseidonError(FirewallCodes.failed, `firewall: ${cmd} failed: ${text}`, { cause: err }));
    });
    // A command that exits before reading stdin (EPIPE) reports through its exit status instead.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

/**
 * Installs, checks and removes the isolation rules. Safe to call from several processes at once.
 * Throws E_CONFIG_INVALID (constructor) for bad options.
 */
export class HostFirewall {
  readonly plans: FamilyPlan[];
  private readonly log: FirewallLogger;
  private readonly lockPath: string;
  private warnedV6 = false;
  private warnedLock = false;

  constructor(private readonly opts: FirewallOptions) {
    this.plans = planFirewall(opts);
    this.log = opts.log;
    this.lockPath = opts.lockPath ?? '/run/poseidon-firewall.lock';
  }

  /** What is installed, per family; never changes anything. Throws only if iptables cannot be read at all. */
  async status(): Promise<FirewallStatus> {
    const families: FamilyStatus[] = [];
    for (const plan of this.plans) {
      const r = await this.read(plan.family);
      if (!r.ok) { families.push({ family: plan.family, available: false, reason: r.reason, problems: [] }); continue; }
      const a = assess(plan, r.table);
      families.push({ family: plan.family, available: true, problems: [...a.changes.map((c) => `ensure would: ${c}`), ...a.blocked] });
    }
    return { installed: families[0]!.available && families.every((f) => f.problems.length === 0), families };
  }

  /**
   * Makes the rules match the plan (creates, rewrites, re-adds, de-duplicates, moves our jumps first)
   * and returns what it changed ([] when all was in place). Throws E_FIREWALL_UNAVAILABLE when
   * iptables is missing or not permitted, E_FIREWALL when a piece is still missing afterwards.
   */
  async ensure(): Promise<string[]> {
    await this.checkInterfaces();
    await this.read('ipv4'); // fails fast, with iptables' own words, when it is missing or not permitted
    const changes: string[] = [];
    const left: string[] = [];
    await this.locked(async () => {
      for (const plan of this.plans) {
        // IPv4 is the guarantee; IPv6 is defence in depth (Docker disables IPv6 in containers on
        // networks without --ipv6), so an IPv6 failure is logged and shown by status(), not thrown.
        const r = await this.apply(plan).catch((err: unknown) => {
          if (plan.family === 'ipv4') throw err;
          return { changes: [], left: [err instanceof Error ? err.message : String(err)] };
        });
        changes.push(...r.changes);
        if (plan.family === 'ipv4') left.push(...r.left);
        else if (r.left.length > 0) this.warnV6(r.left.join('; '));
      }
    });
    if (changes.length > 0) this.log.info({ changes }, 'host firewall repaired');
    if (left.length > 0) throw new PoseidonError(FirewallCodes.failed, `firewall: incomplete: ${left.join('; ')}`, { detail: { problems: left } });
    return changes;
  }

  /** One family: read, one atomic restore if anything differs, read again; what changed and what is still wrong. */
  private async apply(plan: FamilyPlan): Promise<{ changes: string[]; left: string[] }> {
    const r = await this.read(plan.family);
    if (!r.ok) return { changes: [], left: [r.reason] };
    const a = assess(plan, r.table);
    if (a.lines.length > 0) await this.restore(plan.family, a.lines);
    const after = await this.read(plan.family);
    const still = after.ok ? assess(plan, after.table) : { changes: [after.reason], blocked: [] };
    return { changes: a.changes, left: [...still.changes, ...still.blocked] };
  }

  /** Deletes our jumps and chains (nothing else) in every family; returns what it removed. */
  async remove(): Promise<string[]> {
    const removed: string[] = [];
    await this.locked(async () => {
      for (const plan of this.plans) {
        const r = await this.read(plan.family);
        if (!r.ok) continue;
        const x = removal(plan, r.table);
        if (x.lines.length > 0) await this.restore(plan.family, x.lines);
        removed.push(...x.removed);
      }
    });
    if (removed.length > 0) this.log.info({ removed }, 'host firewall removed');
    return removed;
  }

  private async read(family: Family): Promise<Read> {
    try {
      return { ok: true, table: parseTable(await run(BIN[family].read, ['-w', '30', '-S'])) };
    } catch (err) {
      // IPv4 is required; IPv6 may be absent (no ip6tables, IPv6 disabled in the kernel).
      if (family === 'ipv4') throw err;
      return { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
  }

  private warnV6(reason: string): void {
    if (!this.warnedV6) this.log.warn({ family: 'ipv6', reason }, 'host firewall: IPv6 rules not installed');
    this.warnedV6 = true;
  }

  private async restore(family: Family, lines: string[]): Promise<void> {
    await run(BIN[family].restore, ['-w', '30', '--noflush'], ['*filter', ...lines, 'COMMIT', ''].join('\n'));
  }

  /** Refuses a prefix that matches a host interface which is not a bridge (it would cut the host off). */
  private async checkInterfaces(): Promise<void> {
    const names = await readdir('/sys/class/net').catch(() => [] as string[]);
    for (const n of names.filter((x) => x.startsWith(this.opts.bridgePrefix))) {
      const bridge = await access(`/sys/class/net/${n}/bridge`).then(() => true, () => false);
      if (!bridge) throw new PoseidonError(FirewallCodes.failed, `firewall: bridgePrefix ${this.opts.bridgePrefix} matches ${n}, which is not a bridge`, { kind: 'terminal' });
    }
  }

  /** Runs `fn` holding an exclusive flock on lockPath: flock(1) locks our open file description, then exits. */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const handle = await open(this.lockPath, 'a', 0o600).catch((err: NodeJS.ErrnoException) => {
      const denied = ['EACCES', 'EPERM', 'EROFS'].includes(err.code ?? '');
      throw new PoseidonError(denied ? FirewallCodes.unavailable : FirewallCodes.failed, `firewall: ${denied ? 'not permitted to open' : 'cannot open'} lock ${this.lockPath} (${err.code})`, { kind: denied ? 'terminal' : 'transient', cause: err });
    });
    try {
      const got = await new Promise<boolean>((resolve, reject) => {
        const child = spawn('flock', ['-x', '-w', '60', '3'], { stdio: ['ignore', 'ignore', 'ignore', handle.fd] });
        child.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve(false) : reject(err)));
        child.on('exit', (code) => (code === 0 ? resolve(true) : reject(new PoseidonError(FirewallCodes.failed, `firewall: lock ${this.lockPath} not acquired in 60 s`))));
      });
      if (!got && !this.warnedLock) this.log.warn({ lockPath: this.lockPath }, 'host firewall: flock(1) not found; concurrent processes may race (ensure converges)');
      this.warnedLock ||= !got;
      return await fn();
    } finally {
      await handle.close();
    }
  }
}
