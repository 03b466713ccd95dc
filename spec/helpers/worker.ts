/**
 * Helpers for the worker suites (spec/worker/): test ownership, challenge trees on disk,
 * instances placed on a worker the way the manager places them (endpoints, epoch, sealed flag),
 * bounded polling, and label cleanup on an engine other than the local one.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { ChallengeSpec } from '../../src/core/challenge.ts';
import type { Instance } from '../../src/core/instance.ts';
import { newInstanceId, ownerKey, portHostname } from '../../src/core/naming.ts';
import type { Ownership } from '../../src/core/runtime.ts';
import { seal, sealedFlagField } from '../../src/core/seal.ts';
import { CONFLICT, type Store } from '../../src/core/store.ts';
import { playerEndpoints } from '../../src/gateway/exposure.ts';
import { TEST_LABEL, testManagerId } from './docker.ts';

/** Ownership unique to one test file: its own manager id and deployment id. */
export function testOwner(): Ownership {
  return { managerId: testManagerId(), deployment: `d${randomBytes(4).toString('hex')}` };
}

/** A short random suffix for names that must not collide with other runs (challenge ids, image tags). */
export function rand(): string {
  return randomBytes(3).toString('hex');
}

export interface ChallengeTree {
  root: string;
  /** Writes `<root>/<id>/challenge.yaml` (id and name first, then `lines`) and any extra files (relative to the challenge folder). */
  challenge(id: string, lines: string[], files?: Record<string, string>): void;
  dispose(): void;
}

/** A temporary directory of challenge folders. */
export function challengeTree(prefix = 'poseidon-worker-'): ChallengeTree {
  const root = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    root,
    challenge(id, lines, files = {}) {
      const dir = path.join(root, id);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'challenge.yaml'), [`id: ${id}`, `name: ${id}`, ...lines, ''].join('\n'));
      for (const [rel, text] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
        writeFileSync(path.join(dir, rel), text);
      }
    },
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * Polls `probe` until it returns something other than undefined/false, at most `timeoutMs`
 * (and at most timeoutMs / everyMs tries); throws naming `what` and the last value seen.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let n = 0; n <= timeoutMs / everyMs; n++) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    last = v;
    if (Date.now() > deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** The `sealedFlag` field the manager writes for `worker` at `epoch`. */
export function sealFor(inst: Pick<Instance, 'id' | 'specHash'>, flag: string, to: { worker: string; publicKey: string; epoch: number }): string {
  return sealedFlagField(inst.specHash, to.publicKey, seal(to.publicKey, flag, { instance: inst.id, epoch: to.epoch, worker: to.worker }));
}

export interface Placing {
  spec: ChallengeSpec;
  specHash: string;
  /** The worker it goes to and that worker's public key. */
  worker: string;
  publicKey: string;
  flag: string;
  now: number;
  team?: string;
  ttlMs?: number;
  baseDomain?: string;
  /** Overrides the sealed flag written with the placement, given the instance and its new epoch (`null`: none). */
  sealedFlag?: ((inst: Instance, epoch: number) => string) | null;
}

/**
 * Creates an admitted instance and places it as the manager does: an atomic `assign` (epoch
 * 0 -> 1) with the planned player endpoints and the flag sealed for that worker and epoch.
 */
export async function createPlaced(store: Store, p: Placing): Promise<Instance> {
  const id = newInstanceId();
  const team = p.team ?? `team-${rand()}`;
  const ttl = p.ttlMs ?? 600_000;
  const base: Instance = {
    id, challenge: p.spec.id, team, owner: ownerKey(p.spec, team, undefined), generation: 1, epoch: 0, desired: 'running',
    status: 'pending', hostname: portHostname(id, p.spec, 0, p.baseDomain ?? 'localhost'), endpoints: [], specHash: p.specHash,
    createdAt: p.now, updatedAt: p.now, renewals: 0, expiresAt: p.now + ttl, maxExpiresAt: p.now + ttl,
  };
  const created = await store.createInstance(base, p.now);
  if (!created.created) throw new Error(`test instance not created: ${created.reason}`);
  return place(store, created.instance, p);
}

/** Re-places `inst` (as read now) on `p.worker`: epoch + 1, status pending, a fresh seal for it (see `Placing.sealedFlag`). */
export async function place(store: Store, inst: Instance, p: Omit<Placing, 'spec' | 'specHash' | 'team' | 'ttlMs'> & { spec: ChallengeSpec }): Promise<Instance> {
  const epoch = inst.epoch + 1;
  const sealedFlag = p.sealedFlag === undefined ? sealFor(inst, p.flag, { worker: p.worker, publicKey: p.publicKey, epoch }) : p.sealedFlag?.(inst, epoch) ?? null;
  const placed = await store.assign(inst.id, { epoch: inst.epoch, ...(inst.worker ? { worker: inst.worker } : {}) }, p.worker, {
    status: 'pending', reason: undefined, endpoints: playerEndpoints(inst.id, p.spec, { baseDomain: p.baseDomain ?? 'localhost', tls: false }),
    ...(sealedFlag === null ? {} : { sealedFlag }),
  }, p.now);
  if (placed === CONFLICT || !placed) throw new Error(`test placement of ${inst.id} lost: ${String(placed)}`);
  return placed;
}

/**
 * `cleanupByLabel` for any engine (the rig's hosts): removes containers, networks and images
 * labelled `poseidon.managed-by=<id>` or `poseidon.test=<id>`, ignoring failures.
 */
export async function cleanupEngine(docker: Docker, managerId: string): Promise<void> {
  const labels = [`poseidon.managed-by=${managerId}`, `${TEST_LABEL}=${managerId}`];
  for (const label of labels) {
    const containers = await docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => []);
    for (const c of containers) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  }
  for (const label of labels) {
    for (const n of await docker.listNetworks({ filters: { label: [label] } }).catch(() => [])) await docker.getNetwork(n.Id).remove().catch(() => undefined);
    for (const i of await docker.listImages({ filters: { label: [label] } }).catch(() => [])) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
  }
}
