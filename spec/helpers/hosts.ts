/**
 * The multi-host test rig (scripts/test-hosts.sh): several real Docker engines, each in its own
 * network namespace with its own address on one bridge, plus a real registry on the host side.
 * `npm test` and CI bring it up; by hand: `bash scripts/test-hosts.sh up`.
 *
 * When the rig is missing, `testHosts()` throws under CI=true (the test fails) and otherwise
 * warns loudly and returns undefined (the test skips, never silently), like spec/helpers/deps.ts.
 */
import { type ChildProcess, type SpawnOptions, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import Docker from 'dockerode';
import { CI } from './deps.ts';

export const HOSTS_ENV = process.env.POSEIDON_TEST_HOSTS_ENV ?? '/var/run/poseidon-test/hosts.env';

export interface TestHost {
  /** `w1`, `w2`, ... */
  name: string;
  /** The host's own address on the rig's bridge: 10.250.0.11, .12, ... */
  address: string;
  /** Unix socket of the host's Docker engine. */
  socket: string;
  /** Network namespace name (`pt-w1`); its path is `/var/run/netns/<netns>`. */
  netns: string;
  /** The engine's host name (`docker info` Name): `pt-w1`, ... (each engine has its own UTS namespace). */
  hostname: string;
  /** Address pool of the host's engine (`10.221.0.0/16`): its container networks come from it. */
  pool: string;
  /** Runtimes the engine offers (`docker info`), e.g. ['runc', 'runsc', ...]. */
  runtimes: string[];
}

export interface TestHosts {
  hosts: TestHost[];
  /** `host:port` of the registry every engine (and the host engine) reaches: 10.250.0.1:5000. */
  registry: string;
  /** The host side of the bridge (10.250.0.1): where Redis, the registry and a manager listen for the hosts. */
  hostAddress: string;
}

/** Parses hosts.env (KEY=VALUE lines, `#` comments). */
export function parseHostsEnv(text: string): TestHosts {
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = env.get(k);
    if (v === undefined || v === '') throw new Error(`${HOSTS_ENV}: missing ${k}`);
    return v;
  };
  const n = Number(get('POSEIDON_TEST_HOSTS'));
  const hosts: TestHost[] = [];
  for (let i = 1; i <= n; i++) {
    const p = `POSEIDON_TEST_W${i}_`;
    hosts.push({
      name: get(`${p}NAME`),
      address: get(`${p}ADDRESS`),
      socket: get(`${p}SOCKET`),
      netns: get(`${p}NETNS`),
      hostname: get(`${p}HOSTNAME`),
      pool: get(`${p}POOL`),
      runtimes: (env.get(`${p}RUNTIMES`) ?? '').split(',').filter(Boolean),
    });
  }
  return { hosts, registry: get('POSEIDON_TEST_REGISTRY'), hostAddress: get('POSEIDON_TEST_HOST_ADDRESS') };
}

let cached: { rig?: TestHosts; why?: string } | undefined;
let warned = false;

function probe(): { rig?: TestHosts; why?: string } {
  if (!existsSync(HOSTS_ENV)) return { why: `no ${HOSTS_ENV}` };
  let rig: TestHosts;
  try {
    rig = parseHostsEnv(readFileSync(HOSTS_ENV, 'utf8'));
  } catch (e) {
    return { why: (e as Error).message };
  }
  for (const h of rig.hosts) {
    if (!existsSync(`/var/run/netns/${h.netns}`)) return { why: `namespace ${h.netns} missing` };
    try {
      execFileSync('docker', ['-H', `unix://${h.socket}`, 'version', '-f', '{{.Server.Version}}'], { stdio: 'ignore', timeout: 5000 });
    } catch {
      return { why: `engine ${h.name} does not answer on ${h.socket}` };
    }
  }
  return { rig };
}

/** The rig's description, or undefined (after a loud warning) when it is missing; throws under CI=true. */
export function testHosts(): TestHosts | undefined {
  cached ??= probe();
  if (cached.rig) return cached.rig;
  const msg = `multi-host test rig not available (${cached.why}); run: bash scripts/test-hosts.sh up`;
  if (CI) throw new Error(`${msg} (required under CI=true)`);
  if (!warned) console.warn(`\n  !! SKIPPED: ${msg}\n`);
  warned = true;
  return undefined;
}

/** Spawns `cmd args` inside `host`'s network namespace (same mounts and filesystem as the test). */
export function inNamespace(host: TestHost, cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
  return spawn('nsenter', [`--net=/var/run/netns/${host.netns}`, '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** A dockerode client on `host`'s own engine. */
export function dockerFor(host: TestHost): Docker {
  return new Docker({ socketPath: host.socket });
}
