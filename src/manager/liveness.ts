/**
 * Node liveness: when each node was last heard from and which store revision its agent has applied.
 *
 * Kept in memory only, on purpose. Heartbeats arrive every few seconds from every node; writing them to the
 * store would turn an idle cluster into a constant write load (an fsync per heartbeat) and wake every
 * watcher for news nobody acts on. Losing this state on a manager restart is harmless: nodes count as down
 * until their next heartbeat, a few seconds later.
 */

export interface Liveness {
  lastSeen: number;
  reconciledRevision: number;
}

type Waiter = { revision: number; resolve: () => void };

export class LivenessTracker {
  #now: () => number;
  #downAfterMs: number;
  #nodes = new Map<string, Liveness>();
  /** node → callers waiting for that node to reach a revision */
  #waiters = new Map<string, Set<Waiter>>();

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
    const waiters = this.#waiters.get(node);
    if (!waiters) return;
    for (const w of waiters) {
      if (w.revision <= reconciledRevision) {
        waiters.delete(w);
        w.resolve();
      }
    }
    if (waiters.size === 0) this.#waiters.delete(node);
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
  waitReconciled(node: string, revision: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if ((this.#nodes.get(node)?.reconciledRevision ?? 0) >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      let set = this.#waiters.get(node);
      if (!set) this.#waiters.set(node, (set = new Set()));
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const current = this.#waiters.get(node);
        current?.delete(waiter);
        if (current?.size === 0) this.#waiters.delete(node);
        resolve(ok);
      };
      const waiter: Waiter = { revision, resolve: () => finish(true) };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      set.add(waiter);
    });
  }
}
