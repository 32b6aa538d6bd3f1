import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, nothingListening, pause, retryWithBackoff } from '../../src/core/backoff.ts';

describe('Backoff', () => {
  it('doubles from minMs up to maxMs and starts over after reset', () => {
    const b = new Backoff({ minMs: 100, maxMs: 1_000 });
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1_000, 1_000]);
    assert.equal(b.failures, 6);
    b.reset();
    assert.equal(b.failures, 0);
    assert.deepEqual([b.next(), b.next()], [100, 200]);
  });

  it('stays at the cap after any number of failures', () => {
    const b = new Backoff({ minMs: 200, maxMs: 10_000 });
    for (let i = 0; i < 5_000; i++) b.next();
    assert.equal(b.next(), 10_000);
  });

  it('a cap given to next() lowers that delay only, and never below minMs', () => {
    const b = new Backoff({ minMs: 100, maxMs: 5_000 });
    assert.deepEqual([b.next(), b.next(), b.next()], [100, 200, 400]);
    assert.equal(b.next(300), 300);
    assert.equal(b.next(10), 100);
    assert.equal(b.next(), 3_200);
  });

  it('with jitter draws each delay from [0, ceiling], the ceiling growing as without', () => {
    const draws = [0, 0.5, 0.999, 0.25];
    const b = new Backoff({ minMs: 100, maxMs: 1_000, jitter: true, random: () => draws.shift()! });
    assert.equal(b.next(), 0);
    assert.equal(b.ceiling, 100);
    assert.equal(b.next(), 100);
    assert.equal(b.ceiling, 200);
    assert.equal(b.next(), 400);
    assert.equal(b.next(), 200);
    assert.equal(b.ceiling, 800);
  });

  it('with jitter spreads a thousand clients over the window instead of sending them at once', () => {
    const delays = Array.from({ length: 1_000 }, () => {
      const b = new Backoff({ minMs: 100, maxMs: 1_000, jitter: true });
      for (let i = 0; i < 4; i++) b.next();
      return b.next();
    });
    assert.ok(delays.every((d) => d >= 0 && d <= 1_000));
    const buckets = new Set(delays.map((d) => Math.floor(d / 100)));
    assert.ok(buckets.size >= 9, `spread over ${buckets.size} of 10 slices of the window`);
  });

  it('refuses a minimum that is not positive or a maximum below it', () => {
    assert.throws(() => new Backoff({ minMs: 0, maxMs: 10 }), RangeError);
    assert.throws(() => new Backoff({ minMs: 100, maxMs: 10 }), RangeError);
  });
});

describe('retryWithBackoff', () => {
  it('retries failures with growing delays and resolves with the first success', async () => {
    let calls = 0;
    const seen: number[] = [];
    const value = await retryWithBackoff(
      async () => {
        if (++calls < 4) throw new Error(`try ${calls}`);
        return 'done';
      },
      { backoff: new Backoff({ minMs: 1, maxMs: 4 }), signal: new AbortController().signal, onRetry: (_err, ms) => seen.push(ms) },
    );
    assert.equal(value, 'done');
    assert.deepEqual(seen, [1, 2, 4]);
  });

  it('rejects at once with a failure that is not retryable', async () => {
    const final = new Error('final');
    let calls = 0;
    await assert.rejects(
      retryWithBackoff(
        async () => {
          calls++;
          throw final;
        },
        { backoff: new Backoff({ minMs: 1, maxMs: 4 }), signal: new AbortController().signal, retryable: (err) => err !== final },
      ),
      (err) => err === final,
    );
    assert.equal(calls, 1);
  });

  it('stops waiting and rejects with the reason when the signal aborts', async () => {
    const abort = new AbortController();
    const reason = new Error('stopping');
    const started = performance.now();
    const pending = retryWithBackoff(() => Promise.reject(new Error('down')), {
      backoff: new Backoff({ minMs: 60_000, maxMs: 60_000 }),
      signal: abort.signal,
      onRetry: () => abort.abort(reason),
    });
    await assert.rejects(pending, (err) => err === reason);
    assert.ok(performance.now() - started < 1_000);
  });
});

describe('pause', () => {
  it('ends early, without rejecting, when the signal aborts', async () => {
    const abort = new AbortController();
    const started = performance.now();
    setTimeout(() => abort.abort(), 10);
    await pause(60_000, abort.signal);
    assert.ok(performance.now() - started < 1_000);
  });
});

describe('nothingListening', () => {
  const withCode = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
  it('is true for a refused connection or a missing unix socket, also wrapped as the client words it', () => {
    assert.equal(nothingListening(withCode('ECONNREFUSED')), true);
    assert.equal(nothingListening(withCode('ENOENT')), true);
    assert.equal(nothingListening(new Error('cannot reach the manager at https://m:1: ECONNREFUSED', { cause: withCode('ECONNREFUSED') })), true);
    assert.equal(nothingListening(new Error('connect ECONNREFUSED')), true);
  });
  it('is false for a manager that is up and failed the call: reset handshake, timeout, silence, an answer', () => {
    assert.equal(nothingListening(new Error('cannot reach the manager at https://m:1: ECONNRESET', { cause: withCode('ECONNRESET') })), false);
    assert.equal(nothingListening(new Error('the manager at https://m:1 did not answer within 10 s.')), false);
    assert.equal(nothingListening(new Error('the manager has sent nothing for 30 s (it pings every 10 s)')), false);
    assert.equal(nothingListening(undefined), false);
  });
});
