/**
 * Step 4 of a pass in both layouts: one network's (or the host's) neighbour and FDB changes, written with
 * `ip -batch` and `bridge -batch` side by side, and kept in the entry cache that watches where they go
 * (entry-cache.ts; the host's in the layout without namespaces, the namespace's own with one per network).
 *
 * When every line took effect as planned, the steps are written through to the kept dump (and their
 * monitor lines are expected), so a pass that changes one peer among 50,000 costs the next pass no dump;
 * a batch with any failed line, or one too large to write through, means reading the entries again.
 */
import type { ReconcileResult } from '../dataplane.ts';
import { applyEntries, applyFdbEntries } from './batch.ts';
import type { EntryCache } from './entry-cache.ts';
import type { Runner } from './exec.ts';
import type { FdbStep, NeighbourStep } from './plan.ts';
import { renderFdbStep, renderNeighbourStep } from './render.ts';

/**
 * Above this many entry steps in one pass, the entry monitor is stopped during the batch and the written
 * entries are read back on the next pass, rather than written through to the kept dump: with 10,000 remote
 * endpoints (30,000 steps) reading the monitor's lines made programming from empty ~0.25 s slower
 * (measured here), while reading the entries back costs one dump (~0.2 s) on a later pass.
 */
export const WRITE_THROUGH_MAX_STEPS = 4096;

/** What a pass hands over for one place's entries. */
export interface EntryWrite {
  run: Runner;
  /** the cache of the namespace the steps go to; undefined: none is kept there */
  cache: EntryCache | undefined;
  neighbours: readonly NeighbourStep[];
  fdb: readonly FdbStep[];
  log: (line: string) => void;
}

/** Writes the steps, counts what took effect into `result`, and reports failures as one sentence per table. */
export async function writeEntries(write: EntryWrite, result: ReconcileResult, errors: string[], signal?: AbortSignal): Promise<void> {
  const { run, cache, log } = write;
  const neighbourSteps = [...write.neighbours];
  const fdbSteps = [...write.fdb];
  const writing = neighbourSteps.length > 0 || fdbSteps.length > 0;
  if (!writing) return;
  // a batch as large as a whole node's entries (a first pass, a network arriving) is read back once
  // instead: predicting and matching every monitor line it causes cost more than that read
  const writeThrough = neighbourSteps.length + fdbSteps.length <= WRITE_THROUGH_MAX_STEPS;
  if (writeThrough) cache?.expect(neighbourSteps, fdbSteps);
  else cache?.suspend();
  const [neigh, fdb] = await Promise.all([
    applyEntries(run, 'ip', neighbourSteps, renderNeighbourStep, signal),
    applyFdbEntries(run, fdbSteps, renderFdbStep, signal),
  ]);
  // anything less than every step in effect as planned (also an entry found already gone or present: the
  // dump was wrong) means reading again
  if (writeThrough && neigh.exact && fdb.exact) cache?.applied(neighbourSteps, fdbSteps);
  else cache?.invalidate();
  result.changes += neigh.applied + fdb.applied;
  const firsts = [
    ['neighbour', neighbourSteps.length, neigh.failed.length, neigh.failed[0] && { line: renderNeighbourStep(neigh.failed[0].step), message: neigh.failed[0].message }],
    ['FDB', fdbSteps.length, fdb.failed.length, fdb.failed[0] && { line: renderFdbStep(fdb.failed[0].step), message: fdb.failed[0].message }],
  ] as const;
  for (const [what, total, count, first] of firsts) {
    if (!first) continue;
    const message = `${count} of ${total} ${what} changes failed, first "${first.line}": ${first.message}`;
    errors.push(message);
    log(message);
  }
}
