/**
 * How Poseidon talks to a git remote without ever putting a secret where it could be read back:
 * credentials are stripped from the URL (git would store it in the repository config and print
 * it in errors) and passed to git through its environment only; every message shown anywhere
 * goes through `redact`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Credentials for the remote, from configuration (env or files). All optional. */
export interface GitCredentials {
  /** HTTPS token (GitHub/Gitea/GitLab personal or deploy token). */
  token?: string;
  /** User name sent with the token (default `x-access-token`, which GitHub expects; others accept any). */
  username?: string;
  /** Private key of an SSH deploy key (the key itself, not a path). */
  sshKey?: string;
  /** known_hosts lines for the SSH host; without them the first key seen is trusted and pinned. */
  knownHosts?: string;
}

/** The remote as git gets it: a credential-free URL, extra environment, and secrets to redact. */
export interface GitAccess {
  url: string;
  /** Redacted URL, for status and logs. */
  display: string;
  env: Record<string, string>;
  redact(text: string): string;
}

const HTTP_URL = /^(https?):\/\/([^@/]*)@/i;

/**
 * Redacts credentials in any http(s) URL inside `text`: the whole user-info part becomes `***`
 * (a bare `https://<token>@host` carries the token as the user name).
 */
export function redactUrls(text: string): string {
  return text.replace(/\b(https?):\/\/[^\s/@'"]+@/gi, '$1://***@');
}

/** Splits user-info off an http(s) URL; other URLs (ssh, paths) are returned as they are. */
export function splitCredentials(url: string): { url: string; user?: string; password?: string } {
  const m = HTTP_URL.exec(url);
  if (!m) return { url };
  const [user, password] = (m[2] ?? '').split(':', 2).map((s) => safeDecode(s));
  const bare = url.replace(HTTP_URL, `${m[1]}://`);
  return { url: bare, ...(user ? { user } : {}), ...(password !== undefined ? { password } : {}) };
}

/**
 * Builds the access for `rawUrl` with `creds` (which win over credentials in the URL). An SSH
 * key is written (mode 0600) under `workdir/ssh`, never passed on a command line.
 */
export function gitAccess(rawUrl: string, creds: GitCredentials, workdir: string): GitAccess {
  const split = splitCredentials(rawUrl);
  // `https://<token>@host/…` (no password) carries the token as the user name.
  const token = creds.token ?? split.password ?? split.user;
  const username = creds.username ?? (split.password !== undefined ? split.user : undefined) ?? 'x-access-token';
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: '0' };
  const secrets = [creds.token, split.password, split.user, creds.sshKey].filter((s): s is string => !!s && s.length >= 3);
  if (token !== undefined && /^https?:/i.test(split.url)) {
    const header = `Authorization: Basic ${Buffer.from(`${username}:${token}`).toString('base64')}`;
    secrets.push(header.slice('Authorization: Basic '.length));
    // Scoped to the repository's origin so a redirect to another host never receives it.
    Object.assign(env, { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: `http.${origin(split.url)}/.extraHeader`, GIT_CONFIG_VALUE_0: header });
  }
  if (creds.sshKey !== undefined) env.GIT_SSH_COMMAND = sshCommand(creds, workdir);
  const redact = (text: string): string => secrets.reduce((acc, s) => acc.split(s).join('***'), redactUrls(text));
  return { url: split.url, display: redactUrls(rawUrl), env, redact };
}

function sshCommand(creds: GitCredentials, workdir: string): string {
  const dir = path.join(workdir, 'ssh');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = path.join(dir, 'deploy-key');
  writeFileSync(key, creds.sshKey!.endsWith('\n') ? creds.sshKey! : `${creds.sshKey!}\n`, { mode: 0o600 });
  const knownHosts = path.join(dir, 'known_hosts');
  if (creds.knownHosts !== undefined) writeFileSync(knownHosts, creds.knownHosts, { mode: 0o600 });
  const strict = creds.knownHosts !== undefined ? 'yes' : 'accept-new';
  return [
    'ssh', '-i', quote(key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${quote(knownHosts)}`,
    '-o', `StrictHostKeyChecking=${strict}`, '-F', '/dev/null',
  ].join(' ');
}

/** Single-quotes for the shell git runs GIT_SSH_COMMAND through. */
function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
