/**
 * How an instance's ports reach players. The manager plans each endpoint's hostname and URL when
 * it places the instance (`playerEndpoints`: `https://` with TLS, `tls://host:port` for TCP over
 * SNI); the worker running it holds the port leases of `lease: true` TCP ports on its own host
 * (taken before the container is created, released when it goes, swept as a safety net) and
 * fills in what only it knows (`observedEndpoints`: published ports, `tcp://<lease host>:<port>`).
 */
import type { Logger } from '../core/reconcile.ts';
import type { ChallengeSpec } from '../core/challenge.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import { FINAL_STATUSES, type Endpoint, type Instance } from '../core/instance.ts';
import type { LeaseStore, PortRange } from '../core/leases.ts';
import { plannedEndpoints } from '../core/naming.ts';
import type { ObservedContainer } from '../core/runtime.ts';

export interface ExposureOptions {
  leases: LeaseStore;
  /** Configured lease range; undefined when leases are not enabled. */
  range?: PortRange;
  /** Host address leased ports are published on (Docker HostIp). */
  leaseAddress: string;
  /** Host name players use for leased ports. */
  leaseHost: string;
  log: Logger;
  now?: () => number;
}

/** A leased port as the container plan needs it: container port -> host binding. */
export type LeasedBindings = Record<number, { address: string; hostPort: number }>;

/** The endpoints players use for `instanceId` of `spec` (leased ports get their URL once leased). */
export function playerEndpoints(instanceId: string, spec: ChallengeSpec, opts: { baseDomain: string; tls: boolean }): Endpoint[] {
  return plannedEndpoints(instanceId, spec, opts.baseDomain).map((e) => ({
    ...e,
    url: e.protocol === 'http' ? `${opts.tls ? 'https' : 'http'}://${e.hostname}/` : `tls://${e.hostname}:${opts.tls ? 443 : 80}`,
  }));
}

/** Port exposure on one worker host; see the module comment. */
export class Exposure {
  readonly #opts: ExposureOptions;
  readonly #now: () => number;

  constructor(opts: ExposureOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Leases one host port per `lease: true` port of `spec` for `inst` (idempotent) and returns the
   * bindings. Throws `E_NO_PORT` terminal when leases are not configured, `E_NO_PORT` waiting
   * when the range is full, `E_STORE` when the store fails.
   */
  async leasesFor(inst: Instance, spec: ChallengeSpec): Promise<LeasedBindings> {
    const leased = spec.expose.filter((p) => p.lease === true);
    if (leased.length === 0) return {};
    const { range, leases, leaseAddress } = this.#opts;
    if (!range) {
      throw new PoseidonError(Codes.noPort, `challenge ${spec.id} leases ports but POSEIDON_LEASE_PORTS is not set`, { kind: 'terminal' });
    }
    const ports = await leases.acquire(inst.id, leased.map((p) => p.name), range, this.#now());
    this.#opts.log.info({ instance: inst.id, ports: Object.values(ports) }, 'ports leased');
    return Object.fromEntries(leased.map((p) => [p.port, { address: leaseAddress, hostPort: ports[p.name] as number }]));
  }

  /**
   * The endpoints of `inst` as players reach them, given its observed (running) container: the
   * ones the manager planned, with published ports, and leased ports at this host's lease host.
   */
  observedEndpoints(inst: Instance, spec: ChallengeSpec, container: ObservedContainer): Endpoint[] {
    return inst.endpoints.map((e) => {
      const leased = spec.expose.find((p) => p.name === e.name)?.lease === true;
      const published = container.published[e.port];
      const url = leased && published ? `tcp://${this.#opts.leaseHost}:${published.port}` : e.url;
      const { published: _stale, ...rest } = e;
      return published ? { ...rest, url, published } : { ...rest, url };
    });
  }

  /** Frees the leases of instance `id` (idempotent). */
  async release(id: string): Promise<void> {
    const freed = await this.#opts.leases.release(id);
    if (freed > 0) this.#opts.log.info({ instance: id, ports: freed }, 'port leases released');
  }

  /**
   * Frees leases whose instance is gone from this host, among leases taken before `listedAt`
   * (when `instances`, those placed here, was read): unknown here and with no object left on
   * the engine (`onEngine`), or finished (stopped or failed, its container removed). A lease of
   * an instance being torn down is left to the teardown, which releases it after the container
   * is gone: freeing it earlier would hand its port to another instance while the old one still
   * answers on it. Returns how many instances lost their leases.
   */
  async sweep(instances: readonly Instance[], listedAt: number, onEngine: (id: string) => boolean): Promise<number> {
    const byId = new Map(instances.map((i) => [i.id, i]));
    const stale = new Set<string>();
    for (const lease of await this.#opts.leases.list()) {
      if (lease.acquiredAt >= listedAt) continue;
      const inst = byId.get(lease.instance);
      const gone = inst ? FINAL_STATUSES.has(inst.status) && inst.finishedAt !== undefined : !onEngine(lease.instance);
      if (gone) stale.add(lease.instance);
    }
    for (const id of stale) await this.release(id);
    return stale.size;
  }
}
