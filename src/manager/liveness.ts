/**
 * Node liveness: when each node was last heard from and which store revision its agent has applied.
 *
 * Kept in memory only, on purpose. Heartbeats arrive every few seconds from every node; writing them to the
 * store would turn an idle cluster into a constant write load (an fsync per heartbeat) and wake every
 * watcher for news nobody acts on. Losing this state on a manager restart is harmless: nodes count as down
 * until their next heartbeat, a few seconds later.
 */
import { Waiters } from './service/wait.ts';

export interface Liveness {
  lastSeen: number;
  reconciledRevision: number;
}

export class LivenessTracker {
  #now: () => number;
  #downAfterMs: number;
  #nodes = new Map<string, Liveness>();
  /** callers waiting for a node to reach a revision, keyed by node */
  #waiters = new Waiters();

  constructor(options: { now: () => number; downAfterMs: number }) {
    this.#now = options.now;
    this.#downAfterMs = options.downAfterMs;
  }

  /** Any sign of life (registration, heartbeat). */
  seen(node: string): void {
    const entry = this.#nodes.get(node);
    if (entry) entry.lastSeen = this.#now();
    else this.#nodes.set(node, { lastSeen: this.#now(), reconciledRevision: 0 });
  }

  heartbeat(node: string, reconciledRevision: number): void {
    const now = this.#now();
    const entry = this.#nodes.get(node);
    if (entry) {
      entry.lastSeen = now;
      entry.reconciledRevision = reconciledRevision;
    } else {
      this.#nodes.set(node, { lastSeen: now, reconciledRevision });
    }
    this.#waiters.notify(node);
  }

  get(node: string): { state: 'up' | 'down'; lastSeen: string | null; reconciledRevision: number } {
    const entry = this.#nodes.get(node);
    if (!entry) return { state: 'down', lastSeen: null, reconciledRevision: 0 };
    const up = this.#now() - entry.lastSeen < this.#downAfterMs;
    return { state: up ? 'up' : 'down', lastSeen: new Date(entry.lastSeen).toISOString(), reconciledRevision: entry.reconciledRevision };
  }

  /**
   * Resolves true once `node` reports reconciledRevision ≥ `revision`, false after `timeoutMs` (or when
   * `signal` aborts).
   */
  async waitReconciled(node: string, revision: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const reached = () => ((this.#nodes.get(node)?.reconciledRevision ?? 0) >= revision ? true : undefined);
    return (await this.#waiters.waitFor(node, reached, timeoutMs, signal)) === true;
  }
}
