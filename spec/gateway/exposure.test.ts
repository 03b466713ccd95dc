/** Port leases and player-facing endpoints for the instance reconciler. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChallengeSpec } from '../../src/core/challenge.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { Instance } from '../../src/core/instance.ts';
import { hostPrefix } from '../../src/core/naming.ts';
import type { ObservedContainer } from '../../src/core/runtime.ts';
import { Exposure, playerEndpoints } from '../../src/gateway/exposure.ts';
import { MemoryLeaseStore } from '../../src/store/memory-leases.ts';
import { memoryLogger } from '../helpers/log.ts';

const NOW = 1_900_000_000_000;
const spec = {
  id: 'mix', expose: [{ name: 'web', port: 80, protocol: 'http' }, { name: 'sni', port: 9000, protocol: 'tcp' }, { name: 'ssh', port: 22, protocol: 'tcp', lease: true }],
} as unknown as ChallengeSpec;
const plain = { id: 'web', expose: [{ name: 'web', port: 80, protocol: 'http' }] } as unknown as ChallengeSpec;

function inst(id: string, patch: Partial<Instance> = {}): Instance {
  return {
    id, challenge: 'mix', team: 'red', owner: 'team:red', generation: 1, epoch: 0, desired: 'running', status: 'running', hostname: 'x',
    endpoints: [], specHash: 'h', createdAt: NOW, updatedAt: NOW, expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000, renewals: 0, ...patch,
  };
}

function exposure(opts: { range?: boolean } = {}) {
  const leases = new MemoryLeaseStore();
  const e = new Exposure({
    leases, leaseAddress: '0.0.0.0', leaseHost: 'nc.ctf.test', log: memoryLogger(), now: () => NOW,
    ...(opts.range === false ? {} : { range: { lo: 30000, hi: 30009 } }),
  });
  return { e, leases };
}

const A = 'aaaaaaaaaaaaaaaaaaaaaaaa';

test('only lease: true ports are leased, published on the lease address, idempotently', async () => {
  const { e, leases } = exposure();
  assert.equal(await e.leasesFor(inst(A), plain), {});
  const first = await e.leasesFor(inst(A), spec);
  assert.equal(Object.keys(first), ['22']);
  assert.is(first[22]!.address, '0.0.0.0');
  assert.ok(first[22]!.hostPort >= 30000 && first[22]!.hostPort <= 30009);
  assert.equal(await e.leasesFor(inst(A), spec), first);
  assert.is((await leases.list()).length, 1);
});

test('a challenge that leases without a configured range fails terminally, naming the variable', async () => {
  const { e } = exposure({ range: false });
  try {
    await e.leasesFor(inst(A), spec);
    assert.unreachable();
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assert.ok(isPoseidonError(err, 'E_NO_PORT'));
    assert.is((err as { kind: string }).kind, 'terminal');
    assert.match((err as Error).message, /POSEIDON_LEASE_PORTS/);
  }
});

test('endpoint URLs: http(s) by hostname, TCP over TLS by SNI, leased TCP by host and port', () => {
  const container = { published: { 22: { host: '0.0.0.0', port: 30004 } } } as unknown as ObservedContainer;
  const p = hostPrefix(A);
  for (const tls of [false, true]) {
    // The manager plans hostnames and URLs at placement; the worker fills in the leased port.
    const planned = playerEndpoints(A, spec, { baseDomain: 'ctf.test', tls });
    const [web, sni, ssh] = exposure().e.observedEndpoints(inst(A, { endpoints: planned }), spec, container);
    assert.is(web!.url, `${tls ? 'https' : 'http'}://${p}.mix.ctf.test/`);
    assert.is(sni!.url, `tls://${p}-sni.mix.ctf.test:${tls ? 443 : 80}`);
    assert.is(ssh!.url, 'tcp://nc.ctf.test:30004');
    assert.equal(ssh!.published, { host: '0.0.0.0', port: 30004 });
    assert.is(web!.backend, `poseidon-${A}:80`, 'the gateway still dials the container');
  }
});

test('release frees; the sweep frees leases of unknown instances gone from the engine and of finished ones, never newer ones or ones being torn down', async () => {
  const { e, leases } = exposure();
  const ids = ['b', 'c', 'd', 'e', 'f'].map((c) => c.repeat(24));
  for (const id of ids) await e.leasesFor(inst(id), spec);
  await e.release(ids[0]!);
  assert.is((await leases.list()).length, 4);
  const listed = [
    inst(ids[1]!),
    inst(ids[2]!, { desired: 'stopped', status: 'stopping' }),
    inst(ids[3]!, { desired: 'stopped', status: 'stopped', finishedAt: NOW }),
  ];
  // ids[4] is not placed here: unknown, freed only when nothing of it is left on the engine.
  const onEngine = new Set([ids[4]!]);
  assert.is(await e.sweep(listed, NOW, (id) => onEngine.has(id)), 0, 'leases taken at the listing time are kept');
  assert.is(await e.sweep(listed, NOW + 1, (id) => onEngine.has(id)), 1, 'only the finished one');
  onEngine.clear();
  assert.is(await e.sweep(listed, NOW + 1, (id) => onEngine.has(id)), 1, 'the unknown one, once gone from the engine');
  assert.equal((await leases.list()).map((l) => l.instance).sort(), [ids[1], ids[2]].sort(), 'the running one and the one being torn down keep theirs');
});

test.run();
