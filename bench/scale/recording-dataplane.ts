/**
 * The data plane of a simulated agent: instead of programming a kernel it keeps the last desired state it
 * was given and says every local endpoint is ready. The agent around it is the real one (view, desired
 * rendering, reconcile loop, status reports, heartbeats), so the manager sees the real request mix; only the
 * kernel's cost is left out (bench/kernel-scale.ts measures that on a real namespace).
 */
import type { Dataplane, DesiredState, ReconcileResult } from '../../src/agent/dataplane.ts';

export class RecordingDataplane implements Dataplane {
  /** the desired state of the last pass: what a kernel would now hold */
  last: DesiredState | undefined;
  passes = 0;
  readonly #onReconcile: (desired: DesiredState) => void;
  #endpoints: DesiredState['endpoints'] | undefined;
  #ready = new Set<string>();

  /** `onReconcile` runs synchronously when the agent hands over a desired state (the harness stamps it). */
  constructor(onReconcile: (desired: DesiredState) => void = () => {}) {
    this.#onReconcile = onReconcile;
  }

  reconcile(desired: DesiredState): Promise<ReconcileResult> {
    this.last = desired;
    this.passes++;
    this.#onReconcile(desired);
    // The renderer hands over the same local endpoint list while none changed (the kernel data plane skips
    // its work then, too): the ready set of the last pass is the same. Building it on every pass was the
    // recording data plane's own cost, O(local endpoints) per watch message, counted as the agents' CPU.
    if (desired.endpoints !== this.#endpoints) {
      this.#endpoints = desired.endpoints;
      this.#ready = new Set(desired.endpoints.map((endpoint) => endpoint.id));
    }
    // the agent adds its own failures to endpointErrors: a new map each pass
    return Promise.resolve({ changes: 0, endpointErrors: new Map(), readyEndpoints: this.#ready });
  }
}
