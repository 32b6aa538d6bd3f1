/**
 * The delay before a broken etcd watch stream is opened again (etcd-client.ts): it doubles from the first
 * step and never passes the cap, however long the member stays away, so a manager's watch follows etcd again
 * within about a second of the member's return (etcd3's default had grown to 30 s by then).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cappedBackoff, clientOptions, WATCH_RETRY_FIRST_MS, WATCH_RETRY_MAX_MS } from '../../src/manager/store/etcd-client.ts';

describe('etcd client options', () => {
  test('the watch backoff doubles from its first step and stays at the cap, from the factory on', () => {
    const durations: number[] = [];
    let step = cappedBackoff().next();
    for (let i = 0; i < 40; i++) {
      durations.push(step.duration);
      step = step.next();
    }
    assert.deepEqual(durations.slice(0, 5), [WATCH_RETRY_FIRST_MS, 200, 400, 800, WATCH_RETRY_MAX_MS]);
    assert.ok(durations.every((d) => d <= WATCH_RETRY_MAX_MS), `a delay passed the cap: ${Math.max(...durations)} ms`);
    assert.equal(cappedBackoff().next().duration, WATCH_RETRY_FIRST_MS, 'a fresh start (after a stream came back) begins at the first step');
  });

  test('the client is given the capped backoff, the TLS material and a deadline per attempt of unary calls only', () => {
    const before = Date.now();
    const options = clientOptions(['10.0.0.1:2379', '10.0.0.2:2379'], { ca: Buffer.from('ca'), cert: Buffer.from('c'), key: Buffer.from('k') }, 5000, 2000);
    assert.deepEqual(options.hosts, ['https://10.0.0.1:2379', 'https://10.0.0.2:2379']);
    assert.equal(options.dialTimeout, 5000);
    assert.equal(options.faultHandling?.watchBackoff?.next(undefined).duration, WATCH_RETRY_FIRST_MS);
    assert.deepEqual(options.credentials, { rootCertificate: Buffer.from('ca'), privateKey: Buffer.from('k'), certChain: Buffer.from('c') });
    const callOptions = options.defaultCallOptions as (context: { isStream: boolean }) => { deadline?: number };
    assert.deepEqual(callOptions({ isStream: true }), {}, 'a watch stream has no deadline');
    const deadline = callOptions({ isStream: false }).deadline!;
    assert.ok(deadline >= before + 2000 && deadline <= Date.now() + 2000);
    assert.deepEqual(clientOptions(['127.0.0.1:2379'], undefined, 5000, 2000).hosts, ['http://127.0.0.1:2379']);
  });
});
