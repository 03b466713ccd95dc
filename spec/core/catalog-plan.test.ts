import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planCatalog, type PlanSide } from '../../src/core/catalog-plan.ts';

const side = (id: string, hash: string, fields: Record<string, string> = {}, policy: PlanSide['policy'] = 'keep'): PlanSide =>
  ({ id, hash, policy, file: `${id}/challenge.yaml`, fields: { id: `"${id}"`, ...fields } });

test('added, changed (with fields), removed and invalid, changes first; counts instances under the policy', () => {
  const plan = planCatalog({
    from: 'r1', to: 'r2',
    current: [side('web', 'h1', { env: '{}' }, 'recreate'), side('pwn', 'p1'), side('gone', 'g1', {}, 'keep'), side('same', 's1'), side('broken', 'b1')],
    next: [side('web', 'h2', { env: '{"A":"1"}' }, 'recreate'), side('pwn', 'p1'), side('same', 's1'), side('new', 'n1')],
    invalid: [{ id: 'broken', file: 'broken/challenge.yaml', issues: [{ file: 'broken/challenge.yaml', line: 3, column: 1, path: 'x', message: 'bad' }] }, { file: 'odd/challenge.yaml', issues: [] }],
    live: { web: ['h1', 'h1', 'h2'], gone: ['g1'] },
  });
  assert.equal(plan.changes.map((c) => [c.change, c.id ?? c.file]), [
    ['changed', 'web'], ['added', 'new'], ['removed', 'gone'], ['invalid', 'broken'], ['invalid', 'odd/challenge.yaml'],
  ]);
  const [web, , gone, broken, odd] = plan.changes;
  assert.equal(web!.fields, ['env']);
  assert.is(web!.instances, 2, 'the instance already on h2 is not touched');
  assert.match(web!.effect ?? '', /2 running instances: replaced/);
  assert.is(gone!.instances, 1);
  assert.match(gone!.effect ?? '', /no new launches; 1 running instance: kept on their version until they expire/);
  assert.is(broken!.keeps, 'b1');
  assert.is(odd!.keeps, undefined);
  assert.is(plan.unchanged, 2);
  assert.equal([plan.from, plan.to], ['r1', 'r2']);
});

test('a policy-only edit is a change of `update` touching no instance', () => {
  const plan = planCatalog({ to: 'r', current: [side('web', 'h')], next: [side('web', 'h', {}, 'recreate')], invalid: [], live: { web: ['h'] } });
  assert.equal(plan.changes.map((c) => [c.change, c.fields, c.instances]), [['changed', ['update'], 0]]);
  assert.match(plan.changes[0]!.effect ?? '', /policy only/);
});

test('effects per policy', () => {
  const effect = (policy: PlanSide['policy']) =>
    planCatalog({ to: 'r', current: [side('w', 'a', {}, policy)], next: [side('w', 'b', {}, policy)], invalid: [], live: { w: ['a'] } }).changes[0]!.effect;
  assert.match(effect('recreate') ?? '', /replaced as soon as the new image is ready/);
  assert.match(effect('on-renew') ?? '', /moved at their next renew or restart/);
  assert.match(effect('keep') ?? '', /kept on their version until they expire/);
});

test.run();
