/** How leased ports and publishing shape the network and container plans. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChallengeSpec } from '../../src/core/challenge.ts';
import { planContainer, planNetwork } from '../../src/core/container-plan.ts';
import type { Instance } from '../../src/core/instance.ts';
import { toCreateOptions } from '../../src/runtime/docker-create.ts';

const inst = {
  id: 'aaaaaaaaaaaaaaaaaaaaaaaa', challenge: 'c', team: 't', owner: 'team:t', generation: 1, epoch: 0, desired: 'running', status: 'pending',
  hostname: 'x', endpoints: [], specHash: 'h', createdAt: 0, updatedAt: 0, expiresAt: 1, maxExpiresAt: 2, renewals: 0,
} as Instance;
function spec(expose: object[], egress = false): ChallengeSpec {
  return {
    id: 'c', name: 'c', image: 'busybox:1.35', expose, resources: { cpu: 0.5, memoryBytes: 1 << 27, pids: 64 }, env: {},
    ttl: { defaultSeconds: 60, maxSeconds: 120, renewals: 0 }, flag: { env: 'FLAG', format: '%s' }, scope: 'team', runtime: 'runc',
    network: { egress }, filesystem: { readOnly: true, tmpfsBytes: 1 << 20 }, source: '/x',
  } as ChallengeSpec;
}
const tcp = { name: 'pwn', port: 9000, protocol: 'tcp' };
const OWNER = { managerId: 'mgr', deployment: 'dtest' };

test('networks: internal by default; a bridge without NAT when ports must be published and there is no egress', () => {
  const cases: [object[], boolean, boolean, boolean | undefined][] = [
    // expose, egress, publishing -> internal, masquerade
    [[tcp], false, false, undefined],
    [[{ ...tcp, lease: true }], false, false, false],
    [[tcp], false, true, false],
    [[{ ...tcp, lease: true }], true, false, undefined],
    [[tcp], true, true, undefined],
  ];
  for (const [expose, egress, publishing, masquerade] of cases) {
    const n = planNetwork(inst, spec(expose, egress), OWNER, publishing);
    const internal = !egress && !publishing && !(expose[0] as { lease?: boolean }).lease;
    assert.is(n.internal, internal, JSON.stringify({ expose, egress, publishing }));
    assert.is(n.masquerade, masquerade, JSON.stringify({ expose, egress, publishing }));
  }
});

test('a leased port is published on its fixed host port; others stay unpublished (or on the dev address)', () => {
  const s = spec([{ name: 'web', port: 80, protocol: 'http' }, { ...tcp, lease: true }]);
  const leased = { 9000: { address: '0.0.0.0', hostPort: 30007 } };
  const plan = planContainer(inst, s, { owner: OWNER, image: 'i', flag: 'f', publishAddress: '', leased });
  assert.equal(plan.leased, leased);
  const opts = toCreateOptions(plan);
  assert.equal(opts.HostConfig?.PortBindings, { '9000/tcp': [{ HostIp: '0.0.0.0', HostPort: '30007' }] });
  const dev = toCreateOptions(planContainer(inst, s, { owner: OWNER, image: 'i', flag: 'f', publishAddress: '127.0.0.1', leased }));
  assert.equal(dev.HostConfig?.PortBindings, {
    '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }], '9000/tcp': [{ HostIp: '0.0.0.0', HostPort: '30007' }],
  });
  assert.is(planContainer(inst, s, { owner: OWNER, image: 'i', flag: 'f', publishAddress: '' }).leased, undefined);
});

test.run();
