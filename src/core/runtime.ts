/**
 * Container runtime port: what the controller needs from a Docker engine. The adapter is
 * `runtime/docker.ts`. Observed state always comes from labels on the engine, never from memory.
 */
export type ContainerState = 'created' | 'running' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';
export type HealthState = 'starting' | 'healthy' | 'unhealthy';

export const LABELS = {
  managedBy: 'poseidon.managed-by',
  /** The deployment (one Poseidon installation): two deployments on one engine never touch each other's objects. */
  deployment: 'poseidon.deployment',
  /** The placement epoch the container was created for (a newer assignment makes it stale). */
  epoch: 'poseidon.epoch',
  instance: 'poseidon.instance',
  challenge: 'poseidon.challenge',
  owner: 'poseidon.owner',
  generation: 'poseidon.generation',
  specHash: 'poseidon.spec-hash',
  expiresAt: 'poseidon.expires-at',
  /** On a container: the pooled network it was created on (`worker/network-pool.ts`); absent on its own network. */
  network: 'poseidon.network',
  /** On a network: made ahead of time for the network pool, owned by no instance until a container is created on it. */
  pool: 'poseidon.pool',
} as const;

/** Whose objects these are: only objects carrying both labels are listed, changed or removed. */
export interface Ownership {
  /** `poseidon.managed-by` (POSEIDON_MANAGER_ID). */
  managerId: string;
  /** `poseidon.deployment`: generated once per deployment and stored (or POSEIDON_DEPLOYMENT_ID). */
  deployment: string;
}

export interface ObservedContainer {
  id: string;
  name: string;
  /** A valid instance id (objects with a malformed `poseidon.instance` label are never listed). */
  instance: string;
  challenge: string;
  generation: number;
  /** Placement epoch from its label (0 for containers made before epochs existed). */
  epoch: number;
  specHash: string;
  state: ContainerState;
  exitCode?: number;
  /** Undefined when the container has no health check. */
  health?: HealthState;
  /** Container port -> loopback binding, when published. */
  published: Record<number, { host: string; port: number }>;
  /** The pooled network it was created on (its `poseidon.network` label); undefined on a network of its own. */
  network?: string;
  /**
   * Created as a warm-pool member (its `poseidon.owner` label is a pool's): once claimed, its flag
   * file must hold the owner's flag, which the worker writes in place (`worker/flag-files.ts`).
   */
  pooled?: true;
}

export interface ObservedNetwork {
  id: string;
  name: string;
  instance: string;
  /** Creation time (ISO), to pick a survivor among racing duplicates. */
  created: string;
  /** The shape it was created with (`internal`, `routed`, `nat`); '' when unknown. */
  mode: string;
}

/** Everything needed to create one instance container; produced by `core/container-plan.ts`. */
export interface ContainerPlan {
  name: string;
  image: string;
  command?: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  network: string;
  /** Network-scoped DNS alias (the backend host the gateway dials). */
  alias: string;
  cpu: number;
  memoryBytes: number;
  pids: number;
  readOnly: boolean;
  runtime: 'runc' | 'runsc';
  ports: number[];
  /** When set, each port is published on this loopback address (random host port). */
  publishAddress?: string;
  /** Container port -> fixed host binding from a port lease (takes precedence over publishAddress). */
  leased?: Record<number, { address: string; hostPort: number }>;
  healthcheck?: { test: string[]; intervalMs: number; timeoutMs: number; retries: number; startPeriodMs: number };
  /** Bind-mounted read-only at `containerPath`. */
  files: { hostPath: string; containerPath: string }[];
  /** The user the process runs as (`uid[:gid]` or a name); absent: the image's. */
  user?: string;
  /** Size-limited tmpfs mounts (over the image's VOLUME paths, so they get no unbounded anonymous volume). */
  tmpfs: { path: string; bytes: number }[];
  /** Writable-layer limit (bytes) for engines whose storage driver supports `--storage-opt size`. */
  diskBytes?: number;
}

export interface NetworkPlan {
  name: string;
  /** Linux bridge name (`pz…`): the host firewall matches every instance bridge by this prefix. */
  bridge: string;
  labels: Record<string, string>;
  /** Internal networks have no route out (no egress). */
  internal: boolean;
  /** false: a routed bridge without NAT (published ports work, nothing reaches the Internet). Default: Docker's (NAT on). */
  masquerade?: boolean;
}

/** What an engine is (for worker records, placement and plans). */
export interface EngineInfo {
  /** The engine's host name (default worker id). */
  name: string;
  cpus: number;
  memoryBytes: number;
  /** Runtimes registered with the engine (`runc`, `runsc`, ...). */
  runtimes: string[];
  /** Whether `--storage-opt size` works (overlay2 on xfs with pquota, devicemapper, btrfs, zfs). */
  diskQuota: boolean;
  version: string;
}

/** What a plan needs to know about an image. */
export interface ImageFacts {
  /** Paths of its VOLUME lines. */
  volumes: string[];
  /** Its configured user ('' for root). */
  user: string;
}

/** One engine event about a managed object (a hint: the reconcile reads everything fresh). */
export interface EngineEvent {
  instance: string;
  /** Docker's action (`start`, `die`, `health_status: healthy`, ...). */
  action: string;
}

export interface ContainerRuntime {
  /** Every container carrying this manager's `poseidon.managed-by` label (optionally one instance's). */
  listContainers(instance?: string): Promise<ObservedContainer[]>;
  /** Every network carrying this manager's label (optionally one instance's). */
  listNetworks(instance?: string): Promise<ObservedNetwork[]>;
  /**
   * Creates the network unless this instance already has one (adopted) and returns its id.
   * Docker's duplicate check is racy, so duplicates found afterwards are removed, keeping the oldest.
   */
  ensureNetwork(plan: NetworkPlan): Promise<string>;
  /**
   * Creates an internal network for the network pool: labelled as this deployment's and as
   * pooled, with no instance (`LABELS.pool`), bridge `bridge`. Returns its id.
   */
  createPoolNetwork(name: string, bridge: string): Promise<string>;
  /** Removes a pooled network by name if it is this deployment's (a name from a label is checked, never trusted). */
  removePoolNetwork(name: string): Promise<void>;
  /** This deployment's pooled networks (never listed by `listNetworks`). */
  listPoolNetworks(): Promise<ObservedNetwork[]>;
  /** Creates the container; an existing container with the same name is adopted (409). */
  createContainer(plan: ContainerPlan): Promise<ObservedContainer>;
  startContainer(id: string): Promise<void>;
  /** Force-removes the container; a missing container is not an error. */
  removeContainer(id: string): Promise<void>;
  /** Disconnects every endpoint and removes the network (by id); missing is not an error. */
  removeNetwork(id: string): Promise<void>;
  /** Names of the networks `container` is attached to ([] when it does not exist). */
  networksOf(container: string): Promise<string[]>;
  /** Joins an existing container (the gateway) to a network; already joined is not an error. */
  connect(network: string, container: string): Promise<void>;
  imageExists(ref: string): Promise<boolean>;
  /** VOLUME paths and user of a present image (cached by image id); rejects when it is absent. */
  imageFacts(ref: string): Promise<ImageFacts>;
  /** Pulls `ref` from its registry; rejects when it cannot. */
  pullImage(ref: string): Promise<void>;
  /**
   * Builds `context` into `tag`; rejects with the build output on failure. Without `network`
   * the build's RUN steps have no network at all (no metadata service, no LAN).
   */
  buildImage(context: string, dockerfile: string, tag: string, labels: Record<string, string>, opts?: { network?: boolean }): Promise<void>;
  /** Tags `ref` as `target` and pushes it to its registry; rejects with the engine's message. */
  pushImage(ref: string, target: string): Promise<void>;
  /** The engine's facts (cached after the first call). */
  info(): Promise<EngineInfo>;
  /** Resolves when the engine answers now; rejects when it does not. */
  ping(): Promise<void>;
  /**
   * Runs `cmd` in a running container and resolves with its exit code, or `undefined` when it
   * did not finish within `timeoutMs` (no answer is not a failure: under load it says nothing).
   */
  exec(container: string, cmd: string[], timeoutMs: number): Promise<number | undefined>;
  /** Calls `onEvent` for each engine event about a managed object until `signal` aborts. */
  watchEvents(onEvent: (ev: EngineEvent) => void, signal: AbortSignal): void;
}
