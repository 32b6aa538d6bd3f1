/**
 * The agent's status reports (src/agent/status-reports.ts): a few out at once, each endpoint's latest outcome
 * only, a failure retried after a backoff rather than at once, a refusal believed, a forgotten endpoint not
 * reported.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff } from '../../src/core/backoff.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { EndpointStatusRequest } from '../../src/core/model.ts';
import { MAX_IN_FLIGHT, StatusReporter } from '../../src/agent/status-reports.ts';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

function manager() {
  const calls: [string, string][] = [];
  const answers: ((err?: Error) => void)[] = [];
  let inFlight = 0;
  let most = 0;
  const send = (id: string, report: EndpointStatusRequest) => {
    calls.push([id, report.status]);
    most = Math.max(most, ++inFlight);
    return new Promise<void>((resolve, reject) => answers.push((err) => (inFlight--, err ? reject(err) : resolve())));
  };
  return { send, calls, answers, most: () => most };
}

describe('endpoint status reports', () => {
  test('a burst goes out a few at a time, each endpoint once with its latest outcome', async () => {
    const m = manager();
    const reporter = new StatusReporter({ send: m.send, log: () => {} });
    for (let i = 0; i < 20; i++) reporter.report(`e${i}`, { status: 'error', message: 'not yet' });
    for (let i = 0; i < 20; i++) reporter.report(`e${i}`, { status: 'ready' });
    assert.equal(m.calls.length, MAX_IN_FLIGHT);
    while (m.answers.length > 0) {
      m.answers.shift()!();
      await tick();
    }
    assert.equal(m.most(), MAX_IN_FLIGHT);
    // the first few went before their newer outcome came: those are sent again, every other once
    assert.equal(m.calls.length, 20 + MAX_IN_FLIGHT);
    assert.deepEqual(new Set(m.calls.slice(MAX_IN_FLIGHT).map(([, s]) => s)), new Set(['ready']));
  });

  test('a failure waits out the backoff, is retried once, and a refusal is not retried', async () => {
    const m = manager();
    const dropped: string[] = [];
    const logs: string[] = [];
    const backoff = new Backoff({ minMs: 200, maxMs: 200 });
    const reporter = new StatusReporter({ send: m.send, log: (l) => logs.push(l), backoff, onDropped: (id) => dropped.push(id) });
    reporter.report('a', { status: 'ready' });
    reporter.report('gone', { status: 'ready' });
    const failedAt = Date.now();
    m.answers.shift()!(new VxnetError('timeout', 'the manager did not answer within 10 s.'));
    m.answers.shift()!(new VxnetError('endpoint_not_found', 'endpoint gone does not exist.'));
    await tick();
    assert.deepEqual(dropped, ['gone']);
    reporter.report('b', { status: 'ready' });
    assert.equal(m.calls.length, 2, 'sent again before the backoff ended');
    const deadline = Date.now() + 10_000;
    while (m.calls.length < 4) {
      assert.ok(Date.now() < deadline, 'never sent again');
      await tick(10);
    }
    assert.ok(Date.now() - failedAt >= 190, `sent again after ${Date.now() - failedAt} ms, within the backoff`);
    assert.deepEqual(m.calls.slice(2).map(([id]) => id).sort(), ['a', 'b']);
    assert.equal(logs.filter((l) => l.includes('could not report')).length, 1);
  });

  test('a forgotten endpoint is not reported; an aborted agent sends nothing more', async () => {
    const m = manager();
    const controller = new AbortController();
    const reporter = new StatusReporter({ send: m.send, log: () => {}, signal: () => controller.signal });
    for (let i = 0; i < MAX_IN_FLIGHT + 2; i++) reporter.report(`e${i}`, { status: 'ready' });
    reporter.forget(`e${MAX_IN_FLIGHT}`);
    m.answers.shift()!();
    await tick();
    assert.equal(m.calls.at(-1)![0], `e${MAX_IN_FLIGHT + 1}`);
    controller.abort();
    reporter.report('late', { status: 'ready' });
    assert.equal(m.calls.some(([id]) => id === 'late'), false);
  });
});
