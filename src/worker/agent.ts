/**
 * The worker agent (`poseidon worker`, or embedded in `serve`): pull-based, like a kubelet. It
 * registers and heartbeats in the fleet registry, makes the current images present on its engine
 * and reports them, converges the instances placed on it (and removes what is placed elsewhere
 * or desired by nobody, behind the orphan breaker), and renders its host's ingress routes. It
 * opens no port. When Redis cannot be reached it acts on nothing and leaves every container
 * running: a failed read is never a reason to delete.
 */
import { Controller, every } from '../controller/controller.ts';
import type { Fleet } from '../core/fleet.ts';
import type { LeaseStore } from '../core/leases.ts';
import { parsePortRange } from '../core/leases.ts';
import { containerName, INSTANCE_ID_PATTERN } from '../core/naming.ts';
import type { Logger } from '../core/reconcile.ts';
import type { ContainerRuntime, Ownership } from '../core/runtime.ts';
import { Semaphore } from '../core/semaphore.ts';
import type { Store } from '../core/store.ts';
import type { VersionSource } from '../core/versions.ts';
import type { LaunchSettings, WorkerIngress, WorkerRecord } from '../core/worker.ts';
import type { RuntimeName } from '../core/challenge.ts';
import { Exposure } from '../gateway/exposure.ts';
import { VERSION } from '../version.ts';
import { FlagFiles } from './flag-files.ts';
import { WorkerImages } from './images.ts';
import { IngressWriter } from './ingress.ts';
import { workerReconciler } from './instance-reconciler.ts';
import { NetworkPool } from './network-pool.ts';
import { ReadinessProbes } from './readiness.ts';

export const IMAGES_KEY = 'images';
export const INGRESS_KEY = 'ingress';
const QUEUE_CONCURRENCY = 32;
/** Orphan counts at or below this never trip the breaker (a test rig or a small host). */
const BREAKER_MIN = 5;

export interface WorkerSettings {
  id: string;
  address: string;
  ingress?: WorkerIngress;
  /** Instance slots (default 100). */
  slots?: number;
  /** CPU cores offered to instances (default 8 per engine core). */
  cpu?: number;
  /** Memory offered to instances (default 90% of the engine's). */
  memoryBytes?: number;
  labels: Record<string, string>;
  leasePorts?: string;
  leaseAddress: string;
  leaseHost: string;
  publishAddress: string;
  gatewayContainer?: string;
  heartbeatMs: number;
  resyncMs: number;
  orphanBreakerRatio: number;
  launchConcurrency: number;
  /** Internal networks kept ready for launches (0: none; `network-pool.ts`). */
  networkPool?: number;
  dataDir: string;
  /** Where the host's ingress configuration is written (with `ingress`). */
  traefikDir?: string;
  /** Addresses the edge connects to the ingress from. */
  edgeSources?: readonly string[];
}

export interface WorkerAgentDeps {
  owner: Ownership;
  store: Store;
  fleet: Fleet;
  runtime: ContainerRuntime;
  versions: VersionSource;
  /** This host's port leases (a store keyed by this worker). */
  leases: LeaseStore;
  /** X25519 key pair that flags for this worker are sealed with (`core/seal.ts`). */
  keys: { publicKey: string; privateKey: string };
  /** Shared with the edge: what the host's ingress requires on every request (read at each render). */
  edgeSecret?: () => Promise<string>;
  /** The host firewall, re-applied at every resync (rules someone removed come back). */
  firewall?: { ensure(): Promise<string[]> };
  log: Logger;
  settings: WorkerSettings;
}

/** See the module comment. */
export class WorkerAgent {
  readonly controller: Controller;
  readonly images: WorkerImages;
  readonly #deps: WorkerAgentDeps;
  readonly #startedAt = Date.now();
  /** Instance ids with objects on this engine (last listing, plus launches): other ids need no engine call. */
  readonly #known = new Set<string>();
  /** Orphans the last resync let through the breaker: the only record-less ids that may be removed. */
  #cleared = new Set<string>();
  /** Last breaker trip, shown to operators; undefined when the last resync was clean. */
  breaker: { orphans: number; managed: number; at: number } | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #beating = false;
  #record: Omit<WorkerRecord, 'heartbeatAt'> | undefined;
  readonly #ingress: IngressWriter | undefined;
  readonly #exposure: Exposure;
  /** Free internal networks for launches; of size 0 unless configured or set by an admin. */
  readonly networkPool: NetworkPool;
  readonly #launches: Semaphore;

  constructor(deps: WorkerAgentDeps) {
    this.#deps = deps;
    const { settings: s, log } = deps;
    this.images = new WorkerImages({ workerId: s.id, runtime: deps.runtime, fleet: deps.fleet, owner: deps.owner, log });
    const exposure = this.#exposure = new Exposure({
      leases: deps.leases, leaseAddress: s.leaseAddress, leaseHost: s.leaseHost, log,
      ...(s.leasePorts ? { range: parsePortRange(s.leasePorts) } : {}),
    });
    this.networkPool = new NetworkPool({ size: s.networkPool ?? 0, runtime: deps.runtime, log, ...(s.gatewayContainer ? { gateway: s.gatewayContainer } : {}) });
    this.#launches = new Semaphore(s.launchConcurrency);
    if (s.ingress && s.traefikDir && deps.edgeSecret) this.#ingress = new IngressWriter({ dir: s.traefikDir, edgeSecret: deps.edgeSecret, edgeSources: s.edgeSources ?? [], log });
    const reconcile = workerReconciler({
      workerId: s.id, owner: deps.owner, store: deps.store, runtime: deps.runtime, versions: deps.versions, images: this.images,
      flagFiles: new FlagFiles(s.dataDir), privateKey: deps.keys.privateKey, log, publishAddress: s.publishAddress,
      ...(s.gatewayContainer ? { gatewayContainer: s.gatewayContainer } : {}),
      exposure, launches: this.#launches, networkPool: this.networkPool, readiness: new ReadinessProbes({ runtime: deps.runtime }),
      mayRemoveOrphan: (id) => this.#cleared.has(id),
      routesChanged: () => this.controller.queue.add(INGRESS_KEY),
    });
    this.controller = new Controller({
      log,
      resyncMs: s.resyncMs,
      // Passes mostly wait (on the engine, on the launch and probe bounds): enough of them at once
      // that instances already started are probed while others wait for a launch slot.
      concurrency: QUEUE_CONCURRENCY,
      keys: () => this.#keys(),
      reconcile: async (ctx, key) => {
        if (key === IMAGES_KEY) return this.#syncImages();
        if (key === INGRESS_KEY) return this.#renderIngress();
        if (!INSTANCE_ID_PATTERN.test(key)) return {};
        const result = await reconcile(ctx, key);
        return result;
      },
      sources: [
        // Every change in the deployment is announced; ids this engine has nothing of and that are
        // not placed here cost one store read (the reconcile returns early).
        (enqueue) => deps.store.onChange((id) => enqueue(id)),
        (enqueue) => {
          const abort = new AbortController();
          deps.runtime.watchEvents((ev) => {
            this.#known.add(ev.instance);
            enqueue(ev.instance);
          }, abort.signal);
          return () => abort.abort();
        },
        every(Math.max(5000, s.resyncMs), IMAGES_KEY),
      ],
    });
  }

  /** Registers, then starts converging, heartbeating and preparing images. */
  async start(): Promise<void> {
    const info = await this.#deps.runtime.info();
    const runtimes: RuntimeName[] = info.runtimes.includes('runsc') ? ['runc', 'gvisor'] : ['runc'];
    this.images.setRuntimes(runtimes);
    const s = this.#deps.settings;
    this.#record = {
      id: s.id, address: s.address, ...(s.ingress ? { ingress: s.ingress } : {}), runtimes, labels: s.labels,
      capacity: {
        slots: s.slots ?? DEFAULT_SLOTS,
        // CPU limits are ceilings and idle instances use little: CPU is overcommitted by default;
        // memory limits are hard, so memory is not.
        cpu: s.cpu ?? info.cpus * CPU_OVERCOMMIT,
        memoryBytes: s.memoryBytes ?? Math.floor(info.memoryBytes * 0.9),
      },
      ...(s.leasePorts ? { leasePorts: s.leasePorts, leaseHost: s.leaseHost } : {}),
      publicKey: this.#deps.keys.publicKey, version: VERSION, startedAt: this.#startedAt,
      launch: this.#launchSettings({}),
    };
    await this.#beat();
    this.#heartbeat = setInterval(() => void this.#beat(), s.heartbeatMs);
    this.#heartbeat.unref();
    await this.controller.start();
    this.#deps.log.info({ worker: s.id, address: s.address, runtimes, slots: this.#record.capacity.slots }, 'worker registered');
  }

  async stop(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    await this.controller.stop();
    await this.networkPool.stop();
  }

  /**
   * Removes pooled networks nothing holds, then refills the pool; a failure is logged, never
   * thrown. Runs at every resync, the first included: an earlier process's free networks are
   * removed, not reused (nothing says none of them was handed out).
   */
  async #sweepPool(): Promise<void> {
    const pool = this.networkPool;
    if (!pool.sweeps) return;
    const removed = await pool.sweep().catch((err: unknown) => {
      this.#deps.log.warn({ err: (err as Error).message }, 'network pool sweep failed');
      return 0;
    });
    if (removed > 0) this.#deps.log.info({ removed }, 'network pool: removed networks no instance holds');
    void pool.fill();
  }

  /**
   * A heartbeat says "this host can run instances": without an answering engine there is none,
   * so the manager declares the worker lost after the deadline and moves its instances. When
   * Redis is unreachable the heartbeat fails too; either way containers keep running.
   */
  async #beat(): Promise<void> {
    // One at a time: with a slow Redis, two beats' reads of the override could land out of order.
    if (this.#beating) return;
    this.#beating = true;
    try {
      await this.#beatOnce();
    } finally {
      this.#beating = false;
    }
  }

  async #beatOnce(): Promise<void> {
    if (!this.#record) return;
    try {
      await this.#deps.runtime.ping();
    } catch (err) {
      this.#deps.log.warn({ err: (err as Error).message }, 'engine not answering; no heartbeat until it does');
      return;
    }
    await this.#applyLaunchSettings();
    this.#record = { ...this.#record, networkPoolReady: this.networkPool.free };
    await this.#deps.fleet.heartbeat(this.#record).catch((err: unknown) => {
      this.#deps.log.warn({ err: (err as Error).message }, 'heartbeat failed; retrying');
    });
  }

  /**
   * Puts in effect the launch settings an admin set over this worker's configuration (read at
   * every heartbeat, which then reports them): the launch bound at once, the network pool filled
   * or trimmed in the background. Unreadable (Redis down): what is in effect stays.
   */
  async #applyLaunchSettings(): Promise<void> {
    const { fleet, log } = this.#deps;
    const current = this.#record?.launch;
    const override = await fleet.launchOverride(this.#deps.settings.id).catch(() => undefined);
    if (!this.#record || !current || !override) return;
    const next = this.#launchSettings(override);
    if (next.networkPool === current.networkPool && next.launchConcurrency === current.launchConcurrency) return;
    this.#launches.resize(next.launchConcurrency);
    void this.networkPool.resize(next.networkPool).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'network pool resize failed'));
    this.#record = { ...this.#record, launch: next };
    log.info({ ...next, overridden: Object.keys(override) }, 'launch settings changed');
  }

  /** This worker's configured launch settings with `override` over them. */
  #launchSettings(override: Partial<LaunchSettings>): LaunchSettings {
    const s = this.#deps.settings;
    return { networkPool: override.networkPool ?? s.networkPool ?? 0, launchConcurrency: override.launchConcurrency ?? s.launchConcurrency };
  }

  /** Ids placed here, ids on this engine, and the images and ingress keys; trips the orphan breaker when too many have no record. */
  async #keys(): Promise<string[]> {
    const { store, runtime, settings } = this.#deps;
    await this.#deps.firewall?.ensure().then((changed) => {
      if (changed.length) this.#deps.log.warn({ changed }, 'host firewall repaired');
    }, (err: unknown) => this.#deps.log.error({ err: (err as Error).message }, 'host firewall could not be checked'));
    const [placed, all, containers, networks] = await Promise.all([
      store.listInstances({ worker: settings.id }), store.listIds(), runtime.listContainers(), runtime.listNetworks(), this.#sweepPool(),
    ]);
    const known = new Set(all);
    const observed = new Set([...containers, ...networks].map((o) => o.instance));
    this.#known.clear();
    for (const id of observed) this.#known.add(id);
    const orphans = [...observed].filter((id) => !known.has(id));
    const limit = Math.max(BREAKER_MIN, Math.floor(settings.orphanBreakerRatio * containers.length));
    if (orphans.length > limit) {
      this.breaker = { orphans: orphans.length, managed: containers.length, at: Date.now() };
      this.#cleared = new Set();
      this.#deps.log.error({ orphans: orphans.length, managed: containers.length }, 'orphan circuit breaker tripped; not removing');
    } else {
      this.breaker = undefined;
      this.#cleared = new Set(orphans);
    }
    return [...new Set([...placed.map((i) => i.id), ...observed]), IMAGES_KEY, INGRESS_KEY];
  }

  async #syncImages(): Promise<{ requeueAfterMs?: number }> {
    await this.images.sync(await this.#deps.versions.current());
    return {};
  }

  async #renderIngress(): Promise<{ requeueAfterMs?: number }> {
    const { store, runtime, settings } = this.#deps;
    const listedAt = Date.now();
    const placed = await store.listInstances({ worker: settings.id });
    const now = Date.now();
    // A safety net for releases missed by a crash between a removal and its release.
    await this.#exposure.sweep(placed, listedAt, (id) => this.#known.has(id)).catch((err: unknown) => this.#deps.log.warn({ err: (err as Error).message }, 'lease sweep failed'));
    const running = placed.filter((i) => i.status === 'running' && i.desired === 'running' && now < i.expiresAt);
    if (settings.gatewayContainer && running.length > 0) {
      // Instances on pooled networks: their container names the network.
      const pooled = new Map((await runtime.listContainers()).flatMap((c) => (c.network ? [[c.instance, c.network] as const] : [])));
      await joinGateway(runtime, settings.gatewayContainer, running.map((i) => pooled.get(i.id) ?? containerName(i.id)), this.#deps.log);
    }
    if (this.#ingress) await this.#ingress.write(running);
    const next = Math.min(...running.map((i) => i.expiresAt));
    return Number.isFinite(next) ? { requeueAfterMs: Math.max(0, next - now) } : {};
  }
}

/** Instance slots of a worker that does not say (the single-host capacity default). */
export const DEFAULT_SLOTS = 100;
/** CPU a worker offers per core of its engine unless it says. */
export const CPU_OVERCOMMIT = 8;

/**
 * Level-based: the gateway (or this host's ingress) joins every running instance's network it is
 * not on, so a recreated Traefik container gets its routes back on the next pass.
 */
async function joinGateway(runtime: ContainerRuntime, gateway: string, networks: readonly string[], log: Logger): Promise<void> {
  if (networks.length === 0) return;
  const joined = new Set(await runtime.networksOf(gateway));
  for (const name of networks) {
    if (joined.has(name)) continue;
    await runtime.connect(name, gateway).catch((err: unknown) => log.warn({ network: name, err: (err as Error).message }, 'gateway join failed'));
  }
}
