/**
 * Group commit for the etcd store. Every etcd request costs a manager far more CPU in the gRPC client than
 * the write itself (measured with bench/scale/etcd-micro.ts: ~2 ms per transaction, the watch events it
 * causes a small part of that), and in a burst — the status reports of agents starting at once, a forced
 * network delete — requests queued behind each other anyway. So while `maxInFlight` requests are out, the
 * transactions that arrive meanwhile wait and then go together, as nested transactions of one etcd request.
 *
 * etcd evaluates the compares of all nested transactions before it applies any of them; that equals running
 * them one after the other only when none of them writes a key another one compares or writes. So a batch
 * takes transactions in the order they came that conflict so with none taken or left behind before them:
 * two transactions on one key, one writing it, are never reordered and never decided against the same
 * state. Many compare the same key without writing it (every endpoint create compares its network's): those
 * go together. A lone transaction goes out as it would without batching.
 */

export interface Batchable {
  /** the keys only compared */
  reads: readonly string[];
  /** the keys written */
  writes: readonly string[];
  /** roughly the request's size in bytes */
  bytes: number;
  /** goes out on its own (too many operations to share a request with others) */
  alone: boolean;
}

/** etcd allows 128 operations per level of a transaction (--max-txn-ops): the nested ones plus a fence. */
export const MAX_TXNS_PER_BATCH = 64;
/** etcd refuses requests over 1.5 MiB (--max-request-bytes); a batch stays well below. */
export const MAX_BATCH_BYTES = 256 * 1024;
/** A transaction with more operations than this goes alone (a forced delete's batches, liveness batches). */
export const MAX_OPS_TO_SHARE = 32;

/** Removes from `queue` and returns what goes in the next request (at least its first entry); see the top. */
export function takeBatch<T extends Batchable>(queue: T[]): T[] {
  const first = queue.shift();
  if (first === undefined) return [];
  const batch = [first];
  if (first.alone) return batch;
  // the keys read and written by what is taken or left behind: a later one must not conflict with either
  const read = new Set(first.reads);
  const written = new Set(first.writes);
  const note = (item: T) => {
    for (const k of item.reads) read.add(k);
    for (const k of item.writes) written.add(k);
  };
  let bytes = first.bytes;
  const rest: T[] = [];
  for (const item of queue) {
    const clash = item.writes.some((k) => written.has(k) || read.has(k)) || item.reads.some((k) => written.has(k));
    const full = item.alone || batch.length >= MAX_TXNS_PER_BATCH || bytes + item.bytes > MAX_BATCH_BYTES;
    note(item);
    if (clash || full) {
      rest.push(item);
      continue;
    }
    bytes += item.bytes;
    batch.push(item);
  }
  queue.splice(0, queue.length, ...rest);
  return batch;
}

export interface GroupCommitOptions<T, R> {
  /** sends one request for `items` (one or more) and resolves to their results in order */
  send: (items: T[]) => Promise<R[]>;
  /** requests out at once; what arrives meanwhile is batched */
  maxInFlight: number;
  /**
   * Whether a batch that failed with `err` should be sent again one by one: true when etcd refused the
   * request as such (one transaction's content), false when it may have been applied (no answer).
   */
  retryAlone: (err: unknown) => boolean;
}

export class GroupCommitter<T extends Batchable, R> {
  #options: GroupCommitOptions<T, R>;
  #queue: T[] = [];
  #waiting = new Map<T, { resolve: (r: R) => void; reject: (err: unknown) => void }>();
  #inFlight = 0;

  constructor(options: GroupCommitOptions<T, R>) {
    this.#options = options;
  }

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.set(item, { resolve, reject });
      this.#queue.push(item);
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight && this.#queue.length > 0) {
      const batch = takeBatch(this.#queue);
      this.#inFlight++;
      void this.#run(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #run(batch: T[]): Promise<void> {
    try {
      const results = await this.#options.send(batch);
      batch.forEach((item, i) => this.#settle(item, (w) => w.resolve(results[i]!)));
    } catch (err) {
      if (batch.length > 1 && this.#options.retryAlone(err)) {
        await Promise.all(batch.map((item) => this.#run([item])));
        return;
      }
      for (const item of batch) this.#settle(item, (w) => w.reject(err));
    }
  }

  #settle(item: T, how: (w: { resolve: (r: R) => void; reject: (err: unknown) => void }) => void): void {
    const waiter = this.#waiting.get(item);
    this.#waiting.delete(item);
    if (waiter) how(waiter);
  }
}
