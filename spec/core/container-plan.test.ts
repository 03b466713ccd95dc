import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { healthTest, instanceLabels, planContainer, planNetwork, readinessCommand, tmpfsMounts } from '../../src/core/container-plan.ts';
import { toCreateOptions } from '../../src/runtime/docker-create.ts';
import { makeInstance, makeSpec } from '../helpers/specs.ts';

const inst = makeInstance({ epoch: 3 });
const owner = { managerId: 'poseidon', deployment: 'd0123456789ab' };
const base = { owner, image: 'img:1', flag: 'flag{x}', publishAddress: '' };
const MIB = 1024 * 1024;

test('labels carry the observed-state record, the deployment and the placement epoch', () => {
  assert.equal(instanceLabels(inst, { managerId: 'mgr', deployment: 'dep1' }), {
    'poseidon.managed-by': 'mgr', 'poseidon.deployment': 'dep1', 'poseidon.epoch': '3', 'poseidon.instance': inst.id, 'poseidon.challenge': 'web-hello',
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
  const plan = planContainer(inst, makeSpec({ runtime: 'gvisor', resources: { cpu: 0.25, memoryBytes: 1 << 25, pids: 32 }, filesystem: { readOnly: false, tmpfsBytes: MIB } }), base);
  assert.is(plan.runtime, 'runsc');
  assert.equal([plan.cpu, plan.memoryBytes, plan.pids, plan.readOnly], [0.25, 1 << 25, 32, false]);
});

test('networks are internal unless egress is allowed or ports are published; bridges are named pz… (pzg… with egress)', () => {
  const n = planNetwork(inst, makeSpec(), owner, false);
  assert.ok(n.internal);
  assert.is(n.bridge, `pz${inst.id.slice(0, 12)}`);
  const egress = planNetwork(inst, makeSpec({ network: { egress: true } }), owner, false);
  assert.not.ok(egress.internal);
  assert.is(egress.bridge, `pzg${inst.id.slice(0, 12)}`);
  assert.ok(egress.bridge.length <= 15, 'Linux interface names hold 15 characters');
  assert.not.ok(planNetwork(inst, makeSpec(), owner, true).internal);
});

test('disk: /tmp and every image VOLUME get a size-limited tmpfs; nothing becomes an unbounded anonymous volume', () => {
  const ro = makeSpec({ filesystem: { readOnly: true, tmpfsBytes: 8 * MIB } });
  assert.equal(tmpfsMounts(ro, ['/data', '/tmp/cache', '/var/lib/x/', '/']), [
    { path: '/tmp', bytes: 8 * MIB }, { path: '/data', bytes: 8 * MIB }, { path: '/var/lib/x', bytes: 8 * MIB },
  ]);
  const rw = makeSpec({ filesystem: { readOnly: false, tmpfsBytes: 4 * MIB } });
  assert.equal(tmpfsMounts(rw, ['/data']), [{ path: '/data', bytes: 4 * MIB }], 'a writable root still bounds image volumes');
  const opts = toCreateOptions(planContainer(inst, ro, { ...base, imageVolumes: ['/data'] }));
  assert.equal(opts.HostConfig?.Tmpfs, { '/tmp': `rw,nosuid,nodev,size=${8 * MIB}`, '/data': `rw,nosuid,nodev,size=${8 * MIB}` });
});

test('disk: a writable root is bounded with --storage-opt size only where the engine supports it', () => {
  const spec = makeSpec({ filesystem: { readOnly: false, tmpfsBytes: MIB, sizeBytes: 256 * MIB } });
  assert.is(planContainer(inst, spec, { ...base, diskQuota: true }).diskBytes, 256 * MIB);
  assert.is(toCreateOptions(planContainer(inst, spec, { ...base, diskQuota: true })).HostConfig?.StorageOpt?.size, String(256 * MIB));
  assert.is(planContainer(inst, spec, { ...base, diskQuota: false }).diskBytes, undefined);
  assert.is(planContainer(inst, makeSpec({ filesystem: { readOnly: true, tmpfsBytes: MIB, sizeBytes: 256 * MIB } }), { ...base, diskQuota: true }).diskBytes, undefined, 'a read-only root has no writable layer to bound');
});

test('user: the spec sets it, otherwise the image decides; privileges stay dropped', () => {
  assert.is(toCreateOptions(planContainer(inst, makeSpec({ user: '1000:1000' }), base)).User, '1000:1000');
  const opts = toCreateOptions(planContainer(inst, makeSpec(), base));
  assert.is(opts.User, undefined);
  assert.equal(opts.HostConfig?.CapDrop, ['ALL']);
  assert.equal(opts.HostConfig?.SecurityOpt, ['no-new-privileges']);
  assert.not.ok(opts.HostConfig?.Privileged);
  assert.equal(opts.HostConfig?.Binds, []);
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

test('Docker\'s health check is the patient liveness signal; readiness probes run the same test by exec', () => {
  const spec = makeSpec({ healthcheck: { kind: 'http', port: 'web', path: '/', timeoutSeconds: 30 } });
  const plan = planContainer(inst, spec, base);
  assert.equal(plan.healthcheck, { test: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'], intervalMs: 10_000, timeoutMs: 5000, retries: 3, startPeriodMs: 30_000 });
  assert.equal(readinessCommand(spec), ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/']);
  assert.equal(readinessCommand(spec2 && makeSpec({ expose: spec2.expose, healthcheck: { kind: 'tcp', port: 'pwn', timeoutSeconds: 5 } })), ['sh', '-c', 'timeout 1 nc 127.0.0.1 9000 </dev/null >/dev/null 2>&1; [ $? -ne 1 ]']);
  assert.is(readinessCommand(makeSpec()), undefined, 'no health check: running when the container runs');
  assert.is(toCreateOptions(plan).Healthcheck?.StartPeriod, 30_000 * 1_000_000);
});

test.run();
