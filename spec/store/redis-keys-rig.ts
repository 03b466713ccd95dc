/**
 * Rig for the Redis key proofs (redis-keys*.test.ts): a throwaway `redis-server` (standalone, or
 * a one-node Cluster owning every slot) on a free loopback port with its files in a temp dir,
 * stopped by its pid; a MONITOR recorder that groups the commands each script ran under the
 * script call (Redis shows a script's EVAL/EVALSHA and then, from source `lua`, every command it
 * runs); and the check that every key such a command names (COMMAND GETKEYS) was declared.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { CI } from '../helpers/deps.ts';
import { freePort } from '../helpers/server.ts';

let serverOk: boolean | undefined;

/** True when `redis-server` runs; under CI=true its absence throws (never a silent skip). */
export function haveRedisServer(): boolean {
  if (serverOk === undefined) {
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore', timeout: 5000 });
      serverOk = true;
    } catch {
      serverOk = false;
    }
  }
  if (serverOk) return true;
  if (CI) throw new Error('redis-server is required under CI=true but is not available; run scripts/dev-env.sh');
  console.warn('\n  !! SKIPPED: redis-server not available; run scripts/dev-env.sh\n');
  return false;
}

/** A running throwaway Redis. */
export interface Throwaway {
  url: string;
  /** Kills it by pid and removes its directory; idempotent. */
  stop(): Promise<void>;
}

/** Starts a throwaway Redis (no persistence); with `cluster`, a one-node Cluster serving all 16384 slots. */
export async function startThrowaway(opts: { cluster: boolean }): Promise<Throwaway> {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-redis-keys-'));
  const port = await freePort();
  const clusterArgs = opts.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf')] : [];
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no', ...clusterArgs], { stdio: 'ignore' });
  child.on('error', () => {}); // reported below as "did not answer"
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Also when this process ends without reaching `stop` (process.exit, an uncaught error).
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', kill);
  const stop = async (): Promise<void> => {
    process.off('exit', kill);
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      kill();
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `redis://127.0.0.1:${port}`;
  try {
    await until(() => ping(url), `redis-server on ${port} to answer`);
    if (opts.cluster) {
      await withClient(url, (r) => r.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383'));
      await until(async () => (await withClient(url, (r) => r.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok'), 'the cluster to be ok');
    }
    return { url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function ping(url: string): Promise<boolean> {
  return (await withClient(url, (r) => r.ping())) === 'PONG';
}

async function withClient<T>(url: string, use: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    return await use(r);
  } finally {
    r.disconnect();
  }
}

/** One command as MONITOR shows it: who sent it (`lua` for a script) and its arguments. */
export interface Seen {
  source: string;
  args: string[];
}

/** One script call: its SHA-1, the keys it declared, and the commands it ran. */
export interface ScriptRun {
  sha: string;
  declared: string[];
  ran: string[][];
}

/** What a MONITOR connection has seen so far. */
export interface Recorder {
  runs: ScriptRun[];
  /** Every command seen, in order (clear it to measure a span). */
  seen: Seen[];
  /** Script commands seen with no script call before them (would mean MONITOR's order is not as assumed). */
  orphans: Seen[];
  /** Resolves once everything sent before the call has been seen. */
  settle(): Promise<void>;
  stop(): void;
}

const SCRIPT_CALLS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro']);

/** SHA-1 of a script body, as EVALSHA names it. */
export function sha1(lua: string): string {
  return createHash('sha1').update(lua).digest('hex');
}

/** Opens MONITOR on `url` (a raw socket: the argument escapes are decoded here, byte-exact). */
export async function record(url: string): Promise<Recorder> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  const rec: Recorder & { marks: Set<string> } = { runs: [], seen: [], orphans: [], marks: new Set(), settle: async () => {}, stop: () => socket.destroy() };
  let current: ScriptRun | undefined;
  let buffered = '';
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    let end: number;
    while ((end = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const seen = parseLine(line);
      if (!seen) continue;
      if (seen.args[0]?.toLowerCase() === 'echo' && seen.args[1]?.startsWith('poseidon-settle-')) {
        rec.marks.add(seen.args[1]);
        continue;
      }
      rec.seen.push(seen);
      if (seen.source === 'lua') {
        if (current) current.ran.push(seen.args);
        else rec.orphans.push(seen);
        continue;
      }
      current = scriptRun(seen.args);
      if (current) rec.runs.push(current);
    }
  });
  socket.write('MONITOR\r\n');
  // One connection for the marks, opened before anything is recorded (a new connection's own
  // commands would show up in what is measured).
  const marker = new Redis(url, { maxRetriesPerRequest: 0 });
  marker.on('error', () => {});
  let n = 0;
  rec.settle = async () => {
    const mark = `poseidon-settle-${process.pid}-${n++}`;
    await marker.echo(mark);
    await until(async () => rec.marks.has(mark), 'MONITOR to catch up');
  };
  rec.stop = () => {
    socket.destroy();
    marker.disconnect();
  };
  await rec.settle();
  rec.seen.length = 0;
  return rec;
}

function scriptRun(args: string[]): ScriptRun | undefined {
  const [cmd = '', body = '', numkeys = '0'] = args;
  if (!SCRIPT_CALLS.has(cmd.toLowerCase())) return undefined;
  const sha = cmd.toLowerCase().startsWith('evalsha') ? body.toLowerCase() : sha1(body);
  return { sha, declared: args.slice(3, 3 + Number(numkeys)), ran: [] };
}

const ESCAPES: Record<string, number> = { n: 10, r: 13, t: 9, a: 7, b: 8, '\\': 92, '"': 34 };

/** `<time> [<db> <source>] "arg" ...` with Redis's quoting (sdscatrepr) undone. */
function parseLine(line: string): Seen | undefined {
  const m = /^\+?\S+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
  if (!m) return undefined;
  const text = m[2] as string;
  const args: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '"') {
      i++;
      continue;
    }
    const bytes: number[] = [];
    for (i++; i < text.length && text[i] !== '"'; ) {
      if (text[i] === '\\' && text[i + 1] === 'x') {
        bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
        i += 4;
      } else if (text[i] === '\\') {
        bytes.push(ESCAPES[text[i + 1] as string] ?? (text.charCodeAt(i + 1)));
        i += 2;
      } else bytes.push(text.charCodeAt(i++));
    }
    i++;
    args.push(Buffer.from(bytes).toString('utf8'));
  }
  return { source: m[1] as string, args };
}

/** A key a script's command touched without the script declaring it. */
export interface Undeclared {
  sha: string;
  command: string;
  key: string;
}

/**
 * Every key that a command run inside a script names (as COMMAND GETKEYS on `url` says) but the
 * script call did not declare; a command whose keys cannot be resolved counts as undeclared.
 */
export async function undeclaredKeys(url: string, runs: readonly ScriptRun[]): Promise<Undeclared[]> {
  return withClient(url, async (r) => {
    const cache = new Map<string, Promise<string[] | Error>>();
    const keysOf = (args: string[]): Promise<string[] | Error> => {
      const id = JSON.stringify(args);
      let p = cache.get(id);
      if (!p && args.length < 2) p = Promise.resolve([]); // no arguments, no keys (TIME); GETKEYS wants some
      if (!p) {
        p = (r.call('COMMAND', 'GETKEYS', ...args) as Promise<string[]>).catch((err: Error) => (/no key arguments/.test(err.message) ? [] : err));
        cache.set(id, p);
      }
      return p;
    };
    const out: Undeclared[] = [];
    await Promise.all(runs.map(async (run) => {
      const declared = new Set(run.declared);
      for (const args of run.ran) {
        const keys = await keysOf(args);
        const command = args.join(' ').slice(0, 120);
        if (keys instanceof Error) out.push({ sha: run.sha, command, key: `(keys unknown: ${keys.message})` });
        else for (const key of keys) if (!declared.has(key)) out.push({ sha: run.sha, command, key });
      }
    }));
    return out;
  });
}
