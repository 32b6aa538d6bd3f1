/**
 * Running `ip -batch` / `bridge -batch` and attributing what failed to the line that failed.
 *
 * Batches run with -force so one bad line cannot block the others; iproute2 names failed lines on stderr.
 * `ip neigh` is the exception: it exits on the first kernel error even with -force. Then the entries are
 * read back, the first one not in effect is the culprit, it is reported and the rest is run again.
 */
import { parseBatchErrors, type Runner } from './exec.ts';
import { entryInEffect, indexFdb, indexNeighbours } from './plan-entries.ts';
import type { FdbStep, LinkStep, NeighbourStep } from './plan.ts';
import { readFdb, readNeighbours, type LinkState } from './read.ts';
import { batchInput } from './render.ts';

/** How many times one pass re-runs a stopped entry batch before leaving the rest to the next pass. */
const MAX_ENTRY_ROUNDS = 8;

export interface BatchOutcome {
/** failed line index → message */
failures: Map<number, string>;
/** the tool stopped early without naming a line: lines after `after` have an unknown fate */
stopped?: { after: number; message: string };
}

export interface EntryOutcome<S> {
applied: number;
failed: { step: S; message: string }[];
/** every step ran once and took effect as planned: the kernel now holds what the plan assumed plus the steps */
exact: boolean;
}

/** Whether a failure says the object is not there (deleting it was what we wanted anyway). */
export const isGone = (message: string): boolean => /No such file or directory|Cannot find device/.test(message);

/** Runs a batch with -force and attributes failures to lines. */
export async function runBatch(run: Runner, prefix: string[], lines: readonly string[], signal?: AbortSignal): Promise<BatchOutcome> {
  if (lines.length === 0) return { failures: new Map() };
  const result = await run.run([...prefix, '-force', '-batch', '-'], {
    input: batchInput(lines),
    signal,
    allowFailure: true,
  });
  if (result.code === 0) return { failures: new Map() };
  const parsed = parseBatchErrors(result.stderr);
  const failures = new Map(parsed.failures.map((f) => [f.line, f.message]));
  if (parsed.trailing || failures.size === 0) {
    const after = parsed.failures.length ? Math.max(...parsed.failures.map((f) => f.line)) : -1;
    return { failures, stopped: { after, message: parsed.trailing || `exit code ${result.code}` } };
  }
  return { failures };
}

/**
 * Applies neighbour or FDB steps. A failing line is reported and skipped; when the tool stops early
 * without naming the line, the entries are read back to find it (see the module comment).
 */
export async function applyEntries<S extends NeighbourStep | FdbStep>(
  run: Runner,
  tool: 'ip' | 'bridge',
  steps: S[],
  render: (step: S) => string,
  signal?: AbortSignal,
): Promise<EntryOutcome<S>> {
  const outcome: EntryOutcome<S> = { applied: 0, failed: [], exact: true };
  let pending = steps;
  for (let round = 0; pending.length > 0; round++) {
    if (round === MAX_ENTRY_ROUNDS) {
      outcome.exact = false;
      for (const step of pending) outcome.failed.push({ step, message: `not attempted: too many failures in one pass` });
      break;
    }
    const result = await runBatch(run, [tool], pending.map(render), signal);
    if (result.stopped || result.failures.size > 0) outcome.exact = false;
    const known = result.stopped ? result.stopped.after + 1 : pending.length;
    for (let i = 0; i < known; i++) {
      const message = result.failures.get(i);
      const step = pending[i]!;
      if (message === undefined) outcome.applied++;
      else if (step.op.endsWith('-del') && isGone(message)) continue;
      else if (step.op === 'fdb-append' && /File exists/.test(message)) continue;
      else outcome.failed.push({ step, message });
    }
    if (!result.stopped) break;
    // Stopped early: read the entries back; what is not in effect yet has not run (or failed).
    const rest = pending.slice(known);
    const neighbours = indexNeighbours(tool === 'ip' ? await readNeighbours(run, signal) : []);
    const fdb = indexFdb(tool === 'bridge' ? await readFdb(run, signal) : []);
    const notDone = rest.filter((step) => !entryInEffect(step, neighbours, fdb));
    outcome.applied += rest.length - notDone.length;
    // "No such file or directory" comes from deleting an entry that vanished meanwhile: nobody to blame.
    if (notDone.length > 0 && !isGone(result.stopped.message)) {
      outcome.failed.push({ step: notDone[0]!, message: result.stopped.message });
      notDone.shift();
    }
    pending = notDone;
  }
  return outcome;
}

/**
 * From this many FDB steps on, the bridge's static entries and the VXLAN device's entries go to two
 * `bridge` processes side by side: they are independent tables, and one process writing both took twice as
 * long as either (10,000 remote endpoints: about 0.4 s each, measured here), while a second process costs a
 * few milliseconds, which a short batch would not win back.
 */
export const SPLIT_FDB_STEPS = 512;

const isBridgeEntryStep = (step: FdbStep): boolean => step.op === 'fdb-static' || step.op === 'fdb-static-del';

/** applyEntries for FDB steps, long batches split in two (see SPLIT_FDB_STEPS). */
export async function applyFdbEntries(
  run: Runner,
  steps: FdbStep[],
  render: (step: FdbStep) => string,
  signal?: AbortSignal,
): Promise<EntryOutcome<FdbStep>> {
  const bridgeSide = steps.filter(isBridgeEntryStep);
  if (steps.length < SPLIT_FDB_STEPS || bridgeSide.length === 0 || bridgeSide.length === steps.length) {
    return applyEntries(run, 'bridge', steps, render, signal);
  }
  const vtepSide = steps.filter((step) => !isBridgeEntryStep(step));
  const [vtep, bridge] = await Promise.all([applyEntries(run, 'bridge', vtepSide, render, signal), applyEntries(run, 'bridge', bridgeSide, render, signal)]);
  return { applied: vtep.applied + bridge.applied, failed: [...vtep.failed, ...bridge.failed], exact: vtep.exact && bridge.exact };
}

/**
 * A link step that failed: an endpoint's fails that endpoint; a network's device that cannot carry anything
 * without it (its creation, deletion or enslaving) holds the network's entries and new endpoints back; a
 * wrong MTU or address is reported but blocks nothing.
 */
export function linkFailure(
  log: (line: string) => void,
  step: LinkStep,
  message: string,
  failedNetworks: Map<string, string>,
  failedEndpoints: Map<string, string>,
  errors: string[],
): void {
  log(`failed: ${message}`);
  if (step.endpoint) {
    failedEndpoints.set(step.endpoint, message);
  } else if (step.network) {
    const fatal =
      step.op === 'bridge-add' || step.op === 'vxlan-add' || step.op === 'link-del' || step.op === 'link-netns' || step.op === 'gateway-add' ||
      (step.op === 'link-set' && step.master !== undefined);
    if (fatal && !failedNetworks.has(step.network)) failedNetworks.set(step.network, `network device setup failed: ${message}`);
    errors.push(message);
  } else {
    errors.push(message);
  }
}

/** UDP ports of the VXLAN devices among `links`. */
export function vxlanPorts(links: Iterable<LinkState>): number[] {
  const ports: number[] = [];
  for (const link of links) if (link.kind === 'vxlan' && link.vxlan) ports.push(link.vxlan.port);
  return ports;
}
