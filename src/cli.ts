import { startServer, startWorkerProcess } from './main.ts';
import { runFleet } from './cli-fleet.ts';
import { runValidate } from './challenge/validate-command.ts';
import { runPlan } from './catalog/plan-command.ts';
import { runConfigCheck } from './config/config-check.ts';

const USAGE = `usage: poseidon <command>

commands:
  serve [--dev] [--config FILE]
                        the manager (API, catalog, placement, gateway) and an embedded worker for the
                        local engine (POSEIDON_EMBEDDED_WORKER=false: none);
                        --dev publishes instance ports on 127.0.0.1 for use without Traefik
  worker [--config FILE]  the agent of one more Docker host (REDIS_URL, POSEIDON_ADVERTISE_ADDRESS, ...)
  config check [--config FILE] [--json] [--worker]
                        the resolved configuration (secrets masked) and where each value comes
                        from, or every problem with file:line:col (exit 1); --worker: as for worker
  workers [--json]      the fleet; cordon|uncordon|drain <id> act on one worker (--server URL);
                        launch-settings <id>|--all [--network-pool N] [--launch-concurrency N] sets launch settings
  validate [dir] [--json]  check challenge definitions (default dir ./challenges)
  plan [--server URL] [--json]  what syncing the source's newest revision would change (asks the server)
  help                  this text

configuration: environment variables over a YAML file of the same names, FILE from --config,
else POSEIDON_CONFIG, else ./poseidon.yaml when present (README "Configuration")
`;

/** `--config FILE` / `--config=FILE` taken out of `args`. */
function configFlag(command: string, args: string[]): { configFile?: string; rest: string[] } {
  const rest: string[] = [];
  let configFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--config') {
      configFile = args[++i];
      if (configFile === undefined) throw new Error(`${command}: --config needs a file\n${USAGE}`);
    } else if (a.startsWith('--config=')) configFile = a.slice('--config='.length);
    else rest.push(a);
  }
  return { ...(configFile === undefined ? {} : { configFile }), rest };
}

async function serve(args: string[]): Promise<void> {
  const { configFile, rest } = configFlag('serve', args);
  const unknown = rest.filter((a) => a !== '--dev');
  if (unknown.length) throw new Error(`serve: unknown option ${unknown.join(' ')}\n${USAGE}`);
  const server = await startServer({ dev: rest.includes('--dev'), ...(configFile === undefined ? {} : { configFile }) });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down; instances keep running');
    server.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function worker(args: string[]): Promise<void> {
  const { configFile, rest } = configFlag('worker', args);
  if (rest.length) throw new Error(`worker: unknown option ${rest.join(' ')}\n${USAGE}`);
  const proc = await startWorkerProcess(configFile === undefined ? {} : { configFile });
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Containers keep running: a worker restart converges with what it finds.
    proc.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function main(argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      await serve(rest);
      return undefined;
    case 'worker':
      await worker(rest);
      return undefined;
    case 'workers': case 'cordon': case 'uncordon': case 'drain': case 'launch-settings':
      return runFleet(command, rest, { stdout: (s: string) => process.stdout.write(`${s}\n`), stderr: (s: string) => process.stderr.write(`${s}\n`), cwd: process.cwd() });
    case 'validate':
      return runValidate(rest, { stdout: (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`), stderr: (s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`), cwd: process.cwd() });
    case 'plan':
      return runPlan(rest, { stdout: (s: string) => process.stdout.write(`${s}\n`), stderr: (s: string) => process.stderr.write(`${s}\n`), cwd: process.cwd() });
    case 'config':
      if (rest[0] !== 'check') {
        process.stderr.write(`unknown config command ${JSON.stringify(rest[0] ?? '')}\n${USAGE}`);
        return 2;
      }
      return runConfigCheck(rest.slice(1), { stdout: (s: string) => process.stdout.write(`${s}\n`), stderr: (s: string) => process.stderr.write(`${s}\n`), cwd: process.cwd() });
    case 'help': case '--help': case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command ?? '')}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => { if (code !== undefined) process.exitCode = code; },
  (err: unknown) => {
    const e = err as { code?: string; message?: string };
    process.stderr.write(`poseidon: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
    process.exit(1);
  },
);
