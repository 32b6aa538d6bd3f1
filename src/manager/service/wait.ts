/**
 * Waiting, with a deadline, for something the manager learns about later: a node's heartbeat confirming a
 * revision (liveness.ts), an agent reporting an endpoint ready (endpoints.ts). Both park a callback under a
 * key, re-check their condition whenever that key is announced, and must leave nothing behind when they
 * time out or their caller goes away; this is the one place that does the bookkeeping.
 */

export type WaitOutcome<T> = T | 'timeout' | 'aborted';

/** Callers waiting for news about a key (a node name, an endpoint id). */
export class Waiters {
  #byKey = new Map<string, Set<() => void>>();

  /** Something about `key` changed: everyone waiting on it checks again. */
  notify(key: string): void {
    const set = this.#byKey.get(key);
    if (set) for (const recheck of [...set]) recheck();
  }

  /**
   * Resolves with the first answer `check` gives (asked now and on every `notify(key)`), with 'timeout'
   * after `timeoutMs`, or with 'aborted' once `signal` aborts.
   */
  waitFor<T>(key: string, check: () => T | undefined, timeoutMs: number, signal?: AbortSignal): Promise<WaitOutcome<T>> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      let set = this.#byKey.get(key);
      if (!set) this.#byKey.set(key, (set = new Set()));
      const finish = (outcome: WaitOutcome<T>) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const current = this.#byKey.get(key);
        current?.delete(recheck);
        if (current?.size === 0) this.#byKey.delete(key);
        resolve(outcome);
      };
      const recheck = () => {
        const answer = check();
        if (answer !== undefined) finish(answer);
      };
      const onAbort = () => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      set.add(recheck);
    });
  }
}
