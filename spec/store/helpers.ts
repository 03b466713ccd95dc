/** Shared test helpers for the store specs: instance fixtures and bounded waiting. */
import { randomBytes } from 'node:crypto';
import type { Instance } from '../../src/core/instance.ts';
import type { CreateResult, Store } from '../../src/core/store.ts';

/** The clock the fixtures are built around (epoch ms). */
export const NOW = 1_700_000_000_000;

/** A valid live instance (team-scoped, running, expires in an hour) with `overrides` applied. */
export function makeInstance(overrides: Partial<Instance> = {}): Instance {
  const team = overrides.team ?? 'team-a';
  return {
    id: randomBytes(12).toString('hex'),
    challenge: 'web-1',
    team,
    owner: `team:${team}`,
    generation: 1,
    epoch: 0,
    desired: 'running',
    status: 'pending',
    hostname: 'abc.web-1.ctf.test',
    endpoints: [],
    specHash: 'sha256:0',
    createdAt: NOW,
    expiresAt: NOW + 3_600_000,
    maxExpiresAt: NOW + 7_200_000,
    renewals: 0,
    updatedAt: NOW,
    ...overrides,
  };
}

/** An instance using every optional field, including a published endpoint. */
export function makeFullInstance(overrides: Partial<Instance> = {}): Instance {
  return makeInstance({
    team: 'team-full',
    user: 'alice',
    owner: 'user:team-full/alice',
    reason: 'image pulled',
    finishedAt: NOW + 5,
    generation: 3,
    renewals: 2,
    endpoints: [
      { name: 'web', protocol: 'http', port: 80, hostname: 'h1.web-1.ctf.test', url: 'http://h1.web-1.ctf.test/', backend: 'poseidon-x:80' },
      {
        name: 'shell', protocol: 'tcp', port: 1337, hostname: 'h1-shell.web-1.ctf.test',
        url: 'tcp://h1-shell.web-1.ctf.test:1337', backend: 'poseidon-x:1337', published: { host: '127.0.0.1', port: 41337 },
      },
    ],
    ...overrides,
  });
}

/** Resolves when `predicate` holds; rejects after `timeoutMs` (polls every 10 ms). */
export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Registers a recording listener on `watcher` and waits until it demonstrably receives changes
 * written through `writer` (a subscription may need a moment to become active). Bounded: ~3 s.
 */
export async function listenSettled(watcher: Store, writer: Store): Promise<{ seen: string[]; stop: () => void }> {
  const seen: string[] = [];
  const stop = watcher.onChange((id) => seen.push(id));
  const probe = makeInstance({ team: 'probe', owner: 'team:probe', challenge: 'probe' });
  await writer.createInstance(probe, NOW);
  for (let attempt = 0; attempt < 30 && !seen.includes(probe.id); attempt++) {
    await writer.updateInstance(probe.id, { renewals: attempt }, NOW);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!seen.includes(probe.id)) throw new Error('change listener never became active');
  await writer.deleteInstance(probe.id);
  seen.length = 0; // late probe events may still arrive; tests only look for their own ids
  return { seen, stop };
}

/** Count of `id` in `list`. */
export function count(list: readonly string[], id: string): number {
  return list.filter((x) => x === id).length;
}

/** The id of the instance that explains a refused create (`undefined` for a rate refusal). */
export function existingId(r: CreateResult): string | undefined {
  return !r.created && 'existing' in r ? r.existing.id : undefined;
}
