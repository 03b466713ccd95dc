/**
 * The git source: one bare clone Poseidon owns (`<workdir>/mirror.git`), fetched on each sync,
 * and one immutable checkout per revision (`<workdir>/snapshots/<sha>`), so a build reading an
 * older revision is never disturbed by a newer checkout. Failures are typed and redacted; a
 * working copy found corrupt is wiped so the next attempt clones afresh.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { FetchOptions, Snapshot, Source, SourceInfo } from '../core/source.ts';
import { gitAccess, type GitAccess, type GitCredentials } from './git-access.ts';

export interface GitSourceOptions {
  /** Repository URL (https, ssh, file or a path); credentials in it are moved out of it. */
  url: string;
  branch: string;
  /** Sub-directory holding the challenges ('' or '.' for the root). */
  path: string;
  /** Directory Poseidon owns for the clone and snapshots. */
  workdir: string;
  credentials?: GitCredentials;
  /** Environment git runs with (PATH, HOME, proxies), from configuration. */
  env: Record<string, string>;
  /** A git command is killed after this long without output (default 60 s). */
  timeoutMs?: number;
}

const REMOTE_TROUBLE = /does not appear to be a git repository|could not resolve|unable to access|connection refused|could not read from remote|repository not found|authentication failed|timed out|timeout|early eof|permission denied|host key verification failed|returned error|no such device or address|unable to connect/i;
const CORRUPTION = /not a git repository|bad object|corrupt|unable to read|loose object|index file|\.lock'?: file exists|invalid object|missing (blob|tree|commit)|did not send all necessary objects|bad revision|fatal: bad|unknown revision|not a valid object/i;

/** See the module comment. `fetch` calls must not overlap (the sync loop serializes them). */
export class GitSource implements Source {
  readonly info: SourceInfo;
  private readonly access: GitAccess;
  private readonly mirror: string;
  private readonly snapshots: string;
  private readonly subPath: string;
  private last: string | undefined;

  constructor(private readonly opts: GitSourceOptions) {
    this.access = gitAccess(opts.url, opts.credentials ?? {}, opts.workdir);
    this.mirror = path.join(opts.workdir, 'mirror.git');
    this.snapshots = path.join(opts.workdir, 'snapshots');
    this.subPath = normalizeSubPath(opts.path);
    this.info = { kind: 'git', url: this.access.display, branch: opts.branch, path: this.subPath };
  }

  /** See `Source.fetch`: E_GIT_UNREACHABLE, E_GIT_BRANCH_MISSING, E_GIT_REWRITE, E_GIT_CORRUPT, E_GIT_PATH_MISSING. */
  async fetch(opts: FetchOptions = {}): Promise<Snapshot> {
    await this.ensureMirror();
    await this.fetchBranch();
    const sha = await this.local('resolve the fetched branch', ['rev-parse', '--verify', '-q', `refs/remotes/origin/${this.opts.branch}^{commit}`]);
    if (opts.since && opts.since !== sha && !opts.allowRewrite) await this.checkFastForward(opts.since, sha);
    const root = await this.materialize(sha);
    this.last = sha;
    const dir = path.join(root, this.subPath);
    const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      throw new PoseidonError(Codes.gitPathMissing, `path "${this.subPath}" is not a directory at ${sha.slice(0, 12)} of ${this.opts.branch}`, { kind: 'transient', detail: { revision: sha } });
    }
    return { revision: sha, root, path: this.subPath };
  }

  /** Removes every snapshot except `revisions` and the last fetched one, and leftovers of interrupted checkouts. */
  async retain(revisions: readonly string[]): Promise<void> {
    const keep = new Set([...revisions, ...(this.last ? [this.last] : [])]);
    const names = await readdir(this.snapshots).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => !keep.has(n)).map((n) => rm(path.join(this.snapshots, n), { recursive: true, force: true })));
  }

  private git(extraEnv: Record<string, string> = {}): SimpleGit {
    return simpleGit({
      baseDir: this.opts.workdir,
      timeout: { block: this.opts.timeoutMs ?? 60_000 },
      // Both are set by Poseidon itself (credentials through the environment), never from input.
      unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeSshCommand: true },
    }).env({ ...this.opts.env, ...this.access.env, ...extraEnv });
  }

  private async ensureMirror(): Promise<void> {
    await mkdir(this.opts.workdir, { recursive: true });
    const present = await stat(path.join(this.mirror, 'HEAD')).then(() => true, () => false);
    if (!present) {
      await rm(this.mirror, { recursive: true, force: true });
      await this.run('create the working copy', () => this.git().raw(['init', '--bare', '-q', this.mirror]), 'local');
    }
  }

  private async fetchBranch(): Promise<void> {
    const refspec = `+refs/heads/${this.opts.branch}:refs/remotes/origin/${this.opts.branch}`;
    // --verbose: simple-git waits 50 ms more for a command that printed nothing.
    await this.run('fetch', () => this.git().raw(['--git-dir', this.mirror, 'fetch', '--no-tags', '--verbose', this.access.url, refspec]), 'remote');
  }

  private async checkFastForward(since: string, sha: string): Promise<void> {
    // simple-git resolves on a non-zero exit without stderr, so compare the merge base instead of
    // relying on `--is-ancestor`'s exit code; an unknown `since` (history gone) rejects.
    const base = await this.git().raw(['--git-dir', this.mirror, 'merge-base', since, sha]).then((out) => out.trim(), () => '');
    if (base === since) return;
    throw new PoseidonError(Codes.gitRewrite,
      `history of ${this.opts.branch} was rewritten (force-push): ${sha.slice(0, 12)} does not descend from the served ${since.slice(0, 12)}; ` +
      'the catalog stays at the served revision until an admin accepts it (POST /v1/sync {"force": true})',
      { kind: 'transient', detail: { revision: sha, served: since } });
  }

  /** Checks `sha` out into its own snapshot directory (once), through a private index file. */
  private async materialize(sha: string): Promise<string> {
    const dir = path.join(this.snapshots, sha);
    if (await stat(dir).then(() => true, () => false)) return dir;
    await mkdir(this.snapshots, { recursive: true });
    const tmp = path.join(this.snapshots, `.tmp-${sha.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp);
    const git = this.git({ GIT_INDEX_FILE: `${tmp}.index` });
    try {
      // One command: a fresh index read from the commit, and the work tree written from it.
      await this.run('check out', () => git.raw(['--git-dir', this.mirror, '--work-tree', tmp, 'read-tree', '--reset', '-u', sha]), 'local');
      await rename(tmp, dir);
      return dir;
    } finally {
      await rm(tmp, { recursive: true, force: true });
      await rm(`${tmp}.index`, { force: true });
    }
  }

  private async local(what: string, args: string[]): Promise<string> {
    return (await this.run(what, () => this.git().raw(['--git-dir', this.mirror, ...args]), 'local')).trim();
  }

  /** Runs a git step, turning failures into typed, redacted errors; corruption wipes the clone. */
  private async run<T>(what: string, step: () => Promise<T>, where: 'local' | 'remote'): Promise<T> {
    try {
      return await step();
    } catch (err) {
      const message = this.access.redact(err instanceof Error ? err.message : String(err)).trim();
      const code = classify(message, where);
      if (code === Codes.gitCorrupt) await rm(this.mirror, { recursive: true, force: true });
      const hint = code === Codes.gitCorrupt ? ' (the working copy was removed; the next sync clones again)' : code === Codes.sourceUnreadable ? ' (is git installed?)' : '';
      throw new PoseidonError(code, `git ${what} of ${this.access.display} (${this.opts.branch}) failed: ${firstLines(message)}${hint}`, { kind: 'transient' });
    }
  }
}

/** Maps a git failure message to a code: remote trouble, missing branch, or a corrupt working copy. */
export function classify(message: string, where: 'local' | 'remote'): string {
  if (/spawn git ENOENT/i.test(message)) return Codes.sourceUnreadable;
  if (/couldn't find remote ref/i.test(message)) return Codes.gitBranchMissing;
  if (where === 'remote' && REMOTE_TROUBLE.test(message)) return Codes.gitUnreachable;
  if (CORRUPTION.test(message) || where === 'local') return Codes.gitCorrupt;
  return Codes.gitUnreachable;
}

function firstLines(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.slice(0, 4).join(' | ').slice(0, 600);
}

/** `challenges/` -> `challenges`; '' and '/' -> '.'. Rejects `..` (config validation should have). */
export function normalizeSubPath(p: string): string {
  const n = path.posix.normalize(p.replace(/^\/+|\/+$/g, '') || '.');
  if (n === '..' || n.startsWith('../') || path.isAbsolute(n)) throw new PoseidonError(Codes.configInvalid, `POSEIDON_GIT_PATH must stay inside the repository (got ${p})`, { kind: 'input' });
  return n;
}
