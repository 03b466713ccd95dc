/**
 * In-process `Fleet` for the embedded default (no Redis): the manager and its embedded worker
 * share it. Same contract as the Redis one (`spec/store/fleet-contract.ts`).
 */
import type { Fleet, FleetListing } from '../core/fleet.ts';
import { parseLaunchOverride, workerSignatureText, type LaunchSettings, type WorkerAdmin, type WorkerImageState, type WorkerRecord } from '../core/worker.ts';

/** `Fleet` over Maps; `now` is the registry clock (default `Date.now`). */
export class MemoryFleet implements Fleet {
  readonly #workers = new Map<string, { record: WorkerRecord; admin: WorkerAdmin; launchOverride: Partial<LaunchSettings>; sig: string }>();
  readonly #images = new Map<string, Map<string, WorkerImageState>>();
  readonly #shared = new Map<string, string>();
  readonly #listeners = new Set<() => void>();

  constructor(private readonly now: () => number = Date.now) {}

  async heartbeat(record: Omit<WorkerRecord, 'heartbeatAt'>): Promise<WorkerRecord> {
    const { heartbeatAt: _h, ...rest } = record as WorkerRecord;
    const sig = workerSignatureText(rest);
    const prev = this.#workers.get(record.id);
    // Through JSON, as the Redis adapter stores it: fields set to undefined come back absent.
    const stored = { ...(JSON.parse(JSON.stringify(rest)) as Omit<WorkerRecord, 'heartbeatAt'>), heartbeatAt: this.now() } as WorkerRecord;
    this.#workers.set(record.id, { record: stored, admin: prev?.admin ?? 'active', launchOverride: prev?.launchOverride ?? {}, sig });
    if (prev?.sig !== sig) this.#notify();
    return structuredClone(stored);
  }

  async list(): Promise<FleetListing> {
    const ids = [...this.#workers.keys()].sort();
    return {
      now: this.now(),
      workers: ids.map((id) => { const w = this.#workers.get(id)!; return { record: structuredClone(w.record), admin: w.admin, launchOverride: { ...w.launchOverride } }; }),
      images: Object.fromEntries(ids.map((id) => [id, Object.fromEntries([...(this.#images.get(id) ?? new Map())].map(([r, s]) => [r, { ...s }]))])),
    };
  }

  async setAdmin(id: string, admin: WorkerAdmin): Promise<boolean> {
    const w = this.#workers.get(id);
    if (!w) return false;
    w.admin = admin;
    this.#notify();
    return true;
  }

  async compareAdmin(id: string, expect: WorkerAdmin, admin: WorkerAdmin): Promise<boolean> {
    return this.#workers.get(id)?.admin === expect ? this.setAdmin(id, admin) : false;
  }

  async setLaunchOverride(id: string, override: Partial<LaunchSettings>): Promise<boolean> {
    const w = this.#workers.get(id);
    if (!w) return false;
    w.launchOverride = parseLaunchOverride(override);
    this.#notify();
    return true;
  }

  async launchOverride(id: string): Promise<Partial<LaunchSettings>> {
    return { ...this.#workers.get(id)?.launchOverride };
  }

  async forget(id: string): Promise<void> {
    this.#workers.delete(id);
    this.#images.delete(id);
    this.#notify();
  }

  async reportImages(worker: string, states: Record<string, Omit<WorkerImageState, 'at'>>): Promise<void> {
    if (Object.keys(states).length === 0) return;
    const m = this.#images.get(worker) ?? new Map<string, WorkerImageState>();
    for (const [ref, s] of Object.entries(states)) m.set(ref, { ...s, at: this.now() });
    this.#images.set(worker, m);
    this.#notify();
  }

  async pruneImages(worker: string, keep: readonly string[]): Promise<void> {
    const m = this.#images.get(worker);
    for (const ref of [...(m?.keys() ?? [])]) if (!keep.includes(ref)) m?.delete(ref);
  }

  async shared(name: 'deployment' | 'edge-secret', candidate: string): Promise<string> {
    if (!this.#shared.has(name)) this.#shared.set(name, candidate);
    return this.#shared.get(name)!;
  }

  async setShared(name: 'deployment' | 'edge-secret', value: string): Promise<void> {
    this.#shared.set(name, value);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }

  #notify(): void {
    for (const l of this.#listeners) queueMicrotask(() => { try { l(); } catch { /* hints only */ } });
  }
}
