/**
 * The plumbing of spec/helpers/sentinel.ts: process, temp dir and port bookkeeping (the exit
 * hook, the sweep of what a SIGKILLed test process left, port claims shared across processes),
 * bounded polling, reply parsing and the configuration files of data nodes and sentinels.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every rig option, defaulted (see `SentinelRigOptions` in sentinel.ts). */
export interface RigSettings {
  name: string;
  password?: string;
  host: string;
  replicas: number;
  downAfterMs: number;
  failoverTimeoutMs: number;
  minReplicasToWrite: number;
  appendfsync: 'everysec' | 'always';
  startTimeoutMs: number;
}

/** A config-file string (Redis reads double-quoted strings with C-like escapes). */
function quote(text: string): string {
  return JSON.stringify(text);
}

/** Where rigs keep their temp dirs (`<prefix>XXXXXX`, each with an `owner` file naming the test process). */
export const RIG_DIR_PREFIX = path.join(tmpdir(), 'poseidon-sentinel-');
/** Port claims shared by every rig on this machine, whatever process started it: `<port>` files holding the owner's pid. */
const PORTS_DIR = path.join(tmpdir(), 'poseidon-rig-ports');
/**
 * Ports a rig never takes: Redis's and Sentinel's defaults and the shared test Redis
 * (scripts/dev-env.sh, POSEIDON_TEST_REDIS_PORT). The kernel's ephemeral range, where free ports
 * come from, excludes them anyway on a default Linux; this holds for any range.
 */
const RESERVED = new Set([6379, 26379, 6390, Number(process.env.POSEIDON_TEST_REDIS_PORT ?? 6390)]);

/** Pids of rig processes still running, temp dirs not yet removed, ports claimed (the exit hook clears them). */
export const LIVE = new Set<number>();
export const DIRS = new Set<string>();
const CLAIMED = new Set<number>();
let hooked = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGKILLs `pid` unless it is gone already; never throws. */
export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}

/** Kills every live rig process, removes every rig dir and releases every port claim of this process (synchronous). */
function cleanUp(): void {
  for (const pid of LIVE) killQuietly(pid);
  for (const dir of DIRS) removeRigDir(dir);
  for (const port of CLAIMED) releasePort(port);
}

/**
 * Last-resort cleanup: a suite that crashes, exits early or is interrupted (SIGINT, SIGTERM,
 * SIGHUP: cleaned, then, unless someone else listens for it, the signal is raised again so the
 * process ends as it would have) leaves no Redis process, temp dir or port claim behind. A test
 * process killed with SIGKILL cannot clean: the next rig to start sweeps what it left
 * (`sweepStale`).
 */
export function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanUp);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanUp();
      // Another listener handles the signal itself; without one, end as the default action would.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/**
 * Removes port claims and rig dirs whose test process is gone (SIGKILLed, so no hook ran), after
 * SIGKILLing the Redis processes still running in them: a process counts as the rig's only when
 * its working directory is inside that dir (each node and sentinel runs in its own, `dir` in its
 * config), so a reused pid is never hit. A dir without an owner file (rigs of older versions of
 * this helper) counts as stale after 10 minutes.
 */
export function sweepStale(): void {
  for (const name of existsSync(PORTS_DIR) ? readdirSync(PORTS_DIR) : []) {
    const file = path.join(PORTS_DIR, name);
    try {
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (!(owner > 0 && alive(owner))) rmSync(file, { force: true });
    } catch { /* released meanwhile */ }
  }
  const parent = path.dirname(RIG_DIR_PREFIX);
  const stale = readdirSync(parent)
    .map((name) => path.join(parent, name))
    .filter((dir) => dir.startsWith(RIG_DIR_PREFIX) && !DIRS.has(dir) && isStale(dir));
  if (stale.length === 0) return;
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let cwd: string;
    try { cwd = readlinkSync(`/proc/${entry}/cwd`); } catch { continue; }
    if (stale.some((dir) => cwd.startsWith(`${dir}/`))) killQuietly(Number(entry));
  }
  for (const dir of stale) rmSync(dir, { recursive: true, force: true });
}

function isStale(dir: string): boolean {
  try {
    const owner = Number(readFileSync(path.join(dir, 'owner'), 'utf8').trim());
    return !(owner > 0 && alive(owner));
  } catch {
    try { return Date.now() - statSync(dir).mtimeMs > 600_000; } catch { return false; }
  }
}

/** A new rig dir owned by this process (removed by the rig's `stop` or the exit hook). */
export function makeRigDir(): string {
  hookExit();
  const dir = mkdtempSync(RIG_DIR_PREFIX);
  DIRS.add(dir);
  writeFileSync(path.join(dir, 'owner'), `${process.pid}\n`);
  return dir;
}

/** Removes a rig dir made by `makeRigDir`; never throws (a leftover temp dir is harmless). */
export function removeRigDir(dir: string): void {
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* swept later */ }
  DIRS.delete(dir);
}

/**
 * Claims `port` for this process against every other rig on the machine (other test processes
 * included): a claim file created exclusively, holding our pid; one whose owner is gone is taken
 * over. False when a live process holds it.
 */
function claimPort(port: number): boolean {
  mkdirSync(PORTS_DIR, { recursive: true });
  const file = path.join(PORTS_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      CLAIMED.add(port);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = 0;
      try { owner = Number(readFileSync(file, 'utf8').trim()); } catch { continue; } // released meanwhile
      if (owner === process.pid || (owner > 0 && alive(owner))) return false;
      rmSync(file, { force: true }); // its process is gone
    }
  }
  return false;
}

/** Gives up a port claimed by `freePort` (when the rig stops); never throws. */
export function releasePort(port: number): void {
  if (!CLAIMED.delete(port)) return;
  try { rmSync(path.join(PORTS_DIR, String(port)), { force: true }); } catch { /* a stale claim is taken over */ }
}

/**
 * A port that was free on `host` a moment ago, claimed for this process until `releasePort`:
 * no other rig (here or in another test process) gets it meanwhile, even while the process on it
 * is killed and before it is restarted. Never a reserved port. Binding can still collide with a
 * program that is no rig; `launch` retries that with another port.
 */
export async function freePort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    if (!RESERVED.has(port) && claimPort(port)) return port;
  }
  throw new Error(`sentinel rig: no free, unclaimed port on ${host} after 100 tries (claims in ${PORTS_DIR})`);
}

/** The last `lines` lines of a log file. */
export function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined; bounded in time. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, diagnose: () => string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let round = 0; round < 100_000; round++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) break;
    await sleep(everyMs);
  }
  const why = last instanceof Error ? ` (last error: ${last.message})` : '';
  throw new Error(`sentinel rig: timed out after ${timeoutMs} ms waiting for ${what}${why}\n${diagnose()}`);
}

/** `INFO <section>` as a map. */
export function infoMap(text: unknown): Map<string, string> {
  return new Map(String(text).split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

/** `SENTINEL MASTER`/`REPLICAS` reply rows as maps. */
export function fields(row: unknown): Map<string, string> {
  const flat = row as string[];
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i] as string, flat[i + 1] as string);
  return m;
}

/** redis.conf of a data node (a replica of `primary` when given): AOF on, diskless sync without delay. */
export function dataConf(o: RigSettings, port: number, dir: string, primary?: number): string {
  return [
    `bind ${o.host}`, `port ${port}`, 'protected-mode no', 'daemonize no', `dir ${dir}`, `logfile ${path.join(dir, 'redis.log')}`,
    'appendonly yes', `appendfsync ${o.appendfsync}`, 'save ""', 'repl-diskless-sync yes', 'repl-diskless-sync-delay 0',
    `replica-announce-ip ${o.host}`,
    ...(primary ? [`replicaof ${o.host} ${primary}`] : []),
    ...(o.password ? [`requirepass ${quote(o.password)}`, `masterauth ${quote(o.password)}`] : []),
    ...(o.minReplicasToWrite > 0 ? [`min-replicas-to-write ${o.minReplicasToWrite}`, 'min-replicas-max-lag 10'] : []),
  ].join('\n') + '\n';
}

/** sentinel.conf watching `primary` with quorum 2. */
export function sentinelConf(o: RigSettings, port: number, dir: string, primary: number): string {
  const n = o.name;
  return [
    `bind ${o.host}`, `port ${port}`, 'protected-mode no', 'daemonize no', `dir ${dir}`, `logfile ${path.join(dir, 'sentinel.log')}`,
    `sentinel announce-ip ${o.host}`,
    `sentinel monitor ${n} ${o.host} ${primary} 2`,
    `sentinel down-after-milliseconds ${n} ${o.downAfterMs}`,
    `sentinel failover-timeout ${n} ${o.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${n} 1`,
    ...(o.password ? [`sentinel auth-pass ${n} ${quote(o.password)}`, `requirepass ${quote(o.password)}`] : []),
  ].join('\n') + '\n';
}
