/**
 * The GitOps part of the configuration: variable names, secrets given as files (`*_FILE`), and
 * the environment git runs with. Read only by `config.ts` (the one reader of env and files).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Codes, PoseidonError } from '../core/errors.ts';

/** Environment variable -> config field, merged into config.ts's table. */
export const GITOPS_ENV_NAMES: Record<string, string> = {
  POSEIDON_GIT_URL: 'gitUrl', POSEIDON_GIT_BRANCH: 'gitBranch', POSEIDON_GIT_PATH: 'gitPath',
  POSEIDON_GIT_POLL_SECONDS: 'gitPollSeconds', POSEIDON_GIT_USERNAME: 'gitUsername', POSEIDON_GIT_TOKEN: 'gitToken',
  POSEIDON_GIT_SSH_KEY: 'gitSshKey', POSEIDON_GIT_KNOWN_HOSTS: 'gitKnownHosts', POSEIDON_WEBHOOK_SECRET: 'webhookSecret',
};

/** Fields whose values are never echoed in configuration errors. */
export const GITOPS_SECRET_KEYS = ['gitUrl', 'gitToken', 'gitSshKey', 'webhookSecret'];

/** `<VAR>_FILE` variants: the value is read from the file (trailing newline dropped). */
export const FILE_VARIANTS: Record<string, string> = {
  POSEIDON_GIT_TOKEN_FILE: 'gitToken', POSEIDON_GIT_SSH_KEY_FILE: 'gitSshKey',
  POSEIDON_GIT_KNOWN_HOSTS_FILE: 'gitKnownHosts', POSEIDON_WEBHOOK_SECRET_FILE: 'webhookSecret',
};

/** Variables passed through to git (and ssh): how to find programs, home, proxies, CAs. */
const GIT_PASSTHROUGH = ['PATH', 'HOME', 'LANG', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'https_proxy', 'http_proxy', 'no_proxy', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'GIT_SSL_CAINFO'];

/**
 * Secrets given as files. A `_FILE` variable wins over nothing but loses to the direct variable
 * being set too (that is an error: one source per secret). Throws E_CONFIG_INVALID naming the
 * variable and the error code, never the content.
 */
export function secretsFromFiles(env: NodeJS.ProcessEnv, cwd: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, key] of Object.entries(FILE_VARIANTS)) {
    const file = env[name];
    if (file === undefined || file === '') continue;
    const direct = name.slice(0, -'_FILE'.length);
    if (env[direct]) throw new PoseidonError(Codes.configInvalid, `invalid configuration: set ${direct} or ${name}, not both`, { kind: 'input' });
    try {
      out[key] = readFileSync(path.resolve(cwd, file), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'unreadable';
      throw new PoseidonError(Codes.configInvalid, `invalid configuration: ${name}: cannot read ${file} (${code})`, { kind: 'input' });
    }
  }
  return out;
}

/** The environment git runs with: the pass-through variables that are set. */
export function gitProcessEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of GIT_PASSTHROUGH) {
    const v = env[name];
    if (v !== undefined) out[name] = v;
  }
  out.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return out;
}

/** The GitOps fields of `Config` (README "Git source"); `gitUrl` set replaces `challengesDir`. */
export interface GitOpsConfig {
  readonly gitUrl?: string;
  readonly gitBranch: string;
  readonly gitPath: string;
  readonly gitPollSeconds: number;
  readonly gitUsername?: string;
  readonly gitToken?: string;
  readonly gitSshKey?: string;
  readonly gitKnownHosts?: string;
  readonly webhookSecret?: string;
  /** Environment git runs with (PATH, HOME, proxies). */
  readonly gitEnv: Readonly<Record<string, string>>;
}
