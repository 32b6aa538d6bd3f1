/**
 * etcd v3 implementation of the Store contract, for several managers sharing one etcd cluster.
 *
 * Every key lives under a prefix (default `/vxnet`), so one etcd can hold other tenants; revisions are
 * etcd's own, cluster-wide. Uniqueness across managers rests entirely on etcd transactions: a Compare on
 * modRevision maps one to one onto etcd's `mod_revision ==` compare (an absent key compares as 0).
 *
 * The revision fence. The service waits, after every transaction, until its index (fed by the watch) has
 * reached the revision the transaction returned (service/cas.ts). etcd's revision counts writes to every
 * key, so a failed compare or a transaction that changed nothing would return a revision that may belong
 * to a key outside the prefix, which the prefix watch never delivers: the wait would never end. So a
 * transaction writes FENCE_KEY wherever it might otherwise change nothing: in its failure branch, and in its
 * success branch unless that puts a key (a put always makes a revision, under the prefix; a delete of a key
 * already gone makes none); a group of transactions (etcd-batch.ts) always writes it. The revision it
 * returns is then always one the watch delivers. Unlike SQLite, a no-op transaction moves the revision. The
 * fence event reaches watchers like any other key; the manager's index ignores it. (Written by every
 * transaction, it was one event in three or two of an endpoint's create or status, decoded for nothing.)
 *
 * Watch resumption: the etcd3 client reconnects a broken watch stream by itself, but it resumes from the
 * last *header* revision, which while history is being replayed is already the current one; events in
 * between would be skipped. So the driver records the revision of the last event it delivered and sets
 * the resume point itself whenever the stream drops. When etcd cancels the watch instead — the history it
 * would resume from was compacted while it was away — the driver lists the prefix, delivers the difference
 * from what it had delivered (it keeps the keys for that), watches on from the listing, and says so in the
 * log: every manager's index, and the agents' watch hubs on it, would otherwise stay as they were in silence.
 *
 * Group commit (etcd-batch.ts): transactions that arrive while REQUESTS_IN_FLIGHT requests are out go
 * together as nested transactions of one request, and then share its revision.
 *
 * Session keys (Op `session`) are put with this manager's lease (etcd-session.ts) and read back with
 * `session` set while that lease lives, so a manager starting up can leave another one's markers alone.
 */
import { Etcd3, type ITxnRequest, type Watcher } from 'etcd3';
import { clientOptions, type EtcdTls } from './etcd-client.ts';
import { GroupCommitter, MAX_OPS_TO_SHARE } from './etcd-batch.ts';
import { isNoAnswer, unavailable } from './etcd-errors.ts';
import { EtcdSession, SESSION_TTL_SECONDS } from './etcd-session.ts';
import {
  CompactedError,
  type Compare,
  type KeyValue,
  type ListResult,
  type Op,
  type Store,
  type TxnResult,
  type WatchCallback,
  type WatchEvent,
  type WatchOptions,
  prefixEnd,
} from './store.ts';

export type { EtcdTls } from './etcd-client.ts';

/** Written by every transaction so that its revision is one the prefix watch delivers (see above). */
export const FENCE_KEY = '/meta/revision-fence';
export const DEFAULT_ETCD_PREFIX = '/vxnet';
/**
 * Added to every etcd revision the store reports (and taken off those it is given). Written once, by
 * `vxnet migrate`, so that revisions keep growing from where the SQLite store left them: agents
 * report the revision they have seen, and a revision that went backwards would claim they had seen changes
 * they never got. Absent (0) on a cluster made on etcd from the start.
 */
export const REVISION_OFFSET_KEY = '/meta/revision-offset';
/**
 * How long one store operation may take, the client's own retries included, before it is refused with
 * `unavailable`. etcd gives up on a proposal without quorum only after about 7 s (5 s + 2 election
 * timeouts), and the client then retries: without this bound a write would outlast the API clients'
 * 10 s timeout and they would see a timeout instead of the reason. A leader election (~1.5 s) fits well.
 */
const REQUEST_TIMEOUT_MS = 5_000;
/**
 * One attempt of a request; the client retries a timed-out attempt on another member. Why shorter than the
 * whole: a request caught on a member that had forwarded it to a leader just killed waits there for etcd's
 * own timeout; measured here, writes paused 5.1 s across a leader kill with a single attempt.
 */
const ATTEMPT_TIMEOUT_MS = 2_000;

/** Requests out at once; later transactions wait and go together. A request takes ~20 ms here, mostly fsync. */
const REQUESTS_IN_FLIGHT = 8;
const MADE_REVISIONS_KEPT = 1024; // the latest revisions the store remembers for `madeRevision`: seconds of writes
export interface EtcdStoreOptions {
  /** `host:port` of each member */
  endpoints: string[];
  tls?: EtcdTls;
  /** every key is stored under this prefix (default DEFAULT_ETCD_PREFIX) */
  prefix?: string;
  /** where exceptions thrown by watch callbacks and watch failures are reported (default console.error) */
  onCallbackError?: (err: unknown) => void;
  requestTimeoutMs?: number;
  /** the TTL of this manager's lease for session keys (default SESSION_TTL_SECONDS) */
  sessionTtlSeconds?: number;
}

interface RawKv {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
  /** the lease the key is attached to, '0' for none */
  lease: string;
}

/** A transaction turned into etcd's terms, waiting for its request (etcd-batch.ts). */
interface PreparedTxn {
  reads: string[];
  writes: string[];
  bytes: number;
  alone: boolean;
  puts: boolean; // it puts a key: its success makes a revision the prefix watch delivers, without the fence
  compare: ITxnRequest['compare'];
  success: NonNullable<ITxnRequest['success']>;
}

interface RawEvent {
  type: string;
  kv: RawKv;
  prev_kv?: RawKv | null;
}

export class EtcdStore implements Store {
  readonly endpoints: string[];
  readonly prefix: string;
  #client: Etcd3;
  #onCallbackError: (err: unknown) => void;
  #timeoutMs: number;
  #stops = new Set<() => void>();
  #closed = false;
  #offset = 0;
  #offsetRead: Promise<void> | undefined;
  #session: EtcdSession;
  #commits: GroupCommitter<PreparedTxn, TxnResult>;
  /** the revisions this store's transactions made, oldest first, at most MADE_REVISIONS_KEPT */
  #made = new Set<number>();

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new Error('the etcd store needs at least one endpoint.');
    this.endpoints = options.endpoints;
    this.prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
    this.#onCallbackError = options.onCallbackError ?? ((err) => console.error('vxnet store:', err));
    this.#timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.#client = new Etcd3(clientOptions(options.endpoints, options.tls, this.#timeoutMs, Math.min(ATTEMPT_TIMEOUT_MS, this.#timeoutMs)));
    this.#commits = new GroupCommitter({
      send: (batch) => this.#send(batch),
      maxInFlight: REQUESTS_IN_FLIGHT,
      // a batch etcd answered with a refusal (too large, say) was not applied: each on its own then
      retryAlone: (err) => !isNoAnswer(err),
    });
    this.#session = new EtcdSession(this.#client, { ttlSeconds: options.sessionTtlSeconds ?? SESSION_TTL_SECONDS, onLost: this.#onCallbackError });
  }

  async get(key: string): Promise<KeyValue | undefined> {
    await this.#readOffset();
    const res = await this.#call(() => this.#client.kv.range({ key: this.#key(key) }));
    const kv = (res.kvs as RawKv[])[0];
    return kv ? this.#toKeyValue(kv) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    await this.#readOffset();
    const res = await this.#call(() =>
      this.#client.kv.range({ key: this.#key(prefix), range_end: this.#rangeEnd(prefix), sort_target: 'Key', sort_order: 'Ascend' }),
    );
    return { kvs: (res.kvs as RawKv[]).map((kv) => this.#toKeyValue(kv)), revision: Number(res.header.revision) + this.#offset };
  }

  async revision(): Promise<number> {
    await this.#readOffset();
    const res = await this.#call(() => this.#client.kv.range({ key: this.#key(FENCE_KEY), count_only: true }));
    return Number(res.header.revision) + this.#offset;
  }

  async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    await this.#readOffset();
    // 0 means "absent" in etcd too; any other revision the caller holds was reported with the offset
    const local = (revision: number) => (revision === 0 ? 0 : revision - this.#offset);
    const lease = ops.some((op) => op.type === 'put' && op.session) ? await this.#session.id((grant) => this.#call(grant)) : undefined;
    const request: PreparedTxn = {
      reads: compares.map((c) => c.key),
      writes: ops.map((op) => op.key),
      bytes: ops.reduce((n, op) => n + op.key.length + (op.type === 'put' ? op.value.length : 0), 64),
      alone: ops.length > MAX_OPS_TO_SHARE,
      puts: ops.some((op) => op.type === 'put'),
      compare: compares.map((c) => ({ key: this.#key(c.key), target: 'Mod', result: 'Equal', mod_revision: String(local(c.modRevision)) })),
      success: ops.map((op) =>
        op.type === 'put'
          ? { request_put: { key: this.#key(op.key), value: Buffer.from(op.value), ...(op.session && lease ? { lease } : {}) } }
          : { request_delete_range: { key: this.#key(op.key) } },
      ),
    };
    return this.#commits.submit(request);
  }

  madeRevision(revision: number): boolean {
    return this.#made.has(revision);
  }

  #madeNow(revision: number): void {
    if (this.#made.add(revision).size > MADE_REVISIONS_KEPT) this.#made.delete(this.#made.values().next().value!);
  }

  /** One etcd request for one transaction, or for several as nested ones (etcd-batch.ts); a revision the watch delivers in every outcome. */
  async #send(batch: PreparedTxn[]): Promise<TxnResult[]> {
    const fence = { request_put: { key: this.#key(FENCE_KEY), value: Buffer.from('') } };
    if (batch.length === 1) {
      const only = batch[0]!;
      const res = await this.#call(() => this.#client.kv.txn({ compare: only.compare, success: only.puts ? only.success : [...only.success, fence], failure: [fence] }));
      this.#madeNow(Number(res.header.revision) + this.#offset);
      return [{ succeeded: res.succeeded, revision: Number(res.header.revision) + this.#offset }];
    }
    const res = await this.#call(() =>
      this.#client.kv.txn({
        compare: [],
        success: [...batch.map((t) => ({ request_txn: { compare: t.compare, success: t.success, failure: [] } })), fence],
        failure: [],
      }),
    );
    const revision = Number(res.header.revision) + this.#offset;
    this.#madeNow(revision);
    return batch.map((_, i) => ({ succeeded: res.responses[i]!.response_txn.succeeded, revision }));
  }

  async watch(prefix: string, fromRevision: number, onEvents: WatchCallback, options: WatchOptions = {}): Promise<() => void> {
    this.#checkOpen();
    await this.#readOffset();
    await this.#checkRetained(prefix, fromRevision);
    // the keys under the prefix as delivered so far: what a fresh listing is compared with (see #catchUp)
    const keys = new Set(await this.#keysAt(prefix, fromRevision - 1));
    let delivered = fromRevision - 1;
    let active = true;
    let watcher: Watcher | undefined;
    const deliver = (events: WatchEvent[]): void => {
      delivered = events[0]!.revision;
      for (const event of events) {
        if (event.type === 'put') keys.add(event.kv.key);
        else keys.delete(event.key);
      }
      try {
        onEvents(events);
      } catch (err) {
        this.#onCallbackError(err);
      }
    };
    const open = async (from: number): Promise<void> => {
      const builder = this.#client
        .watch()
        .inRange({ start: this.#key(prefix), end: this.#rangeEnd(prefix) })
        .startRevision(String(Math.max(1, from - this.#offset)));
      const next = (options.previousValues === false ? builder : builder.withPreviousKV()).watcher();
      watcher = next;
      next.on('data', (res: { events: RawEvent[] }) => {
        if (!active || watcher !== next) return;
        let batch: WatchEvent[] = [];
        for (const raw of res.events) {
          const event = this.#toEvent(raw);
          // after a reconnect etcd may resend what was already delivered
          if (event.revision <= delivered) continue;
          if (batch.length > 0 && batch[0]!.revision !== event.revision) deliver(batch.splice(0));
          batch.push(event);
        }
        if (batch.length > 0) deliver(batch);
      });
      // The client resumes from its own idea of the revision; ours is exact (see the top of this file).
      next.on('disconnected', () => {
        next.request.start_revision = String(Math.max(1, delivered + 1 - this.#offset));
      });
      let connected = false;
      const created = new Promise<void>((resolve, reject) => {
        next.once('connected', () => {
          connected = true;
          resolve();
        });
        next.once('error', reject);
      });
      next.on('error', (err: unknown) => {
        // a watch that never started is the caller's to report
        if (!active || watcher !== next || !connected) return;
        // Most often the history it resumes from was compacted while it was disconnected: without a new
        // watch the index, and every watch hub on it, would stay as they are without a word.
        this.#onCallbackError(new Error(`the etcd watch on ${this.prefix}${prefix} stopped after revision ${delivered} (${String(err)}); catching up from a fresh listing`));
        void catchUp();
      });
      await created;
    };
    /** Lists the prefix, delivers the difference from what was delivered, and watches on from there. */
    const catchUp = async (): Promise<void> => {
      for (let attempt = 0; active; attempt++) {
        try {
          const before = delivered;
          const { changed, revision } = await this.#catchUp(prefix, keys, delivered);
          for (const events of changed) if (active) deliver(events);
          delivered = Math.max(delivered, revision);
          if (!active) return;
          await open(revision + 1);
          this.#onCallbackError(new Error(`the etcd watch on ${this.prefix}${prefix} caught up from revision ${before} to ${revision} with a fresh listing (${changed.flat().length} keys changed) and follows etcd again`));
          return;
        } catch (err) {
          this.#onCallbackError(new Error(`the etcd watch on ${this.prefix}${prefix} could not catch up yet: ${String(err)}`));
          await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
        }
      }
    };
    const stop = () => {
      if (!active) return;
      active = false;
      this.#stops.delete(stop);
      watcher?.cancel().catch(() => {});
    };
    this.#stops.add(stop);
    try {
      await open(fromRevision);
    } catch (err) {
      stop();
      throw unavailable(err, this.endpoints);
    }
    return stop;
  }

  /** The keys under `prefix` at `revision` (none before the first). */
  async #keysAt(prefix: string, revision: number): Promise<string[]> {
    if (revision - this.#offset < 1) return [];
    const res = await this.#call(() =>
      this.#client.kv.range({ key: this.#key(prefix), range_end: this.#rangeEnd(prefix), revision: String(revision - this.#offset), keys_only: true }),
    );
    return (res.kvs as RawKv[]).map((kv) => this.#strip(kv.key));
  }

  /**
   * What changed under `prefix` after revision `after`, read from a listing rather than from history: a put
   * for every key written since, a delete for every key of `keys` that is gone (its previous value is no
   * longer known: the index keeps its own), grouped by revision in order, the deletes at the listing's.
   */
  async #catchUp(prefix: string, keys: ReadonlySet<string>, after: number): Promise<{ changed: WatchEvent[][]; revision: number }> {
    const { kvs, revision } = await this.list(prefix);
    const present = new Set<string>();
    const events: WatchEvent[] = [];
    for (const kv of kvs) {
      present.add(kv.key);
      if (kv.modRevision > after) events.push({ type: 'put', revision: kv.modRevision, kv });
    }
    for (const key of keys) if (!present.has(key)) events.push({ type: 'delete', revision, key, prevValue: '' });
    events.sort((a, b) => a.revision - b.revision);
    const changed: WatchEvent[][] = [];
    for (const event of events) {
      const last = changed.at(-1);
      if (last && last[0]!.revision === event.revision) last.push(event);
      else changed.push([event]);
    }
    return { changed, revision };
  }

  /**
   * For `vxnet migrate` only, on an empty prefix: from now on every revision reported is at least
   * `atLeast` + 1 (see REVISION_OFFSET_KEY).
   */
  async setRevisionOffset(atLeast: number): Promise<void> {
    const current = await this.revision();
    const offset = Math.max(0, atLeast - current);
    const res = await this.txn([{ key: REVISION_OFFSET_KEY, modRevision: 0 }], [{ type: 'put', key: REVISION_OFFSET_KEY, value: String(offset) }]);
    if (!res.succeeded) throw new Error(`the revision offset of ${this.prefix} is already set.`);
    this.#offset = offset;
  }

  async #readOffset(): Promise<void> {
    this.#offsetRead ??= this.#call(() => this.#client.kv.range({ key: this.#key(REVISION_OFFSET_KEY) })).then(
      (res) => {
        const kv = (res.kvs as RawKv[])[0];
        this.#offset = kv ? Number(kv.value.toString()) : 0;
      },
      (err: unknown) => {
        this.#offsetRead = undefined;
        throw err;
      },
    );
    return this.#offsetRead;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#stops]) stop();
    await this.#session.close();
    this.#client.close();
  }

  /**
   * A watch from a compacted revision is cancelled by etcd after it was created, which the client only
   * reports as an anonymous error; a read at that revision fails the same way up front, with a clear cause.
   */
  async #checkRetained(prefix: string, fromRevision: number): Promise<void> {
    const current = await this.revision();
    if (fromRevision > current) return;
    try {
      await this.#call(() =>
        this.#client.kv.range({ key: this.#key(prefix), range_end: this.#rangeEnd(prefix), revision: String(Math.max(1, fromRevision - this.#offset)), count_only: true }),
      );
    } catch (err) {
      if (/compacted/i.test(String((err as Error).cause ?? err))) throw new CompactedError(fromRevision, fromRevision);
      throw err;
    }
  }

  async #call<T>(request: () => Promise<T>): Promise<T> {
    this.#checkOpen();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs / 1000} s`)), this.#timeoutMs);
    });
    try {
      return await Promise.race([request(), deadline]);
    } catch (err) {
      throw unavailable(err, this.endpoints);
    } finally {
      clearTimeout(timer);
    }
  }

  #key(key: string): Buffer {
    return Buffer.from(this.prefix + key);
  }

  #rangeEnd(prefix: string): Buffer {
    return Buffer.from(prefixEnd(this.prefix + prefix));
  }

  #strip(key: Buffer): string {
    return key.toString().slice(this.prefix.length);
  }

  #toKeyValue(kv: RawKv): KeyValue {
    return {
      key: this.#strip(kv.key),
      value: kv.value.toString(),
      createRevision: Number(kv.create_revision) + this.#offset,
      modRevision: Number(kv.mod_revision) + this.#offset,
      ...(kv.lease !== undefined && kv.lease !== '0' ? { session: true as const } : {}),
    };
  }

  #toEvent(raw: RawEvent): WatchEvent {
    const revision = Number(raw.kv.mod_revision) + this.#offset;
    const prevValue = raw.prev_kv ? raw.prev_kv.value.toString() : undefined;
    if (raw.type === 'Delete') return { type: 'delete', revision, key: this.#strip(raw.kv.key), prevValue: prevValue ?? '' };
    const kv = this.#toKeyValue(raw.kv);
    return prevValue === undefined ? { type: 'put', revision, kv } : { type: 'put', revision, kv, prevValue };
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`the etcd store (${this.endpoints.join(',')}) is closed`);
  }
}
