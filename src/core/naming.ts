import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import type { ChallengeSpec, ExposedPort } from './challenge.ts';
import type { Endpoint } from './instance.ts';

/**
 * Random bytes for instance ids, drawn from the CSPRNG a buffer at a time (one call per 340 ids,
 * as `crypto.randomUUID` does): a call per id was 6% of a launch request's CPU. Each byte is
 * handed out once.
 */
const ID_BYTES = 12;
const idPool = Buffer.alloc(ID_BYTES * 340);
let idOffset = idPool.length;

/** A fresh random instance id: 24 lowercase hex chars (96 bits), DNS-safe. */
export function newInstanceId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.toString('hex', idOffset, idOffset + ID_BYTES);
  idOffset += ID_BYTES;
  return id;
}

export const INSTANCE_ID_PATTERN = /^[0-9a-f]{24}$/;

/** Deterministic Docker name of an instance's container and of its network. */
export function containerName(instanceId: string): string {
  return `poseidon-${instanceId}`;
}

/** Prefix of every instance network's Linux bridge (the firewall matches `pz+`). */
export const BRIDGE_PREFIX = 'pz';

/** Prefix of the bridges of instances with egress (the firewall lets only these out). */
export const EGRESS_BRIDGE_PREFIX = 'pzg';

/**
 * Linux bridge of an instance's network: `pz` (or `pzg` with egress) + 12 hex of its id
 * (interface names hold 15 characters; hex never contains `g`, so the two never collide).
 */
export function bridgeName(instanceId: string, egress = false): string {
  return `${egress ? EGRESS_BRIDGE_PREFIX : BRIDGE_PREFIX}${instanceId.slice(0, 12)}`;
}

/** Names of the network pool's networks (`worker/network-pool.ts`); nothing else is ever removed as one. */
export const POOL_NETWORK_PATTERN = /^poseidon-pool-[0-9a-f]{12}$/;

/** A fresh pooled network: its name and its bridge (`pz` + the same 12 random hex; internal, so no egress). */
export function newPoolNetwork(): { name: string; bridge: string } {
  const hex = randomBytes(6).toString('hex');
  return { name: `poseidon-pool-${hex}`, bridge: bridgeName(hex) };
}

const prefixes = new Map<string, string>();

/**
 * Unguessable, DNS-safe hostname prefix: first 16 hex of SHA-256 of the instance id. Memoised
 * (bounded): the gateway renders and checks every route's hostname on each pass.
 */
export function hostPrefix(instanceId: string): string {
  let p = prefixes.get(instanceId);
  if (p === undefined) {
    p = createHash('sha256').update(instanceId).digest('hex').slice(0, 16);
    if (prefixes.size >= 100_000) prefixes.clear();
    prefixes.set(instanceId, p);
  }
  return p;
}

/**
 * Hostname of one exposed port. The first port gets `<prefix>.<challenge>.<base>`; every further
 * port gets `<prefix>-<port name>.<challenge>.<base>` so two-port challenges stay distinct.
 */
export function portHostname(instanceId: string, spec: ChallengeSpec, index: number, baseDomain: string): string {
  const port = spec.expose[index];
  const prefix = index === 0 || !port ? hostPrefix(instanceId) : `${hostPrefix(instanceId)}-${port.name}`;
  return `${prefix}.${spec.id}.${baseDomain}`;
}

/** Escapes the separators used in owner keys, so distinct (team, user) pairs never collide. */
function escapeOwnerPart(s: string): string {
  return s.replaceAll('%', '%25').replaceAll('/', '%2F').replaceAll(':', '%3A');
}

/** The owner key that limits apply to: the team, or the user within the team for user-scoped challenges. */
export function ownerKey(spec: Pick<ChallengeSpec, 'scope'>, team: string, user: string | undefined): string {
  const t = escapeOwnerPart(team);
  return spec.scope === 'user' ? `user:${t}/${escapeOwnerPart(user ?? '')}` : `team:${t}`;
}

/** Endpoints an instance of `spec` will have; `published` is filled in later from observed state. */
export function plannedEndpoints(instanceId: string, spec: ChallengeSpec, baseDomain: string): Endpoint[] {
  return spec.expose.map((p: ExposedPort, i) => {
    const hostname = portHostname(instanceId, spec, i, baseDomain);
    return {
      name: p.name,
      protocol: p.protocol,
      port: p.port,
      hostname,
      url: p.protocol === 'http' ? `http://${hostname}/` : `tcp://${hostname}:${p.port}`,
      backend: `${containerName(instanceId)}:${p.port}`,
    };
  });
}
