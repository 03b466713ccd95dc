import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from './deps.ts';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface ServeProcess {
  url: string;
  proc: ChildProcess;
  /** Everything the process printed (stdout and stderr). */
  logs(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL (kill -9) and wait for exit. */
  kill(): Promise<void>;
}

let built = false;

/**
 * The image's command line after `node` (the Dockerfile's ENTRYPOINT: V8 flags, then the bundle
 * `npm run build` writes, made absolute), so tests and benches run exactly what the image runs.
 * Builds the bundle from the current sources, once per process.
 */
export function imageCommand(): string[] {
  if (!built) {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'pipe' });
    built = true;
  }
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  const argv = line ? (JSON.parse(line) as string[]) : [];
  if (argv[0] !== 'node' || argv.length < 2) throw new Error(`Dockerfile: ENTRYPOINT is not ["node", ...]: ${line ?? 'none'}`);
  return argv.slice(1).map((a) => (a.startsWith('-') ? a : path.join(ROOT, a)));
}

/**
 * Spawns `poseidon serve` as its own process with `env` and waits for /healthz (bounded): the
 * TypeScript sources through tsx (as `npm start` runs it), or with `opts.image` the image's
 * command (`imageCommand`).
 */
export async function startServe(env: Record<string, string>, args: string[] = [], opts: { image?: boolean } = {}): Promise<ServeProcess> {
  const port = env.POSEIDON_PORT ? Number(env.POSEIDON_PORT) : await freePort();
  const entry = opts.image ? imageCommand() : ['--import', 'tsx', path.join(ROOT, 'src/cli.ts')];
  const proc = spawn(process.execPath, [...entry, 'serve', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', POSEIDON_HOST: '127.0.0.1', ...env, POSEIDON_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  const handle: ServeProcess = { url, proc, logs: () => out, stop: () => waitExit('SIGTERM'), kill: () => waitExit('SIGKILL') };
  // Generous: a first catalog sync (a git clone, a registry) on a loaded 2-core machine is slow.
  for (let i = 0; i < 900; i++) {
    if (proc.exitCode !== null) throw new Error(`serve exited early (${proc.exitCode}):\n${out}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) return handle;
    await sleep(100);
  }
  await handle.kill();
  throw new Error(`serve did not become healthy in 90 s:\n${out}`);
}

/** A small JSON client for the API. */
export function apiClient(url: string, key: string) {
  return async (method: string, p: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
}

/** Polls `fn` every `everyMs` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
