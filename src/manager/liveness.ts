/**
 * Node liveness: when each node was last heard from and which store revision its agent has applied.
 *
 * Kept in memory, on purpose. Heartbeats arrive every few seconds from every node; writing each to the
 * store would turn an idle cluster into a constant write load (an fsync per heartbeat) and wake every
 * watcher for news nobody acts on. Losing this state on a manager restart is harmless: nodes count as down
 * until their next heartbeat, a few seconds later.
 *
 * Several managers on etcd share it (shared-liveness.ts) by news, not by beat: a manager tells the others when
 * it starts or stops hearing a node and when a node passes a revision someone may wait for. What it needs
 * from here: the nodes heard since it last asked (`takeHeard`), whether it still hears one (`hears`); what it
 * gets: another manager's report (`merge`) — the node then counts as up for as long as that manager holds
 * its report (`release` when the report goes).
 */
import { Waiters } from './service/wait.ts';

export interface Liveness {
  lastSeen: number;
  reconciledRevision: number;
}

export class LivenessTracker {
  #now: () => number;
  #downAfterMs: number;
  /** what is known of each node: this manager's sightings merged with the others' reports */
  #nodes = new Map<string, Liveness>();
  /** when this manager itself last heard each node */
  #heardAt = new Map<string, number>();
  /** the nodes heard since the last `takeHeard` */
  #heard = new Set<string>();
  /** the nodes another manager reports as heard, for as long as it does */
  #held = new Set<string>();
  /** callers waiting for a node to reach a revision, keyed by node */
  #waiters = new Waiters();

  constructor(options: { now: () => number; downAfterMs: number }) {
    this.#now = options.now;
    this.#downAfterMs = options.downAfterMs;
  }

  /** Any sign of life (registration, heartbeat). */
  seen(node: string): void {
    const now = this.#hear(node);
    const entry = this.#nodes.get(node);
    if (entry) entry.lastSeen = now;
    else this.#nodes.set(node, { lastSeen: now, reconciledRevision: 0 });
  }

  heartbeat(node: string, reconciledRevision: number): void {
    const now = this.#hear(node);
    const entry = this.#nodes.get(node);
    if (entry) {
      entry.lastSeen = now;
      entry.reconciledRevision = reconciledRevision;
    } else {
      this.#nodes.set(node, { lastSeen: now, reconciledRevision });
    }
    this.#waiters.notify(node);
  }

  #hear(node: string): number {
    const now = this.#now();
    this.#heardAt.set(node, now);
    this.#heard.add(node);
    return now;
  }

  /**
   * Up when heard within the down-time, by this manager or by another one that still reports it (whose
   * report may be older: a manager tells only news, so `lastSeen` is then when it last had some).
   */
  get(node: string): { state: 'up' | 'down'; lastSeen: string | null; reconciledRevision: number } {
    const entry = this.#nodes.get(node);
    if (!entry) return { state: 'down', lastSeen: null, reconciledRevision: 0 };
    const up = this.#held.has(node) || this.#now() - entry.lastSeen < this.#downAfterMs;
    return { state: up ? 'up' : 'down', lastSeen: new Date(entry.lastSeen).toISOString(), reconciledRevision: entry.reconciledRevision };
  }

  /** What is known of `node` (this manager's sightings and the others' reports), if anything. */
  entry(node: string): Readonly<Liveness> | undefined {
    return this.#nodes.get(node);
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
   * What another manager reports of `node` (shared-liveness.ts): with `standing`, the node is up while that
   * report stands (until `release`); without, only by its sighting, as any other. The later sighting and
   * the higher revision win, so it never moves a node back; callers waiting for the node are woken when its
   * revision rose.
   */
  merge(node: string, heard: Liveness, standing = true): void {
    const entry = this.#nodes.get(node);
    const merged = entry
      ? { lastSeen: Math.max(entry.lastSeen, heard.lastSeen), reconciledRevision: Math.max(entry.reconciledRevision, heard.reconciledRevision) }
      : { ...heard };
    this.#nodes.set(node, merged);
    if (standing) this.#held.add(node);
    if (!entry || merged.reconciledRevision > entry.reconciledRevision) this.#waiters.notify(node);
  }

  /** Another manager's report of `node` is gone (it stopped hearing it, or it died, or this one took over). */
  release(node: string): void {
    this.#held.delete(node);
  }

  /** The nodes this manager heard since the last call. */
  takeHeard(): string[] {
    const heard = [...this.#heard];
    this.#heard.clear();
    return heard;
  }

  /** Nodes taken by `takeHeard` whose news could not be told: taken again by the next call. */
  heardAgain(nodes: readonly string[]): void {
    for (const node of nodes) if (this.#heardAt.has(node)) this.#heard.add(node);
  }

  /** Whether this manager itself heard `node` within the down-time. */
  hears(node: string): boolean {
    const at = this.#heardAt.get(node);
    return at !== undefined && this.#now() - at < this.#downAfterMs;
  }

  /** A node removed from the cluster: nothing of it is kept or told, and a node registered again under its name starts afresh. */
  forget(node: string): void {
    this.#nodes.delete(node);
    this.#heardAt.delete(node);
    this.#heard.delete(node);
    this.#held.delete(node);
  }
}
