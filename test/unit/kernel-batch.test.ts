/** FDB batches: a long one is split between two bridge processes by table, a short one is not. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyFdbEntries, SPLIT_FDB_STEPS } from '../../src/agent/kernel/batch.ts';
import type { RunOptions, RunResult, Runner } from '../../src/agent/kernel/exec.ts';
import type { FdbStep } from '../../src/agent/kernel/plan.ts';
import { BRIDGE_ENTRY } from '../../src/agent/kernel/read.ts';
import { renderFdbStep } from '../../src/agent/kernel/render.ts';

/** Records each batch; a line containing "bad" fails as iproute2 reports it under -force. */
function recorder(): Runner & { batches: string[][] } {
  const batches: string[][] = [];
  return {
    batches,
    async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
      const lines = (options.input ?? '').trim().split('\n');
      batches.push(lines);
      const bad = lines.findIndex((l) => l.includes('02:00:00:00:0b:ad'));
      return { argv, code: bad < 0 ? 0 : 1, stdout: '', stderr: bad < 0 ? '' : `RTNETLINK answers: Invalid argument\nCommand failed -:${bad + 1}\n` };
    },
    readFile: async () => undefined,
    writeFile: async () => {},
    exists: async () => true,
  };
}

const mac = (i: number) => `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const steps = (count: number): FdbStep[] =>
  Array.from({ length: count }, (_, i) =>
    i % 2 === 0
      ? { op: 'fdb-replace', dev: 'vxnv42', mac: mac(i >> 1), dst: '10.99.0.2' }
      : { op: 'fdb-static', dev: 'vxnv42', mac: mac(i >> 1), dst: BRIDGE_ENTRY },
  );

describe('applyFdbEntries', () => {
  it(`splits ${SPLIT_FDB_STEPS} steps or more into the VXLAN device's entries and the bridge's, side by side`, async () => {
    const run = recorder();
    const outcome = await applyFdbEntries(run, steps(SPLIT_FDB_STEPS), renderFdbStep);
    assert.equal(run.batches.length, 2);
    assert.ok(run.batches[0]!.every((l) => / self permanent$/.test(l)));
    assert.ok(run.batches[1]!.every((l) => / master static$/.test(l)));
    assert.deepEqual(outcome, { applied: SPLIT_FDB_STEPS, failed: [], exact: true });
  });

  it('keeps a short batch in one process', async () => {
    const run = recorder();
    await applyFdbEntries(run, steps(SPLIT_FDB_STEPS - 1), renderFdbStep);
    assert.equal(run.batches.length, 1);
  });

  it('reports a failed line of either half and says the outcome is not exact', async () => {
    const run = recorder();
    const all = steps(SPLIT_FDB_STEPS);
    all[3] = { op: 'fdb-static', dev: 'vxnv42', mac: '02:00:00:00:0b:ad', dst: BRIDGE_ENTRY };
    const outcome = await applyFdbEntries(run, all, renderFdbStep);
    assert.equal(outcome.exact, false);
    assert.deepEqual(outcome.failed.map((f) => f.step), [all[3]]);
    assert.equal(outcome.applied, SPLIT_FDB_STEPS - 1);
  });
});
