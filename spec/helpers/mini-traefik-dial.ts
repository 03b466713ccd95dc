/**
 * How the Traefik stand-in reaches a backend `host:port`. Addresses of this machine's own test
 * hosts (127.0.0.0/8, localhost, ::1, and the network-namespace hosts 10.250.0.0/16) are dialled
 * directly. Everything else (container names such as `poseidon-<id>`, container IPs) is reached
 * only from inside Docker: a `docker exec` in a probe container runs busybox `nc <ip> <port>`
 * with stdin and stdout hijacked, so the bytes of the stream travel inside Docker and never from
 * this host to a container address. A name is resolved inside the probe through Docker's
 * embedded DNS (127.0.0.11), as spec/helpers/docker.ts fetchFromProbe does.
 */
import { connect } from 'node:net';
import { Duplex } from 'node:stream';
import Docker from 'dockerode';

/** True for the addresses the stand-in may dial from this host. */
export function isDirectAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^10\.250\.\d+\.\d+$/.test(h);
}

export interface DialerOptions {
  /** The engine the probe runs on: a Dockerode client or a socket path (default /var/run/docker.sock). */
  docker?: Docker | string;
  /** Id or name of a running busybox container joined to the backends' networks. */
  probe?: string;
  /** Which hosts are dialled directly (default {@link isDirectAddress}). */
  direct?: (host: string) => boolean;
}

export interface Dialer {
  /** Opens a byte stream to `host:port` (resolves once connected, for direct dials). */
  dial(host: string, port: number): Promise<Duplex>;
  /** How `host` would be reached. */
  route(host: string): 'direct' | 'probe' | 'none';
  /** Streams opened and not yet closed (for tests and for close()). */
  readonly open: Set<Duplex>;
  /** Destroys every open stream. */
  closeAll(): void;
}

function dockerOf(d: Docker | string | undefined): Docker {
  if (d instanceof Docker) return d;
  return new Docker({ socketPath: d ?? '/var/run/docker.sock' });
}

const SAFE_HOST = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;

/** Splits `host:port` (IPv6 in brackets). */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(hostPort) ?? /^([^:]+):(\d+)$/.exec(hostPort);
  if (!m) throw new Error(`not a host:port: ${JSON.stringify(hostPort)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

function directDial(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: host.replace(/^\[|\]$/g, ''), port, allowHalfOpen: true });
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * A stream to `host:port` from inside `probe`: `docker exec` of busybox nc with stdin/stdout
 * hijacked. Docker multiplexes the output (8-byte frame headers; 1 = stdout, 2 = stderr): the
 * stream's readable side is stdout only; stderr is kept in `stderr` and, when the process wrote
 * nothing to stdout (nc could not connect, name unresolved), becomes the stream's error. Ending
 * the writable side half-closes stdin, which busybox nc turns into shutdown(SHUT_WR).
 */
export async function probeStream(docker: Docker, probe: string, host: string, port: number): Promise<Duplex & { stderr: string }> {
  if (!SAFE_HOST.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`refusing to dial ${JSON.stringify(`${host}:${port}`)} from the probe`);
  const script = /^\d+\.\d+\.\d+\.\d+$/.test(host)
    ? `exec nc ${host} ${port}`
    : `ip=$(nslookup ${host} 127.0.0.11 2>/dev/null | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1); ` +
      `[ -n "$ip" ] || { echo "unresolved ${host}" >&2; exit 9; }; exec nc $ip ${port}`;
  const exec = await docker.getContainer(probe).exec({ Cmd: ['sh', '-c', script], AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false });
  const sock = (await exec.start({ hijack: true, stdin: true })) as unknown as Duplex;
  let pending: Buffer = Buffer.alloc(0);
  let sawStdout = false;
  const stream = new Duplex({
    allowHalfOpen: true,
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  }) as Duplex & { stderr: string };
  stream.stderr = '';
  sock.on('data', (c: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, c]) : c;
    while (pending.length >= 8) {
      const len = pending.readUInt32BE(4);
      if (pending.length < 8 + len) break;
      const type = pending[0];
      const payload = pending.subarray(8, 8 + len);
      pending = pending.subarray(8 + len);
      if (type === 1) {
        sawStdout = true;
        if (!stream.push(payload)) sock.pause();
      } else if (type === 2) stream.stderr += payload.toString('utf8');
    }
  });
  sock.on('end', () => {
    if (!sawStdout && stream.stderr.trim() !== '') stream.destroy(new Error(`probe ${probe}: ${stream.stderr.trim()}`));
    else stream.push(null);
  });
  sock.on('close', () => {
    if (!stream.readableEnded && !stream.destroyed) stream.push(null);
  });
  sock.on('error', (err: Error) => stream.destroy(err));
  return stream;
}

export function createDialer(opts: DialerOptions = {}): Dialer {
  const direct = opts.direct ?? isDirectAddress;
  let docker: Docker | undefined;
  const open = new Set<Duplex>();
  const track = (s: Duplex): Duplex => {
    open.add(s);
    s.once('close', () => open.delete(s));
    return s;
  };
  return {
    open,
    route: (host) => (direct(host) ? 'direct' : opts.probe ? 'probe' : 'none'),
    async dial(host, port) {
      if (direct(host)) return track(await directDial(host, port));
      if (!opts.probe) throw new Error(`no probe container configured to reach ${host}:${port} (only 127.0.0.0/8 and 10.250.0.0/16 are dialled directly)`);
      docker ??= dockerOf(opts.docker);
      return track(await probeStream(docker, opts.probe, host, port));
    },
    closeAll() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}
