/**
 * Real git repositories for tests: a bare "remote" and a working clone that commits and pushes,
 * in a temp dir removed by `dispose`. Every git call is bounded in time.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const GIT_ENV = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: tmpdir(),
  GIT_AUTHOR_NAME: 'Author', GIT_AUTHOR_EMAIL: 'author@example.test',
  GIT_COMMITTER_NAME: 'Author', GIT_COMMITTER_EMAIL: 'author@example.test',
  GIT_CONFIG_NOSYSTEM: '1',
};

/** The environment git runs with in tests (what configuration would pass to the source). */
export const TEST_GIT_ENV: Record<string, string> = { PATH: GIT_ENV.PATH, HOME: GIT_ENV.HOME };

export interface GitFixture {
  /** Temp dir holding everything. */
  base: string;
  /** Path of the bare remote (usable as a URL). */
  remote: string;
  /** The working clone. */
  work: string;
  git(...args: string[]): string;
  write(rel: string, text: string, mode?: number): void;
  symlink(rel: string, target: string): void;
  remove(rel: string): void;
  /** Commits everything and pushes to `main`; returns the new commit SHA. */
  push(message?: string): string;
  head(): string;
  dispose(): void;
}

/** A bare remote with branch `main` and a clone of it (no commits yet). */
export function gitFixture(): GitFixture {
  const base = mkdtempSync(path.join(tmpdir(), 'poseidon-git-'));
  const remote = path.join(base, 'remote.git');
  const work = path.join(base, 'work');
  const run = (cwd: string, args: string[]): string =>
    execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  run(base, ['init', '--bare', '-q', '-b', 'main', remote]);
  run(base, ['init', '-q', '-b', 'main', work]);
  run(work, ['remote', 'add', 'origin', remote]);
  let counter = 0;
  const fx: GitFixture = {
    base, remote, work,
    git: (...args) => run(work, args),
    write(rel, text, mode) {
      const p = path.join(work, rel);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, text);
      if (mode !== undefined) chmodSync(p, mode);
    },
    symlink(rel, target) {
      const p = path.join(work, rel);
      mkdirSync(path.dirname(p), { recursive: true });
      symlinkSync(target, p);
    },
    remove(rel) {
      rmSync(path.join(work, rel), { recursive: true, force: true });
    },
    push(message) {
      run(work, ['add', '-A']);
      run(work, ['commit', '-q', '--allow-empty', '-m', message ?? `change ${++counter}`]);
      run(work, ['push', '-q', '-f', 'origin', 'HEAD:main']);
      return fx.head();
    },
    head: () => run(work, ['rev-parse', 'HEAD']),
    dispose: () => rmSync(base, { recursive: true, force: true }),
  };
  return fx;
}

/** A small valid challenge file. */
export function challengeYaml(id: string, extra: Record<string, string> = {}): string {
  const fields: Record<string, string> = { id, name: `Challenge ${id}`, image: 'busybox:1.35', expose: '[{ name: web, port: 8080 }]', ...extra };
  return `${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
}
