/**
 * A real Redis Sentinel deployment for tests: one primary and `replicas` replicas (Debian's
 * `redis-server`, AOF on, each in its own temp dir) watched by three `redis-sentinel`
 * processes (quorum 2), all on free ports of one address (loopback by default).
 *
 *   const rig = await startSentinelRig();          // resolves once every sentinel agrees
 *   try {
 *     const store = await openStore({ redisUrl: rig.url });
 *     const old = await rig.killPrimary();          // SIGKILL by pid
 *     const { primary, ms } = await rig.waitFailover();
 *     await rig.restartOld();                       // rejoins as a replica of `primary`
 *   } finally {
 *     await rig.stop();                             // every process by pid, then the temp dir
 *   }
 *
 * Every wait polls a condition with a generous bound (fresh machines are slow) and, when it
 * times out, throws with the tail of every process's log. Processes still running when the
 * test process exits (or is interrupted) are SIGKILLed by pid and the temp dir removed by an
 * exit hook, so a crashed suite leaves nothing behind (children are unref'd: a forgotten rig
 * never keeps the test process alive); what a SIGKILLed test process left is swept by the next
 * rig. Ports are free ephemeral ones (never 6379, 6390 or 26379), each claimed machine-wide
 * until `stop`, so concurrent rigs, in this process or another, never share one, even while a
 * killed node waits to be restarted on its port.
 *
 * Processes in network namespaces (a `poseidon worker` beside its own engine) cannot reach the
 * host's loopback: start the rig with `host` set to the host side of their veth (10.250.1.1 in
 * environment.md); every process binds and announces that address, and the test process
 * reaches it too. Other faults: `kill(address, 'SIGSTOP' | 'SIGCONT' | ...)` and `restart(address)`
 * on any process of `processes()` (sentinels included).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { dataConf, fields, freePort, infoMap, killQuietly, LIVE, makeRigDir, releasePort, removeRigDir, sentinelConf, sweepStale, tail, until, type RigSettings } from './sentinel-support.ts';

export interface SentinelRigOptions {
  /** The monitored primary's name. Default: `poseidon-<random>`. */
  name?: string;
  /** `requirepass` (and `masterauth`) of the data nodes and `requirepass` of the sentinels. */
  password?: string;
  /** Address every process binds and announces (what clients are told). Default 127.0.0.1. */
  host?: string;
  /** Replicas of the primary. Default 1. */
  replicas?: number;
  /** Sentinel `down-after-milliseconds`. Default 1000. */
  downAfterMs?: number;
  /** Sentinel `failover-timeout`. Default 5000 (a failed election is retried after twice that). */
  failoverTimeoutMs?: number;
  /** Data nodes' `min-replicas-to-write` (with `min-replicas-max-lag 10`). Default 0 (off). */
  minReplicasToWrite?: number;
  /** Default `everysec`. */
  appendfsync?: 'everysec' | 'always';
  /** Bound of the start-up wait (processes up, sentinels agreeing). Default 60 s. */
  startTimeoutMs?: number;
}

/** One process the rig started. `pid` is undefined once it was killed or stopped. */
export interface RigProcess {
  kind: 'redis' | 'sentinel';
  /** `host:port`. */
  address: string;
  pid: number | undefined;
}

export interface SentinelRig {
  readonly name: string;
  /** `redis+sentinel://[:password@]host:port,host:port,host:port/<name>`. */
  readonly url: string;
  /** The sentinels' `host:port` addresses. */
  readonly sentinels: readonly string[];
  /** The data nodes' `host:port` addresses (primary first, as started). */
  readonly nodes: readonly string[];
  readonly password: string | undefined;
  /** The temp dir holding configs, data and logs (removed by `stop`). */
  readonly dir: string;
  /** Every process started, with its current pid. */
  processes(): RigProcess[];
  /** The current primary as the first answering sentinel names it (`host:port`). */
  primary(): Promise<string>;
  /** SIGKILLs the current primary's process and waits for it to be gone; its address. */
  killPrimary(): Promise<string>;
  /** Sends `signal` (default SIGKILL) to the rig's process at `address`; waits for it to exit unless the signal is SIGSTOP/SIGCONT. */
  kill(address: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts the stopped process at `address` again (same config and data dir) and waits until it answers PING. */
  restart(address: string): Promise<void>;
  /**
   * After `killPrimary`: resolves once every sentinel names another primary and that one
   * answers ROLE as master; `ms` counts from the kill. Default bound 60 s.
   */
  waitFailover(timeoutMs?: number): Promise<{ primary: string; ms: number }>;
  /**
   * Restarts the node `killPrimary` killed (same config and data) and waits until it replicates
   * the current primary (Sentinel turns it into a replica: REPLICAOF + CONFIG REWRITE). When no
   * failover happened meanwhile, waits until it answers as the primary again. Default bound 90 s.
   */
  restartOld(timeoutMs?: number): Promise<{ address: string; ms: number }>;
  /** Waits until every sentinel sees the primary up, the other two sentinels and every live replica in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Waits until every live replica's replication offset reached the primary's (all writes so far replicated). */
  waitCaughtUp(timeoutMs?: number): Promise<void>;
  /** One command on one node or sentinel (`host:port`), on a short-lived connection. */
  ask(address: string, ...args: (string | number)[]): Promise<unknown>;
  /** The last lines of every process's log (for failure messages). */
  logs(lines?: number): string;
  /** Kills every process still running (SIGKILL, by pid) and removes the temp dir; idempotent, never throws. */
  stop(): Promise<void>;
}

interface Proc extends RigProcess {
  port: number;
  conf: string;
  log: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
}

/**
 * Resolves when every process in `procs` exited, or after `ms`. A timer holds the event loop
 * meanwhile: children are unref'd, so their exit alone would not keep the test process running.
 */
async function exitedWithin(procs: readonly Proc[], ms: number): Promise<void> {
  const ac = new AbortController();
  await Promise.race([Promise.all(procs.map((p) => p.exited)), sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
  ac.abort();
}

/**
 * Starts the deployment and resolves once it is healthy (see `waitHealthy`). On any failure it
 * stops what it started and rethrows, so a caller needs no cleanup for a rig it never got.
 */
export async function startSentinelRig(options: SentinelRigOptions = {}): Promise<SentinelRig> {
  const o: RigSettings = {
    name: `poseidon-${randomBytes(4).toString('hex')}`, host: '127.0.0.1', replicas: 1, downAfterMs: 1000, failoverTimeoutMs: 5000,
    minReplicasToWrite: 0, appendfsync: 'everysec', startTimeoutMs: 60_000, ...options,
  };
  sweepStale();
  const root = makeRigDir();
  const procs: Proc[] = [];
  const rig = new Rig(o, root, procs);
  try {
    const primary = await rig.launch('redis', (port, dir) => dataConf(o, port, dir));
    for (let i = 0; i < o.replicas; i++) await rig.launch('redis', (port, dir) => dataConf(o, port, dir, primary));
    for (let i = 0; i < 3; i++) await rig.launch('sentinel', (port, dir) => sentinelConf(o, port, dir, primary));
    await rig.waitHealthy(o.startTimeoutMs);
    return rig;
  } catch (err) {
    await rig.stop();
    throw err;
  }
}

class Rig implements SentinelRig {
  readonly name: string;
  readonly password: string | undefined;
  readonly dir: string;
  readonly #host: string;
  readonly #procs: Proc[];
  readonly #bin = { redis: 'redis-server', sentinel: 'redis-sentinel' } as const;
  #killed: { proc: Proc; at: number } | undefined;
  #stopped = false;

  constructor(o: { name: string; host: string; password?: string }, dir: string, procs: Proc[]) {
    this.name = o.name;
    this.password = o.password;
    this.#host = o.host;
    this.dir = dir;
    this.#procs = procs;
  }

  get sentinels(): string[] {
    return this.#procs.filter((p) => p.kind === 'sentinel').map((p) => p.address);
  }

  get nodes(): string[] {
    return this.#procs.filter((p) => p.kind === 'redis').map((p) => p.address);
  }

  get url(): string {
    const auth = this.password ? `:${encodeURIComponent(this.password)}@` : '';
    return `redis+sentinel://${auth}${this.sentinels.join(',')}/${this.name}`;
  }

  processes(): RigProcess[] {
    return this.#procs.map(({ kind, address, pid }) => ({ kind, address, pid }));
  }

  /** Starts one process on a free port (another port when that one was taken meanwhile); its port. */
  async launch(kind: 'redis' | 'sentinel', conf: (port: number, dir: string) => string): Promise<number> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort(this.#host);
      const dir = path.join(this.dir, `${kind}-${port}`);
      mkdirSync(dir, { recursive: true });
      const proc: Proc = { kind, port, address: `${this.#host}:${port}`, pid: undefined, conf: path.join(dir, `${kind}.conf`), log: path.join(dir, `${kind === 'redis' ? 'redis' : 'sentinel'}.log`), child: undefined, exited: Promise.resolve() };
      writeFileSync(proc.conf, conf(port, dir));
      this.#procs.push(proc);
      try {
        await this.#spawn(proc);
        return port;
      } catch (err) {
        lastErr = err;
        if (proc.pid) killQuietly(proc.pid);
        await exitedWithin([proc], 10_000);
        this.#procs.splice(this.#procs.indexOf(proc), 1);
        releasePort(port);
        if (!/Address already in use/i.test(tail(proc.log, 20))) throw err;
      }
    }
    throw lastErr;
  }

  /** Spawns `proc` from its config and waits until it answers PING (or fails when it exits first). */
  async #spawn(proc: Proc): Promise<void> {
    const child = spawn(this.#bin[proc.kind], [proc.conf], { stdio: 'ignore' });
    child.unref(); // a rig left running never keeps the test process alive; the exit hook kills it
    let gone = false;
    // 'error' alone (no 'exit') when the binary cannot be spawned at all.
    proc.exited = new Promise((resolve) => {
      const end = () => { gone = true; resolve(); };
      child.once('exit', end).once('error', end);
    });
    await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
    proc.child = child;
    proc.pid = child.pid;
    if (child.pid) LIVE.add(child.pid);
    void proc.exited.then(() => {
      if (child.pid) LIVE.delete(child.pid);
      if (proc.child === child) proc.pid = undefined;
    });
    await until(`${proc.kind} ${proc.address} to answer PING`, 30_000, async () => {
      if (gone) throw Object.assign(new Error(`${proc.kind} ${proc.address} exited during start-up:\n${tail(proc.log, 20)}`), { fatal: true });
      return (await this.ask(proc.address, 'PING')) === 'PONG' ? true : undefined;
    }, () => tail(proc.log, 20));
  }

  async ask(address: string, ...args: (string | number)[]): Promise<unknown> {
    const at = address.lastIndexOf(':');
    const client = new Redis({
      host: address.slice(0, at), port: Number(address.slice(at + 1)), ...(this.password ? { password: this.password } : {}),
      lazyConnect: true, connectTimeout: 2000, commandTimeout: 5000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await client.call(String(args[0]), ...args.slice(1));
    } finally {
      client.disconnect();
    }
  }

  async primary(): Promise<string> {
    for (const s of this.#liveSentinels()) {
      try {
        const r = (await this.ask(s, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)) as [string, string] | null;
        if (r) return `${r[0]}:${r[1]}`;
      } catch { /* the next sentinel */ }
    }
    throw new Error(`sentinel rig: no sentinel named a primary for ${this.name}\n${this.logs()}`);
  }

  async killPrimary(): Promise<string> {
    const address = await this.primary();
    const proc = this.#proc(address, 'redis');
    const at = Date.now();
    await this.kill(address);
    this.#killed = { proc, at };
    return address;
  }

  async kill(address: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.#proc(address);
    if (!proc.pid) throw new Error(`sentinel rig: ${address} is not running`);
    process.kill(proc.pid, signal);
    if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') await exitedWithin([proc], 10_000);
  }

  async restart(address: string): Promise<void> {
    const proc = this.#proc(address);
    if (proc.pid) throw new Error(`sentinel rig: ${address} is already running`);
    await this.#spawn(proc);
  }

  #proc(address: string, kind?: 'redis' | 'sentinel'): Proc {
    const proc = this.#procs.find((p) => p.address === address && (!kind || p.kind === kind));
    if (!proc) throw new Error(`sentinel rig: no ${kind ?? 'process'} at ${address} in this rig`);
    return proc;
  }

  async waitFailover(timeoutMs = 60_000): Promise<{ primary: string; ms: number }> {
    const killed = this.#killed;
    if (!killed) throw new Error('sentinel rig: waitFailover without killPrimary');
    const primary = await until('every sentinel to name a new primary that answers as master', timeoutMs, async () => {
      const named = new Set<string>();
      for (const s of this.#liveSentinels()) {
        const r = (await this.ask(s, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)) as [string, string] | null;
        named.add(r ? `${r[0]}:${r[1]}` : '');
      }
      const [only] = named;
      if (named.size !== 1 || !only || only === killed.proc.address) return undefined;
      const role = (await this.ask(only, 'ROLE')) as [string];
      return role[0] === 'master' ? only : undefined;
    }, () => this.logs());
    return { primary, ms: Date.now() - killed.at };
  }

  async restartOld(timeoutMs = 90_000): Promise<{ address: string; ms: number }> {
    const killed = this.#killed;
    if (!killed) throw new Error('sentinel rig: restartOld without killPrimary');
    const t0 = Date.now();
    const old = killed.proc.address;
    await this.restart(old);
    await until(`${old} to replicate the primary the sentinels name`, timeoutMs, async () => {
      const primary = await this.primary();
      const info = infoMap(await this.ask(old, 'INFO', 'replication'));
      if (primary === old) return info.get('role') === 'master' ? true : undefined; // no failover happened
      const ok = info.get('role') === 'slave' && `${info.get('master_host')}:${info.get('master_port')}` === primary && info.get('master_link_status') === 'up';
      return ok ? true : undefined;
    }, () => this.logs(), 200);
    this.#killed = undefined;
    return { address: old, ms: Date.now() - t0 };
  }

  async waitHealthy(timeoutMs = 60_000): Promise<void> {
    await until('the sentinels to agree on a healthy primary, each other and every live replica', timeoutMs, () => this.#healthy(), () => this.logs(), 200);
  }

  /** True when healthy, undefined when not yet. */
  async #healthy(): Promise<true | undefined> {
    const sentinels = this.#liveSentinels();
    const primary = await this.primary();
    const replicas = this.#procs.filter((p) => p.kind === 'redis' && p.pid && p.address !== primary).map((p) => p.address);
    for (const s of sentinels) {
      const m = fields(await this.ask(s, 'SENTINEL', 'MASTER', this.name));
      if (`${m.get('ip')}:${m.get('port')}` !== primary || m.get('flags') !== 'master') return undefined;
      if (Number(m.get('num-other-sentinels')) !== sentinels.length - 1) return undefined;
      const seen = ((await this.ask(s, 'SENTINEL', 'REPLICAS', this.name)) as unknown[]).map(fields);
      for (const r of replicas) {
        const row = seen.find((x) => `${x.get('ip')}:${x.get('port')}` === r);
        if (!row || row.get('flags') !== 'slave' || row.get('master-link-status') !== 'ok') return undefined;
      }
      await this.ask(s, 'SENTINEL', 'CKQUORUM', this.name); // throws (retried) until quorum and authorization can be reached
    }
    const info = infoMap(await this.ask(primary, 'INFO', 'replication'));
    const online = [...info.entries()].filter(([k, v]) => /^slave\d+$/.test(k) && v.includes('state=online')).length;
    return info.get('role') === 'master' && online >= replicas.length ? true : undefined;
  }

  async waitCaughtUp(timeoutMs = 30_000): Promise<void> {
    const primary = await this.primary();
    const target = Number(infoMap(await this.ask(primary, 'INFO', 'replication')).get('master_repl_offset'));
    const replicas = this.#procs.filter((p) => p.kind === 'redis' && p.pid && p.address !== primary);
    await until(`every replica to reach offset ${target} of ${primary}`, timeoutMs, async () => {
      for (const r of replicas) {
        const info = infoMap(await this.ask(r.address, 'INFO', 'replication'));
        if (!(Number(info.get('slave_repl_offset')) >= target)) return undefined;
      }
      return true;
    }, () => this.logs(), 50);
  }

  #liveSentinels(): string[] {
    return this.#procs.filter((p) => p.kind === 'sentinel' && p.pid).map((p) => p.address);
  }

  logs(lines = 15): string {
    return this.#procs.map((p) => `--- ${p.kind} ${p.address} (pid ${p.pid ?? 'gone'})\n${tail(p.log, lines)}`).join('\n');
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const p of this.#procs) if (p.pid) killQuietly(p.pid); // a SIGSTOPped one dies too
    await exitedWithin(this.#procs, 10_000);
    for (const p of this.#procs) releasePort(p.port);
    removeRigDir(this.dir);
  }
}
