/**
 * Every watch message an agent receives is checked by the compiled predicate (src/core/schema/check.ts), not
 * by valibot: valibot builds a copy of every message, a snapshot of tens of thousands of endpoints included.
 * One option of the message variant the compiler did not know (the diagnose request's length and value
 * limits) sent every message of every type to valibot. The compiled check must still refuse exactly what
 * valibot refuses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as v from 'valibot';
import { check } from '../../src/core/schema/check.ts';
import { WatchMessageSchema } from '../../src/core/schema/watch.ts';

const endpoint = { id: 'e1', network: 'blue', node: 'h1', netns: '/run/netns/c1', ifname: 'eth0', ip: '10.1.0.2', prefix: 24,
  gateway: '10.1.0.1', mac: '02:78:0a:01:00:02', status: 'ready', createdAt: 'x' };
const diagnose = { type: 'diagnose', revision: 4, id: 'd1', request: { network: 'blue', macs: ['02:00:00:00:00:01'], ips: ['10.1.0.2'], probe: { endpoint: 'e1', to: '10.1.0.3', count: 3 } } };
const fitting = [
  { type: 'snapshot', revision: 3, nodes: [{ name: 'h1', address: '10.0.0.1', mtu: 1500, registeredAt: 'x' }], networks: [], endpoints: [endpoint] },
  { type: 'endpoint', revision: 5, endpoint },
  { type: 'endpoint-deleted', revision: 6, id: 'e1', network: 'blue' },
  { type: 'ping', revision: 7 },
  { type: 'node-deleted', revision: 8, name: 'h2' },
  diagnose,
];

describe('the watch message check', () => {
  test('hands back the very message it was given: no copy by valibot', () => {
    for (const message of fitting) {
      const checked = check(WatchMessageSchema, message, 'message');
      assert.ok(checked.ok, JSON.stringify(message));
      assert.equal(checked.value, message, `${message.type} went through valibot`);
    }
  });

  test("refuses exactly what valibot refuses at the diagnose request's limits", () => {
    const request = diagnose.request;
    const macs = (n: number) => Array.from({ length: n }, (_, i) => `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`);
    const cases = [
      { ...diagnose, request: { ...request, macs: macs(16) } },
      { ...diagnose, request: { ...request, macs: macs(17) } },
      { ...diagnose, request: { ...request, ips: Array.from({ length: 17 }, () => '10.1.0.2') } },
      { ...diagnose, request: { ...request, probe: { ...request.probe, count: 20 } } },
      { ...diagnose, request: { ...request, probe: { ...request.probe, count: 21 } } },
      { ...diagnose, request: { ...request, probe: { ...request.probe, count: 0 } } },
      { ...diagnose, request: { ...request, macs: 'x' } },
    ];
    const answers = cases.map((message) => check(WatchMessageSchema, message, 'message').ok);
    assert.deepEqual(answers, [true, false, false, true, false, false, false]);
    for (const [i, message] of cases.entries()) assert.equal(answers[i], v.safeParse(WatchMessageSchema, message).success, JSON.stringify(message));
  });
});
