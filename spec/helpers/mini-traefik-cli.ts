/**
 * The Traefik stand-in as its own process, e.g. a worker host's ingress inside that host's
 * network namespace:
 *
 *   nsenter --net=/var/run/netns/pt-w1 -- node --import tsx spec/helpers/mini-traefik-cli.ts \
 *     --config /run/w1/traefik/poseidon.yml --http 10.250.0.11:18080 --tls 10.250.0.11:18443 \
 *     --cert w1.crt --key w1.key --docker-socket /var/run/poseidon-test/w1.sock --probe w1-ingress-probe
 *
 * Options:
 *   --config <file|dir>        dynamic configuration (file provider; JSON after `#` comments, or YAML),
 *                              re-read whenever it changes; a directory merges its .yml/.yaml/.json files
 *   --http [name=]<addr:port>  an entry point named `web` by default
 *   --tls [name=]<addr:port>   an entry point named `websecure` by default (every entry point serves
 *                              HTTP, HTTPS and TCP alike, as Traefik's do; the name is what routers use)
 *   --entrypoint name=<addr:port>   more entry points (repeatable)
 *   --cert <pem> --key <pem>   the default certificate for TLS termination
 *   --docker-socket <path>     engine of the probe (default /var/run/docker.sock)
 *   --probe <container>        container joined to the backends' networks, used to reach them
 *   --trusted-ips <cidr,...>   forwardedHeaders.trustedIPs of every entry point
 *   --lenient                  leave faulty routers out (as Traefik) instead of failing everything
 *
 * Prints one line `ready <http-address> <tls-address>` (`-` for one not given) once listening;
 * reloads and configuration errors go to stderr. SIGTERM or SIGINT: closes and exits 0.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { fileConfigSource } from './mini-traefik-config.ts';
import { startMiniTraefik, type EntryPointOptions, type MiniTraefik } from './mini-traefik.ts';

export interface CliOptions {
  config: string;
  entryPoints: Record<string, EntryPointOptions>;
  http?: string;
  tls?: string;
  cert?: string;
  key?: string;
  dockerSocket?: string;
  probe?: string;
  strict: boolean;
}

function named(value: string, fallback: string): [string, string] {
  const m = /^([A-Za-z0-9_-]+)=(.+)$/.exec(value);
  return m ? [m[1]!, m[2]!] : [fallback, value];
}

/** Parses the command line (without node and the script). Throws on a mistake. */
export function parseCliArgs(argv: string[]): CliOptions {
  const o: Partial<CliOptions> & { entryPoints: Record<string, EntryPointOptions>; strict: boolean } = { entryPoints: {}, strict: true };
  let trusted: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--lenient') {
      o.strict = false;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case '--config': o.config = value; break;
      case '--http': { const [n, a] = named(value, 'web'); o.entryPoints[n] = { address: a }; o.http = n; break; }
      case '--tls': { const [n, a] = named(value, 'websecure'); o.entryPoints[n] = { address: a }; o.tls = n; break; }
      case '--entrypoint': {
        const m = /^([A-Za-z0-9_-]+)=(.+)$/.exec(value);
        if (!m) throw new Error('--entrypoint takes name=addr:port');
        o.entryPoints[m[1]!] = { address: m[2]! };
        break;
      }
      case '--cert': o.cert = value; break;
      case '--key': o.key = value; break;
      case '--docker-socket': o.dockerSocket = value; break;
      case '--probe': o.probe = value; break;
      case '--trusted-ips': trusted = value.split(',').map((s) => s.trim()).filter(Boolean); break;
      default: throw new Error(`unknown option ${flag}`);
    }
  }
  if (!o.config) throw new Error('--config is required');
  if (Object.keys(o.entryPoints).length === 0) throw new Error('give at least one of --http, --tls, --entrypoint');
  if ((o.cert === undefined) !== (o.key === undefined)) throw new Error('--cert and --key go together');
  if (trusted) for (const ep of Object.values(o.entryPoints)) ep.forwardedHeaders = { trustedIPs: trusted };
  return o as CliOptions;
}

/** Starts the stand-in for `opts`; `log` receives stderr lines. */
export async function runCli(opts: CliOptions, log: (line: string) => void): Promise<{ mt: MiniTraefik; ready: string; stop(): Promise<void> }> {
  const source = fileConfigSource(opts.config, () => log(`config loaded from ${opts.config}`));
  const mt = await startMiniTraefik({
    config: () => source.load(),
    entryPoints: opts.entryPoints,
    strict: opts.strict,
    ...(opts.cert && opts.key ? { defaultCertificate: { cert: opts.cert, key: opts.key }, certificates: [{ cert: opts.cert, key: opts.key }] } : {}),
    ...(opts.dockerSocket ? { docker: opts.dockerSocket } : {}),
    ...(opts.probe ? { probe: opts.probe } : {}),
  });
  // Read the file now and then too, so reloads and errors show up without traffic.
  let said = 0;
  let saidErrors = 0;
  const tick = async () => {
    await source.load();
    for (; said < source.errors.length; said++) log(`config: ${source.errors[said]}`);
    for (; saidErrors < mt.errors.length; saidErrors++) log(`error: ${mt.errors[saidErrors]}`);
  };
  await tick();
  const timer = setInterval(() => void tick(), 250);
  const addr = (n?: string) => (n ? mt.entryPoints[n]!.address : '-');
  return {
    mt,
    ready: `ready ${addr(opts.http)} ${addr(opts.tls)}`,
    async stop() {
      clearInterval(timer);
      await mt.close();
    },
  };
}

async function main(): Promise<void> {
  let opts: CliOptions;
  try {
    opts = parseCliArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`mini-traefik: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = (line: string) => process.stderr.write(`mini-traefik: ${line}\n`);
  const run = await runCli(opts, log);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    run.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`${run.ready}\n`);
}

const invoked = process.argv[1] ? (() => {
  try {
    return pathToFileURL(realpathSync(process.argv[1]!)).href;
  } catch {
    return '';
  }
})() : '';
if (invoked === import.meta.url) {
  main().catch((err: unknown) => {
    process.stderr.write(`mini-traefik: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
