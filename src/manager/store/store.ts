/**
 * The manager's persistence contract, deliberately shaped like etcd v3 so an etcd driver can replace the
 * SQLite one without touching the service:
 *
 * - one cluster-wide revision that every successful write increments by exactly one (all operations of a
 *   transaction share it); each key remembers the revision that created it and the one that last changed it;
 * - the only write primitive is a compare-and-swap transaction on keys' modRevisions (0 = "absent"), which
 *   is how the service makes concurrent requests unable to both claim a VNI, a name or an address;
 * - a watch replays retained history from a revision and then streams later changes in revision order, so
 *   the in-memory index can be rebuilt from `list()` + `watch(revision + 1)` without missing anything.
 *
 * Methods are async even though SQLite is synchronous: a network store has to fit the same shape.
 */

export interface KeyValue {
  key: string;
  /** opaque text; the manager stores JSON */
  value: string;
  createRevision: number;
  modRevision: number;
  /**
   * Written as `session` by a manager whose session the store still holds (etcd: the key is attached to a
   * live lease): it goes by itself when that manager dies. Absent where the store has no sessions (SQLite).
   */
  session?: true;
}

/** Holds when the key's modRevision equals `modRevision`; 0 means the key must not exist. */
export interface Compare {
  key: string;
  modRevision: number;
}

/**
 * `session`: the key lives only as long as the writer's session with the store. On etcd that is the
 * manager's lease, so a manager that dies loses such keys after the lease's TTL and a manager that starts
 * can tell another manager's live keys (KeyValue.session) from ones a dead manager left. SQLite has one
 * manager and no sessions: the flag changes nothing there.
 */
export type Op = { type: 'put'; key: string; value: string; session?: boolean } | { type: 'delete'; key: string };

export interface TxnResult {
  succeeded: boolean;
  /** the new revision on success; the store's current revision when a compare failed */
  revision: number;
}

export type WatchEvent =
  | { type: 'put'; revision: number; kv: KeyValue; prevValue?: string }
  | { type: 'delete'; revision: number; key: string; prevValue: string };

/** Called once per revision with that revision's events (only those under the watched prefix). */
export type WatchCallback = (events: WatchEvent[]) => void;

export interface WatchOptions {
  /**
   * false: the watcher keeps what it needs of old values itself, so the events may come without
   * `prevValue` (a delete's is then ''). On etcd that spares, per event and per watcher, the read of the
   * key's previous version and its transfer and decoding; SQLite has it at hand and sends it anyway.
   * Default true.
   */
  previousValues?: boolean;
}

export interface ListResult {
  kvs: KeyValue[];
  /** the store revision the list was read at */
  revision: number;
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with `prefix`, sorted by key. */
  list(prefix: string): Promise<ListResult>;
  /** The current cluster revision (0 for an empty store). */
  revision(): Promise<number>;
  /** All compares hold → apply every op atomically under one new revision; otherwise change nothing. */
  txn(compares: Compare[], ops: Op[]): Promise<TxnResult>;
  /**
   * Delivers every change under `prefix` with revision ≥ `fromRevision`, first the retained history, then
   * live changes, in revision order. Rejects with CompactedError when that history is no longer kept.
   * Resolves to the function that stops the watch.
   */
  watch(prefix: string, fromRevision: number, onEvents: WatchCallback, options?: WatchOptions): Promise<() => void>;
  /**
   * Whether `revision` is one a transaction of this very store object made (its answer came back), among the
   * recent ones; a store shared by several managers only (etcd). False when unsure: a revision another
   * manager made is never claimed.
   */
  madeRevision?(revision: number): boolean;
  close(): Promise<void>;
}

/**
 * The requested watch start is older than the retained history: list again and watch from there. Not in the
 * error catalogue: no request can cause it (the manager watches from the revision it has just listed), so
 * it never reaches a user as anything but an internal failure.
 */
export class CompactedError extends Error {
  readonly compactRevision: number;
  constructor(fromRevision: number, compactRevision: number) {
    super(`watch from revision ${fromRevision} is no longer possible: history up to ${compactRevision} was compacted.`);
    this.name = 'CompactedError';
    this.compactRevision = compactRevision;
  }
}

/** The first key after every key that starts with `prefix` (etcd's "range end" for a prefix). */
export function prefixEnd(prefix: string): string {
  if (prefix === '') return '\u{10ffff}';
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}
