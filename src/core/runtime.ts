/**
 * Container runtime port: what the controller needs from a Docker engine. The adapter is
 * `runtime/docker.ts`. Observed state always comes from labels on the engine, never from memory.
 */
export type ContainerState = 'created' | 'running' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';
export type HealthState = 'starting' | 'healthy' | 'unhealthy';

export const LABELS = {
  managedBy: 'poseidon.managed-by',
  instance: 'poseidon.instance',
  challenge: 'poseidon.challenge',
  owner: 'poseidon.owner',
  generation: 'poseidon.generation',
  specHash: 'poseidon.spec-hash',
  expiresAt: 'poseidon.expires-at',
} as const;

export interface ObservedContainer {
  id: string;
  name: string;
  instance: string;
  challenge: string;
  generation: number;
  specHash: string;
  state: ContainerState;
  exitCode?: number;
  /** Undefined when the container has no health check. */
  health?: HealthState;
  /** Container port -> loopback binding, when published. */
  published: Record<number, { host: string; port: number }>;
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
  tmpfsBytes: number;
  runtime: 'runc' | 'runsc';
  ports: number[];
  /** When set, each port is published on this loopback address (random host port). */
  publishAddress?: string;
  /** Container port -> fixed host binding from a port lease (takes precedence over publishAddress). */
  leased?: Record<number, { address: string; hostPort: number }>;
  healthcheck?: { test: string[]; intervalMs: number; timeoutMs: number; retries: number };
  /** Bind-mounted read-only at `containerPath`. */
  files: { hostPath: string; containerPath: string }[];
}

export interface NetworkPlan {
  name: string;
  labels: Record<string, string>;
  /** Internal networks have no route out (no egress). */
  internal: boolean;
  /** false: a routed bridge without NAT (published ports work, nothing reaches the Internet). Default: Docker's (NAT on). */
  masquerade?: boolean;
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
  /** Pulls `ref` from its registry; rejects when it cannot. */
  pullImage(ref: string): Promise<void>;
  /** Builds `context` into `tag`; rejects with the build output on failure. */
  buildImage(context: string, dockerfile: string, tag: string, labels: Record<string, string>): Promise<void>;
  /** Calls `onInstance(id)` for each engine event about a managed object until `signal` aborts. */
  watchEvents(onInstance: (instance: string) => void, signal: AbortSignal): void;
}
