import type { ChallengeSpec, HealthCheck } from './challenge.ts';
import type { Instance } from './instance.ts';
import { LABELS, type ContainerPlan, type NetworkPlan, type Ownership } from './runtime.ts';
import { bridgeName, containerName } from './naming.ts';

export interface PlanOptions {
  owner: Ownership;
  image: string;
  /** VOLUME paths of the image: each gets a tmpfs of the spec's size instead of an unbounded anonymous volume. */
  imageVolumes?: readonly string[];
  /** Whether the engine can bound the writable layer (`--storage-opt size`). */
  diskQuota?: boolean;
  flag: string;
  /** Host path of the instance's flag file, when the spec delivers the flag as a file. */
  flagFileHostPath?: string;
  publishAddress: string;
  /** Container port -> fixed host binding of its port lease. */
  leased?: Record<number, { address: string; hostPort: number }>;
}

/** Labels shared by an instance's container and network: the observed-state record. */
export function instanceLabels(inst: Instance, owner: Ownership): Record<string, string> {
  return {
    [LABELS.managedBy]: owner.managerId,
    [LABELS.deployment]: owner.deployment,
    [LABELS.epoch]: String(inst.epoch),
    [LABELS.instance]: inst.id,
    [LABELS.challenge]: inst.challenge,
    [LABELS.owner]: inst.owner,
    [LABELS.generation]: String(inst.generation),
    [LABELS.specHash]: inst.specHash,
    [LABELS.expiresAt]: new Date(inst.expiresAt).toISOString(),
  };
}

/**
 * The per-instance network; internal (no route out) unless the spec opts into egress. Docker
 * publishes no ports from internal networks, so local publishing and leased ports need a bridge:
 * without egress it gets no NAT (masquerade off), so nothing in it reaches the Internet.
 */
export function planNetwork(inst: Instance, spec: ChallengeSpec, owner: Ownership, publishing: boolean): NetworkPlan {
  const bridged = publishing || spec.expose.some((p) => p.lease === true);
  const internal = !spec.network.egress && !bridged;
  const plan: NetworkPlan = { name: containerName(inst.id), bridge: bridgeName(inst.id, spec.network.egress), labels: instanceLabels(inst, owner), internal };
  if (!internal && !spec.network.egress) plan.masquerade = false;
  return plan;
}

/** How often Docker checks a running instance's health (liveness). */
export const LIVENESS_INTERVAL_MS = 10_000;

/** The readiness probe of a spec as an exec command (the health check's test), or undefined without one. */
export function readinessCommand(spec: ChallengeSpec): string[] | undefined {
  if (!spec.healthcheck) return undefined;
  const [kind, ...rest] = healthTest(spec, spec.healthcheck);
  return kind === 'CMD-SHELL' ? ['sh', '-c', rest.join(' ')] : rest;
}

/** Docker health check test for a spec health check (run inside the container). */
export function healthTest(spec: ChallengeSpec, hc: HealthCheck): string[] {
  if (hc.kind === 'command') return ['CMD', ...hc.command];
  const port = spec.expose.find((p) => p.name === hc.port)?.port ?? spec.expose[0]?.port ?? 0;
  if (hc.kind === 'http') return ['CMD', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${port}${hc.path}`];
  // busybox nc has no -z: a connect that stays open until `timeout` kills it means "listening".
  return ['CMD-SHELL', `timeout 1 nc 127.0.0.1 ${port} </dev/null >/dev/null 2>&1; [ $? -ne 1 ]`];
}

/**
 * Size-limited tmpfs mounts: `/tmp` under a read-only root, and every VOLUME of the image (even
 * with a writable root), so no path of the container gets an unbounded anonymous volume on the
 * host's disk. A volume inside /tmp is covered by /tmp's.
 */
export function tmpfsMounts(spec: ChallengeSpec, volumes: readonly string[]): { path: string; bytes: number }[] {
  const bytes = spec.filesystem.tmpfsBytes;
  const out = spec.filesystem.readOnly ? [{ path: '/tmp', bytes }] : [];
  for (const raw of [...volumes].sort()) {
    const p = raw.replace(/\/+$/, '') || '/';
    if (p === '/' || out.some((m) => p === m.path || p.startsWith(`${m.path}/`))) continue;
    out.push({ path: p, bytes });
  }
  return out;
}

/** Pure: the container an instance should have, with the hardening defaults applied. */
export function planContainer(inst: Instance, spec: ChallengeSpec, opts: PlanOptions): ContainerPlan {
  const env: Record<string, string> = { ...spec.env };
  if (spec.flag.env) env[spec.flag.env] = opts.flag;
  const hc = spec.healthcheck;
  const plan: ContainerPlan = {
    name: containerName(inst.id),
    image: opts.image,
    env,
    labels: instanceLabels(inst, opts.owner),
    network: containerName(inst.id),
    alias: containerName(inst.id),
    cpu: spec.resources.cpu,
    memoryBytes: spec.resources.memoryBytes,
    pids: spec.resources.pids,
    readOnly: spec.filesystem.readOnly,
    runtime: spec.runtime === 'gvisor' ? 'runsc' : 'runc',
    ports: spec.expose.map((p) => p.port),
    files: spec.flag.file && opts.flagFileHostPath ? [{ hostPath: opts.flagFileHostPath, containerPath: spec.flag.file }] : [],
    tmpfs: tmpfsMounts(spec, opts.imageVolumes ?? []),
  };
  if (spec.user !== undefined) plan.user = spec.user;
  if (!spec.filesystem.readOnly && spec.filesystem.sizeBytes !== undefined && opts.diskQuota) plan.diskBytes = spec.filesystem.sizeBytes;
  if (spec.command) plan.command = spec.command;
  if (opts.publishAddress) plan.publishAddress = opts.publishAddress;
  if (opts.leased && Object.keys(opts.leased).length > 0) plan.leased = { ...opts.leased };
  if (hc) {
    // Readiness is the worker's fast probe (worker/readiness.ts); Docker's health check is only
    // the liveness signal afterwards: rare (each probe is an exec), and patient (a start period
    // of the spec's timeout, three misses in a row), so load does not read as a dead service.
    plan.healthcheck = { test: healthTest(spec, hc), intervalMs: LIVENESS_INTERVAL_MS, timeoutMs: 5000, retries: 3, startPeriodMs: hc.timeoutSeconds * 1000 };
  }
  return plan;
}
