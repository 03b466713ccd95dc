/**
 * A real OpenSSH server for tests, on 127.0.0.1 and a free port, accepting one generated client
 * key (a deploy key), with its own host key. Started as a child process and stopped by its pid.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CI } from '../helpers/deps.ts';
import { freePort } from '../helpers/server.ts';

export const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  port: number;
  user: string;
  /** Private key text of the accepted deploy key. */
  clientKey: string;
  /** known_hosts line for the server. */
  knownHosts: string;
  /** Generates a key the server does not accept. */
  otherKey(): string;
  close(): Promise<void>;
}

/** True when the test may run (sshd installed); under CI=true a missing sshd fails. */
export function haveSshd(): boolean {
  if (existsSync(SSHD)) return true;
  if (CI) throw new Error(`${SSHD} is required under CI=true (openssh-server); run scripts/dev-env.sh`);
  console.warn(`\n  !! SKIPPED: ${SSHD} not available; run scripts/dev-env.sh\n`);
  return false;
}

function keygen(file: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'poseidon-test', '-f', file], { stdio: 'ignore', timeout: 10_000 });
  return readFileSync(file, 'utf8');
}

export async function startSshd(): Promise<Sshd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-sshd-'));
  const port = await freePort();
  keygen(path.join(dir, 'host'));
  const clientKey = keygen(path.join(dir, 'client'));
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client.pub')));
  const config = [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${path.join(dir, 'host')}`, `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'PermitRootLogin prohibit-password',
    `PidFile ${path.join(dir, 'sshd.pid')}`, 'LogLevel ERROR',
  ].join('\n');
  writeFileSync(path.join(dir, 'sshd_config'), `${config}\n`);
  mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory
  const proc: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: 'ignore' });
  for (let i = 0; i < 50 && !(await listening(port)); i++) await sleep(100);
  const hostPub = readFileSync(path.join(dir, 'host.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  let others = 0;
  return {
    port, user: userInfo().username, clientKey, knownHosts: `[127.0.0.1]:${port} ${hostPub}\n`,
    otherKey: () => keygen(path.join(dir, `other-${others++}`)),
    close: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await new Promise((resolve) => (proc.exitCode !== null ? resolve(undefined) : proc.once('exit', resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
