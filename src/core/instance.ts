/**
 * Instance: one owner's request for one challenge (desired state), plus what the controller last
 * observed (status). The API writes the desired fields, the controller writes the observed ones;
 * the store updates fields individually so neither side overwrites the other's.
 */
export type InstanceStatus = 'queued' | 'pending' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
export type DesiredState = 'running' | 'stopped';

export interface Endpoint {
  /** Port name from the spec. */
  name: string;
  protocol: 'http' | 'tcp';
  /** Container port. */
  port: number;
  /** Public hostname routed to this port by the gateway. */
  hostname: string;
  /** Player-facing URL (`http://host/` for http; `tcp://host:port` style for tcp). */
  url: string;
  /** Backend address the gateway dials (container DNS name on the instance network). */
  backend: string;
  /** Loopback address when the port is published for local development. */
  published?: { host: string; port: number };
}

export interface Instance {
  /** 24 lowercase hex chars, random; DNS-safe. */
  id: string;
  challenge: string;
  team: string;
  user?: string;
  /** `team:<team>` or `user:<team>/<user>`, per the challenge scope; the unit of limits. */
  owner: string;
  /** Bumped by each restart; a container of another generation is replaced. */
  generation: number;
  desired: DesiredState;
  status: InstanceStatus;
  reason?: string;
  /** Base hostname (the first exposed port's). */
  hostname: string;
  endpoints: Endpoint[];
  /** Hash of the spec the instance was launched with. */
  specHash: string;
  /** Epoch milliseconds. */
  createdAt: number;
  expiresAt: number;
  maxExpiresAt: number;
  renewals: number;
  /**
   * Epoch milliseconds of the last write, and the record's version: every store write makes it
   * strictly greater than before, even from a caller whose clock reading is older (views keep
   * the copy with the newer one).
   */
  updatedAt: number;
  /** When it reached a final state (stopped/failed); drives record retention. */
  finishedAt?: number;
  /** The worker it is placed on; absent until placed (and after a lost worker's instance failed). */
  worker?: string;
  /**
   * Placement epoch (fencing token): bumped by every (re)placement. A worker acts on an instance
   * only while `worker` names it and writes status only for the epoch it read, so a partitioned
   * worker that comes back can neither run nor report an instance placed elsewhere since.
   */
  epoch: number;
  /** When the current placement was made (epoch ms). */
  placedAt?: number;
  /**
   * The flag sealed for the placed worker (`<specHash>:<key fingerprint>:<sealed>`, see
   * `core/seal.ts`): only that worker's private key opens it; the flag secret never leaves the manager.
   */
  sealedFlag?: string;
}

/** Fields a worker writes (observed side). */
export type InstanceObservation = Partial<
  Pick<Instance, 'status' | 'reason' | 'endpoints' | 'finishedAt'>
>;

/** Fields the API and the manager write (desired side and placement). */
export type InstanceIntent = Partial<
  Pick<Instance, 'desired' | 'expiresAt' | 'generation' | 'renewals' | 'status' | 'reason' | 'specHash' | 'endpoints' | 'finishedAt' | 'worker' | 'epoch' | 'placedAt' | 'sealedFlag'>
>;

/**
 * The team of warm-pool members (`controller/pool-keeper.ts`): instances started ahead of any
 * request, owned by nobody. No caller can name it (team ids start with a letter or digit), so no
 * team reaches a member through the API or the gate before it is claimed.
 */
export const POOL_TEAM = '~pool';

/** The owner of a warm-pool member: `pool:<its id>` (one owner slot per member). */
export const POOL_OWNER_PREFIX = 'pool:';

/** Whether `inst` is an unclaimed warm-pool member. */
export function isPoolMember(inst: Pick<Instance, 'team'>): boolean {
  return inst.team === POOL_TEAM;
}

export const FINAL_STATUSES: ReadonlySet<InstanceStatus> = new Set(['stopped', 'failed']);

/**
 * Whether the instance should have a container now: asked to run, admitted (not queued), not
 * failed, not expired. Expiry is level-based: an expired instance is simply not desired.
 */
export function wantsRunning(inst: Instance, now: number): boolean {
  return inst.desired === 'running' && inst.status !== 'failed' && inst.status !== 'queued' && now < inst.expiresAt;
}

/**
 * Whether the instance still counts against its owner's and team's limits: asked to run, not
 * failed, and either waiting in the admission queue or not yet expired. The Redis scripts
 * mirror this test; the store contract suite holds both to it.
 */
export function isLive(inst: Instance, now: number): boolean {
  return inst.desired === 'running' && inst.status !== 'failed' && (inst.status === 'queued' || now < inst.expiresAt);
}
