/**
 * Node liveness: when each node was last heard from and which store revision its agent has applied.
 *
 * Kept in memory, on purpose. Heartbeats arrive every few seconds from every node; writing each to the
 * store would turn an idle cluster into a constant write load (an fsync per heartbeat) and wake every
 * watcher for news nobody acts on. Losing this state on a manager restart is harmless: nodes count as down
 * until their next heartbeat, a few seconds later. Several managers on etcd share it in batches instead
 * (shared-liveness.ts): `unpublished` is what this one has to tell, `merge` what another one told.
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
  /** what the other managers were last told (or told us) of each node */
  #published = new Map<string, Liveness>();
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

  /**
   * What another manager heard from `node` (shared-liveness.ts): the later sighting and the higher revision
   * win, so it never moves a node back; callers waiting for the node are woken when its revision rose.
   */
  merge(node: string, heard: Liveness): void {
    const entry = this.#nodes.get(node);
    const merged = entry
      ? { lastSeen: Math.max(entry.lastSeen, heard.lastSeen), reconciledRevision: Math.max(entry.reconciledRevision, heard.reconciledRevision) }
      : { ...heard };
    this.#nodes.set(node, merged);
    const told = this.#published.get(node);
    this.#published.set(node, told ? { lastSeen: Math.max(told.lastSeen, heard.lastSeen), reconciledRevision: Math.max(told.reconciledRevision, heard.reconciledRevision) } : { ...heard });
    if (!entry || merged.reconciledRevision > entry.reconciledRevision) this.#waiters.notify(node);
  }

  /**
   * The nodes whose news the other managers lack, now counted as told: a higher revision at once (a caller
   * on another manager may be waiting for it), a later sighting once it is `refreshMs` newer than the last
   * one told (enough to keep the node up everywhere, without a write per heartbeat).
   */
  unpublished(refreshMs: number): [string, Liveness][] {
    const out: [string, Liveness][] = [];
    for (const [node, entry] of this.#nodes) {
      const told = this.#published.get(node);
      if (told && entry.reconciledRevision <= told.reconciledRevision && entry.lastSeen - told.lastSeen < refreshMs) continue;
      const news = { ...entry };
      this.#published.set(node, news);
      out.push([node, news]);
    }
    return out;
  }

  /** A node removed from the cluster: nothing of it is kept or told, and a node registered again under its name starts afresh. */
  forget(node: string): void {
    this.#nodes.delete(node);
    this.#published.delete(node);
  }

  /** A batch of `unpublished` that could not be written: told again with the next one. */
  untold(nodes: readonly string[]): void {
    for (const node of nodes) this.#published.delete(node);
  }
}
