import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });
export const TEST_LABEL = 'poseidon.test';

/** A manager id unique to one test file, so its orphan sweeps never touch another's objects. */
export function testManagerId(): string {
  return `poseidon-test-${randomBytes(4).toString('hex')}`;
}

/**
 * Removes every container and network whose `poseidon.managed-by` label is `managerId`, and every
 * object carrying the `poseidon.test=<managerId>` label (probe and gateway containers, images).
 */
export async function cleanupByLabel(managerId: string): Promise<void> {
  const labels = [`poseidon.managed-by=${managerId}`, `${TEST_LABEL}=${managerId}`];
  // Containers first (all of them: a gateway probe attached to a network blocks its removal),
  // sequentially, since parallel removals race the engine's network teardown.
  for (const label of labels) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) {
      await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
    }
  }
  for (const label of labels) {
    for (const n of await docker.listNetworks({ filters: { label: [label] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
    for (const i of await docker.listImages({ filters: { label: [label] } })) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
  }
}

/** Runs a command in a container and returns its stdout (demultiplexed) and exit code. */
export async function exec(containerId: string, cmd: string[]): Promise<{ out: string; err: string; code: number }> {
  const e = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const info = await e.inspect();
  return { ...demux(Buffer.concat(chunks)), code: info.ExitCode ?? -1 };
}

/** Docker's multiplexed stream: 8-byte headers [type,0,0,0,len32]; 1 = stdout, 2 = stderr. */
function demux(buf: Buffer): { out: string; err: string } {
  let out = '';
  let err = '';
  for (let i = 0; i + 8 <= buf.length;) {
    const len = buf.readUInt32BE(i + 4);
    const part = buf.subarray(i + 8, i + 8 + len).toString('utf8');
    if (buf[i] === 1) out += part;
    else err += part;
    i += 8 + len;
  }
  return { out, err };
}

/**
 * Starts a long-lived busybox container on its own internal network: a stand-in for the
 * gateway (Traefik), which Poseidon joins to each instance network. Labelled for cleanup.
 */
export async function startProbe(managerId: string, name: string): Promise<string> {
  const labels = { [TEST_LABEL]: managerId };
  await docker.createNetwork({ Name: name, Internal: true, Labels: labels, CheckDuplicate: true });
  const c = await docker.createContainer({
    name, Image: 'busybox:1.35', Labels: labels, HostConfig: { NetworkMode: name },
    // Serves "probe-ok" on :8080 so isolation tests can show what is and is not reachable.
    Cmd: ['sh', '-c', 'mkdir -p /tmp/w; echo probe-ok > /tmp/w/index.html; httpd -p 8080 -h /tmp/w; exec sleep 3600'],
  });
  await c.start();
  return c.id;
}

/**
 * Fetches `http://<host>:<port><path>` from inside `probe`, the way the gateway dials a backend.
 * Debian's static busybox cannot resolve names through libc, so the probe asks Docker's
 * embedded DNS (127.0.0.11) itself and dials the answer: traffic never leaves Docker.
 */
export async function fetchFromProbe(probe: string, backend: string, urlPath = '/'): Promise<{ out: string; err: string; code: number }> {
  const [host, port] = backend.split(':');
  const script = `ip=$(nslookup ${host} 127.0.0.11 | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1); ` +
    `[ -n "$ip" ] || { echo "unresolved ${host}" >&2; exit 9; }; timeout 5 wget -q -O - "http://$ip:${port}${urlPath}"`;
  return exec(probe, ['sh', '-c', script]);
}

/** Talks to a TCP backend from inside `probe`: sends `input`, returns what came back. */
export async function tcpFromProbe(probe: string, backend: string, input: string): Promise<{ out: string; err: string; code: number }> {
  const [host, port] = backend.split(':');
  const script = `ip=$(nslookup ${host} 127.0.0.11 | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1); ` +
    `[ -n "$ip" ] || exit 9; printf '%s\\n' '${input.replace(/'/g, '')}' | timeout 5 nc $ip ${port}`;
  return exec(probe, ['sh', '-c', script]);
}
