/**
 * Test dependencies: real Docker and real Redis. When one is missing, a test calling these
 * fails under CI=true and otherwise is reported loudly as skipped (never silently).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CI = process.env.CI === 'true';
export const REDIS_URL = process.env.POSEIDON_TEST_REDIS_URL ?? 'redis://127.0.0.1:6390';
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ORACLES = path.resolve(ROOT, '..', 'shared', 'oracles');

function probe(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

let dockerOk: boolean | undefined;
let redisOk: boolean | undefined;
let sentinelOk: boolean | undefined;

/** True when the test may run; false (after a loud message) when it must be skipped locally. */
function gate(ok: boolean, what: string, hint: string): boolean {
  if (ok) return true;
  if (CI) throw new Error(`${what} is required under CI=true but is not available (${hint})`);
  console.warn(`\n  !! SKIPPED: ${what} not available (${hint}); run scripts/dev-env.sh\n`);
  return false;
}

export function haveDocker(): boolean {
  dockerOk ??= probe('docker', ['info', '--format', '{{.ServerVersion}}']);
  return gate(dockerOk, 'Docker engine', '`docker info` failed');
}

export function haveRedis(): boolean {
  const u = new URL(REDIS_URL);
  redisOk ??= probe('redis-cli', ['-h', u.hostname, '-p', u.port || '6379', 'ping']);
  return gate(redisOk, 'Redis', `no answer at ${REDIS_URL}`);
}

/** Debian's redis-server and redis-sentinel binaries (spec/helpers/sentinel.ts starts its own). */
export function haveSentinel(): boolean {
  sentinelOk ??= probe('redis-server', ['--version']) && probe('redis-sentinel', ['--version']);
  return gate(sentinelOk, 'Redis Sentinel (redis-server and redis-sentinel)', 'apt-get install redis-server redis-sentinel');
}

/** Path of a third-party schema in ../shared/oracles, or undefined (fails under CI=true). */
export function oracle(name: string): string | undefined {
  const p = path.join(ORACLES, name);
  return gate(existsSync(p), `oracle ${name}`, `missing ${p}`) ? p : undefined;
}
