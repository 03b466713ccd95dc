/**
 * The shipped monitoring files: `promtool check rules` and `promtool test rules` pass on the alert
 * rules, every issue-10 alert exists, and the Grafana dashboard has its rows, unique ids, one
 * datasource variable and only known Grafana variables. (Every expression is run against a real
 * Prometheus in prometheus.test.ts.)
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { havePrometheus, promtool } from '../helpers/prometheus.ts';
import { alertExpressions, ALERT_TESTS, ALERTS, allPanels, dashboard, dashboardExpressions, metricNames } from './expressions.ts';

const t = suite('alert rules and dashboard');
const enabled = havePrometheus();
const it = (name: string, fn: () => Promise<void> | void) => t(name, async () => { if (enabled) await fn(); });

it('promtool check rules passes', () => {
  const r = promtool(['check', 'rules', ALERTS]);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: \d+ rules found/);
});

it('promtool test rules passes', () => {
  const r = promtool(['test', 'rules', ALERT_TESTS]);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
});

t('the alerts issue 10 asks for are all there', () => {
  const names = alertExpressions().map((e) => e.where.replace(/^rule /, ''));
  for (const want of [
    'PoseidonWorkerLost', 'PoseidonLaunchesFailing', 'PoseidonLaunchSlow', 'PoseidonQueueWaitLong', 'PoseidonCatalogSyncFailing',
    'PoseidonCatalogStale', 'PoseidonReconcileErrors', 'PoseidonOrphanBreakerTripped', 'PoseidonCapacityNearlyExhausted',
    'PoseidonLeasePortsNearlyExhausted', 'PoseidonNetworkCreationFailing', 'PoseidonAddressPoolNearlyExhausted',
    'PoseidonWarmPoolExhausted',
  ]) assert.ok(names.includes(want), want);
  assert.is(new Set(names).size, names.length, 'alert names are unique');
});

t('dashboard: the six rows, unique ids, every target on the datasource variable, no grid overlap', () => {
  const d = dashboard();
  assert.is(d.uid, 'poseidon');
  const rows = d.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.equal(rows, ['Overview', 'Launches', 'Queue', 'Workers', 'Catalog', 'Gateway']);
  const panels = allPanels();
  assert.is(new Set(panels.map((p) => p.id)).size, panels.length);
  assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  const cells = new Set<string>();
  for (const p of panels) {
    if (p.type !== 'row') {
      assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`);
      for (const target of p.targets ?? []) assert.is(target.datasource?.uid, '${datasource}', p.title);
    }
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        assert.not.ok(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
        cells.add(`${x},${y}`);
      }
    }
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title);
  }
});

t('dashboard and alert expressions use only known Grafana variables and name metrics Poseidon exports', () => {
  const all = [...dashboardExpressions(), ...alertExpressions()];
  assert.ok(all.length > 60, `${all.length} expressions`);
  for (const e of all) {
    assert.not.ok(e.expr.includes('$') && !/\{\{ ?\$/.test(e.expr), `${e.where}: an unknown variable in ${e.expr}`);
    assert.ok(metricNames(e.expr).length > 0 || e.expr.startsWith('time()'), `${e.where}: no metric in ${e.expr}`);
  }
});

t.run();
