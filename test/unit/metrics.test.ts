/** The Prometheus text exposition (src/core/metrics.ts): what a scrape returns, and what is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatValue, Registry } from '../../src/core/metrics.ts';

describe('metrics registry', () => {
  it('renders counters, gauges and cumulative histograms with HELP, TYPE, +Inf, _sum and _count', async () => {
    const registry = new Registry();
    const passes = registry.counter('vxnet_test_passes_total', 'Reconcile passes.', ['result']);
    const up = registry.gauge('vxnet_test_up', 'Whether it is up.');
    const seconds = registry.histogram('vxnet_test_pass_seconds', 'Pass duration.', [], [0.1, 1]);
    passes.inc({ result: 'ok' });
    passes.inc({ result: 'ok' }, 2);
    passes.inc({ result: 'error' });
    up.set(1);
    for (const value of [0.05, 0.5, 0.7, 3]) seconds.observe(value);
    assert.equal(
      await registry.render(),
      [
        '# HELP vxnet_test_passes_total Reconcile passes.',
        '# TYPE vxnet_test_passes_total counter',
        'vxnet_test_passes_total{result="ok"} 3',
        'vxnet_test_passes_total{result="error"} 1',
        '# HELP vxnet_test_up Whether it is up.',
        '# TYPE vxnet_test_up gauge',
        'vxnet_test_up 1',
        '# HELP vxnet_test_pass_seconds Pass duration.',
        '# TYPE vxnet_test_pass_seconds histogram',
        'vxnet_test_pass_seconds_bucket{le="0.1"} 1',
        'vxnet_test_pass_seconds_bucket{le="1"} 3',
        'vxnet_test_pass_seconds_bucket{le="+Inf"} 4',
        'vxnet_test_pass_seconds_sum 4.25',
        'vxnet_test_pass_seconds_count 4',
        '',
      ].join('\n'),
    );
  });

  it('escapes label values and help text, and collects gauges at scrape time', async () => {
    const registry = new Registry();
    let nodes = 0;
    registry.gauge('vxnet_test_nodes', 'Nodes by state.\nline two \\ end', ['state'], (g) => g.set({ state: 'up' }, nodes));
    const errors = registry.counter('vxnet_test_errors_total', 'Errors.', ['code']);
    errors.inc({ code: 'a "quoted"\\ \nvalue' });
    nodes = 3;
    const text = await registry.render();
    assert.match(text, /^# HELP vxnet_test_nodes Nodes by state\.\\nline two \\\\ end$/m);
    assert.match(text, /^vxnet_test_nodes\{state="up"\} 3$/m);
    assert.match(text, /^vxnet_test_errors_total\{code="a \\"quoted\\"\\\\ \\nvalue"\} 1$/m);
    // a collector that fails leaves the last values; the scrape still answers
    registry.gauge('vxnet_test_broken', 'Fails to collect.', [], () => Promise.reject(new Error('nft gone')));
    assert.match(await registry.render(), /# TYPE vxnet_test_broken gauge/);
  });

  it('refuses bad names, a missing label, a counter going down and a metric defined twice', () => {
    const registry = new Registry();
    assert.throws(() => registry.counter('vxnet-bad', 'x'), /not a valid Prometheus name/);
    assert.throws(() => registry.counter('vxnet_x_total', 'x', ['__reserved']), /not allowed/);
    assert.throws(() => registry.histogram('vxnet_h', 'x', ['le']), /not allowed/);
    assert.throws(() => registry.histogram('vxnet_h2', 'x', [], [1, 0.5]), /increasing/);
    const c = registry.counter('vxnet_c_total', 'x', ['code']);
    assert.throws(() => c.inc({} as { code: string }), /label "code" has no value/);
    assert.throws(() => c.inc({ code: 'a' }, -1), /only goes up/);
    assert.throws(() => registry.gauge('vxnet_c_total', 'again'), /defined twice/);
  });

  it('spells out the special values', () => {
    assert.deepEqual([Infinity, -Infinity, NaN, 0.25].map(formatValue), ['+Inf', '-Inf', 'NaN', '0.25']);
  });
});
