import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { healthTest, instanceLabels, planContainer, planNetwork } from '../../src/core/container-plan.ts';
import { makeInstance, makeSpec } from '../helpers/specs.ts';

const inst = makeInstance();
const base = { managerId: 'poseidon', image: 'img:1', flag: 'flag{x}', publishAddress: '' };

test('labels carry the observed-state record', () => {
  const l = instanceLabels(inst, 'mgr');
  assert.equal(l, {
    'poseidon.managed-by': 'mgr', 'poseidon.instance': inst.id, 'poseidon.challenge': 'web-hello',
    'poseidon.owner': 'team:red', 'poseidon.generation': '1', 'poseidon.spec-hash': 'abc',
    'poseidon.expires-at': new Date(inst.expiresAt).toISOString(),
  });
});

test('flag goes to the env var, not to a file, when the spec says env', () => {
  const plan = planContainer(inst, makeSpec({ env: { A: 'b' } }), base);
  assert.equal(plan.env, { A: 'b', FLAG: 'flag{x}' });
  assert.equal(plan.files, []);
});

test('file flags are bind-mounted and stay out of the environment', () => {
  const plan = planContainer(inst, makeSpec({ flag: { file: '/flag.txt', format: 'f{%s}' } }), { ...base, flagFileHostPath: '/data/flags/x' });
  assert.equal(plan.files, [{ hostPath: '/data/flags/x', containerPath: '/flag.txt' }]);
  assert.not.ok(Object.values(plan.env).includes('flag{x}'));
});

test('resources, runtime and filesystem follow the spec', () => {
  const plan = planContainer(inst, makeSpec({ runtime: 'gvisor', resources: { cpu: 0.25, memoryBytes: 1 << 25, pids: 32 }, filesystem: { readOnly: false, tmpfsBytes: 1 } }), base);
  assert.is(plan.runtime, 'runsc');
  assert.equal([plan.cpu, plan.memoryBytes, plan.pids, plan.readOnly], [0.25, 1 << 25, 32, false]);
});

test('networks are internal unless egress is allowed or ports are published', () => {
  assert.ok(planNetwork(inst, makeSpec(), 'm', false).internal);
  assert.not.ok(planNetwork(inst, makeSpec({ network: { egress: true } }), 'm', false).internal);
  assert.not.ok(planNetwork(inst, makeSpec(), 'm', true).internal);
});

const spec2 = makeSpec({ expose: [{ name: 'web', port: 8080, protocol: 'http' }, { name: 'pwn', port: 9000, protocol: 'tcp' }] });
const cases: [Parameters<typeof healthTest>[1], string[]][] = [
  [{ kind: 'http', port: 'web', path: '/ok', timeoutSeconds: 5 }, ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/ok']],
  [{ kind: 'tcp', port: 'pwn', timeoutSeconds: 5 }, ['CMD-SHELL', 'timeout 1 nc 127.0.0.1 9000 </dev/null >/dev/null 2>&1; [ $? -ne 1 ]']],
  [{ kind: 'command', command: ['true'], timeoutSeconds: 5 }, ['CMD', 'true']],
];
for (const [hc, expected] of cases) {
  test(`health check ${hc.kind}`, () => assert.equal(healthTest(spec2, hc), expected));
}

test('health check retries cover the spec timeout', () => {
  const plan = planContainer(inst, makeSpec({ healthcheck: { kind: 'http', port: 'web', path: '/', timeoutSeconds: 30 } }), base);
  assert.equal(plan.healthcheck, { test: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'], intervalMs: 1000, timeoutMs: 2000, retries: 30 });
});

test.run();
