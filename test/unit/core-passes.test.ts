import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SerialPasses } from '../../src/core/passes.ts';

describe('SerialPasses', () => {
  it('requests made during a pass cause exactly one more pass, never an overlapping one', async () => {
    let inFlight = 0;
    let most = 0;
    let runs = 0;
    let release!: () => void;
    const passes = new SerialPasses(
      async () => {
        runs++;
        inFlight++;
        most = Math.max(most, inFlight);
        if (runs === 1) await new Promise<void>((resolve) => (release = resolve));
        inFlight--;
      },
      { retry: { minMs: 10, maxMs: 10 }, active: () => true },
    );
    passes.schedule();
    for (let i = 0; i < 5; i++) passes.schedule();
    release();
    await passes.idle();
    assert.equal(runs, 2);
    assert.equal(most, 1);
  });

  it('a failed pass is tried again after the backoff delay, and a success starts the delays over', async () => {
    const outcomes = [false, false, true];
    const delays: number[] = [];
    const passes: SerialPasses = new SerialPasses(
      async () => {
        if (outcomes.shift()) passes.succeeded();
        else delays.push(passes.failed());
      },
      { retry: { minMs: 5, maxMs: 1_000 }, active: () => true },
    );
    passes.schedule();
    while (outcomes.length > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await passes.idle();
    assert.deepEqual(delays, [5, 10]);
    assert.equal(passes.failures, 0);
  });

  it('once inactive, requests are dropped and a pending retry is stopped', async () => {
    let active = true;
    let runs = 0;
    const passes: SerialPasses = new SerialPasses(
      async () => {
        runs++;
        passes.failed();
      },
      { retry: { minMs: 20, maxMs: 20 }, active: () => active },
    );
    passes.schedule();
    await passes.idle();
    active = false;
    passes.stop();
    passes.schedule();
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(runs, 1);
  });
});
