import type { ChallengeSpec } from '../../src/core/challenge.ts';
import type { Instance } from '../../src/core/instance.ts';

/** A fully defaulted spec for pure tests; override what a case needs. */
export function makeSpec(over: Partial<ChallengeSpec> = {}): ChallengeSpec {
  return {
    id: 'web-hello', name: 'Hello', image: 'busybox:1.35',
    expose: [{ name: 'web', port: 8080, protocol: 'http' }],
    resources: { cpu: 0.5, memoryBytes: 128 * 1024 * 1024, pids: 128 },
    ttl: { defaultSeconds: 1800, maxSeconds: 7200, renewals: 3 },
    env: {}, flag: { env: 'FLAG', format: 'flag{%s}' }, scope: 'team', runtime: 'runc',
    network: { egress: false }, filesystem: { readOnly: true, tmpfsBytes: 16 * 1024 * 1024 },
    source: '/tmp/challenge.yaml', ...over,
  };
}

export function makeInstance(over: Partial<Instance> = {}): Instance {
  const now = 1_700_000_000_000;
  return {
    id: '0123456789abcdef01234567', challenge: 'web-hello', team: 'red', owner: 'team:red',
    generation: 1, epoch: 0, desired: 'running', status: 'pending', hostname: 'h.web-hello.localhost',
    endpoints: [], specHash: 'abc', createdAt: now, updatedAt: now, renewals: 0,
    expiresAt: now + 60_000, maxExpiresAt: now + 120_000, ...over,
  };
}
