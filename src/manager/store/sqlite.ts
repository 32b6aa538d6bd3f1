/**
 * SQLite implementation of the Store contract, for a single manager.
 *
 * Durability: WAL journal with synchronous=FULL, so a transaction is fsynced before txn() resolves and an
 * acknowledged write survives kill -9 or power loss. The database is opened with an exclusive lock: a
 * second manager on the same DATA_DIR fails at start instead of silently missing the first one's watch
 * events (watches are delivered in-process).
 *
 * Layout: `kv` holds the current value of each key; `events` is an append-only log of every change (one
 * row per changed key, many rows may share a revision) that backs watch replay. The log is compacted to the
 * last `retainRevisions` revisions; `meta` keeps the current and the compacted revision, so the revision
 * never goes backwards even when the newest keys are deleted.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
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
  prefixEnd,
} from './store.ts';

export interface SqliteStoreOptions {
  /** how many revisions of watch history to keep (default 100 000) */
  retainRevisions?: number;
  /** compaction runs every this many revisions (default 1000) */
  compactEvery?: number;
  /** where exceptions thrown by watch callbacks are reported (default console.error) */
  onCallbackError?: (err: unknown) => void;
}

interface Watcher {
  prefix: string;
  active: boolean;
  onEvents: WatchCallback;
}

interface KvRow {
  key: string;
  value: string;
  create_revision: number;
  mod_revision: number;
}

interface EventRow {
  revision: number;
  type: string;
  key: string;
  value: string | null;
  prev_value: string | null;
  create_revision: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
  revision INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  prev_value TEXT,
  create_revision INTEGER NOT NULL,
  PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
`;

export class SqliteStore implements Store {
  readonly path: string;
  #db: DatabaseSync;
  #revision: number;
  #compacted: number;
  #retain: number;
  #compactEvery: number;
  #onCallbackError: (err: unknown) => void;
  #watchers = new Set<Watcher>();
  /** deliveries waiting to run, in revision order; drained by one loop so callbacks never reorder */
  #queue: { watcher: Watcher; events: WatchEvent[] }[] = [];
  #delivering = false;
  #closed = false;
  /** transactions waiting for the next group commit */
  #pending: { compares: Compare[]; ops: Op[]; resolve: (result: TxnResult) => void; reject: (err: unknown) => void }[] = [];
  #stmt: {
    get: StatementSync;
    modRevision: StatementSync;
    listAll: StatementSync;
    listRange: StatementSync;
    upsert: StatementSync;
    del: StatementSync;
    event: StatementSync;
    setMeta: StatementSync;
    historyAll: StatementSync;
    historyRange: StatementSync;
    compact: StatementSync;
  };

  /** Opens (creating if needed) the database at `path`, e.g. DATA_DIR/vxnet.db. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    this.#retain = options.retainRevisions ?? 100_000;
    this.#compactEvery = options.compactEvery ?? 1000;
    this.#onCallbackError = options.onCallbackError ?? ((err) => console.error('vxnet store: watch callback failed:', err));
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#db = new DatabaseSync(path, { timeout: 0 });
    try {
      this.#db.exec('PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;');
      this.#db.exec(SCHEMA);
    } catch (err) {
      this.#db.close();
      if (/locked|busy/i.test(String((err as Error).message))) {
        throw new Error(`store ${path} is in use by another process (is another manager running on this data directory?)`, { cause: err });
      }
      throw err;
    }
    const db = this.#db;
    this.#stmt = {
      get: db.prepare('SELECT key, value, create_revision, mod_revision FROM kv WHERE key = ?'),
      modRevision: db.prepare('SELECT mod_revision, create_revision, value FROM kv WHERE key = ?'),
      listAll: db.prepare('SELECT key, value, create_revision, mod_revision FROM kv ORDER BY key'),
      listRange: db.prepare('SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
      upsert: db.prepare(
        'INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision',
      ),
      del: db.prepare('DELETE FROM kv WHERE key = ?'),
      event: db.prepare(
        'INSERT INTO events (revision, seq, type, key, value, prev_value, create_revision) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
      historyAll: db.prepare(
        'SELECT revision, type, key, value, prev_value, create_revision FROM events WHERE revision >= ? ORDER BY revision, seq',
      ),
      historyRange: db.prepare(
        'SELECT revision, type, key, value, prev_value, create_revision FROM events ' +
          'WHERE revision >= ? AND key >= ? AND key < ? ORDER BY revision, seq',
      ),
      compact: db.prepare('DELETE FROM events WHERE revision <= ?'),
    };
    const meta = db.prepare('SELECT name, value FROM meta').all() as unknown as { name: string; value: number }[];
    this.#revision = Number(meta.find((m) => m.name === 'revision')?.value ?? 0);
    this.#compacted = Number(meta.find((m) => m.name === 'compacted')?.value ?? 0);
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.#checkOpen();
    const row = this.#stmt.get.get(key) as unknown as KvRow | undefined;
    return row ? toKeyValue(row) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    this.#checkOpen();
    const rows = (prefix === '' ? this.#stmt.listAll.all() : this.#stmt.listRange.all(prefix, prefixEnd(prefix))) as unknown as KvRow[];
    return { kvs: rows.map(toKeyValue), revision: this.#revision };
  }

  async revision(): Promise<number> {
    this.#checkOpen();
    return this.#revision;
  }

  /**
   * Group commit: transactions are queued and run at the next turn of the event loop, all of those queued
   * together inside one SQLite transaction, each in a savepoint of its own. Each keeps its own compares, its
   * own revision and its all-or-nothing effect, exactly as if run alone one after the other; they only share
   * the fsync. None is answered (or delivered to watchers) before that fsync, so an acknowledged write still
   * survives kill -9. Why (bench/scale): with a thousand agents reporting endpoint status at once, one fsync
   * per write blocked the event loop for most of the time and the manager answered a few hundred writes a
   * second; now a burst of writes costs one fsync.
   */
  txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    try {
      this.#checkOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<TxnResult>((resolve, reject) => {
      this.#pending.push({ compares, ops, resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#commitPending());
    });
  }

  #commitPending(): void {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    if (this.#closed) {
      for (const t of batch) t.reject(new Error(`store ${this.path} is closed`));
      return;
    }
    const db = this.#db;
    const outcomes: ({ result: TxnResult; events: WatchEvent[] } | { error: unknown })[] = [];
    let revision = this.#revision;
    let compacted = this.#compacted;
    try {
      db.exec('BEGIN IMMEDIATE');
      for (const t of batch) {
        db.exec('SAVEPOINT txn');
        let outcome: { result: TxnResult; events: WatchEvent[] } | { error: unknown };
        try {
          const events = this.#apply(t.compares, t.ops, revision + 1);
          if (events === undefined) outcome = { result: { succeeded: false, revision }, events: [] };
          // nothing changed (e.g. deletes of absent keys): like etcd, the revision stays where it is
          else if (events.length === 0) outcome = { result: { succeeded: true, revision }, events };
          else {
            revision++;
            if (revision % this.#compactEvery === 0 && revision - this.#retain > compacted) {
              compacted = revision - this.#retain;
              this.#stmt.compact.run(compacted);
              this.#stmt.setMeta.run(compacted, 'compacted');
            }
            outcome = { result: { succeeded: true, revision }, events };
          }
        } catch (err) {
          outcome = { error: err };
        }
        if ('error' in outcome || outcome.events.length === 0) db.exec('ROLLBACK TO txn');
        db.exec('RELEASE txn');
        outcomes.push(outcome);
      }
      if (revision !== this.#revision) this.#stmt.setMeta.run(revision, 'revision');
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      for (const t of batch) t.reject(err);
      return;
    }
    this.#revision = revision;
    this.#compacted = compacted;
    for (const outcome of outcomes) {
      if ('error' in outcome || outcome.events.length === 0) continue;
      for (const watcher of this.#watchers) {
        const mine = outcome.events.filter((e) => keyOf(e).startsWith(watcher.prefix));
        if (mine.length > 0) this.#queue.push({ watcher, events: mine });
      }
    }
    this.#drain();
    batch.forEach((t, i) => {
      const outcome = outcomes[i]!;
      if ('error' in outcome) t.reject(outcome.error);
      else t.resolve(outcome.result);
    });
  }

  /** One transaction's compares and ops at `revision`, inside the open SQLite transaction; undefined when a compare fails. */
  #apply(compares: Compare[], ops: Op[], revision: number): WatchEvent[] | undefined {
    for (const c of compares) {
      const row = this.#stmt.modRevision.get(c.key) as unknown as { mod_revision: number } | undefined;
      if ((row ? Number(row.mod_revision) : 0) !== c.modRevision) return undefined;
    }
    const events: WatchEvent[] = [];
    let seq = 0;
    for (const op of ops) {
      const row = this.#stmt.modRevision.get(op.key) as unknown as
        | { mod_revision: number; create_revision: number; value: string }
        | undefined;
      if (op.type === 'put') {
        const createRevision = row ? Number(row.create_revision) : revision;
        this.#stmt.upsert.run(op.key, op.value, createRevision, revision);
        this.#stmt.event.run(revision, seq++, 'put', op.key, op.value, row ? row.value : null, createRevision);
        const kv: KeyValue = { key: op.key, value: op.value, createRevision, modRevision: revision };
        events.push(row ? { type: 'put', revision, kv, prevValue: row.value } : { type: 'put', revision, kv });
      } else if (row) {
        this.#stmt.del.run(op.key);
        this.#stmt.event.run(revision, seq++, 'delete', op.key, null, row.value, Number(row.create_revision));
        events.push({ type: 'delete', revision, key: op.key, prevValue: row.value });
      }
    }
    return events;
  }

  async watch(prefix: string, fromRevision: number, onEvents: WatchCallback): Promise<() => void> {
    this.#checkOpen();
    if (fromRevision <= this.#compacted) throw new CompactedError(fromRevision, this.#compacted);
    const watcher: Watcher = { prefix, active: true, onEvents };
    // History and registration happen in one synchronous step, so no change can fall between them.
    if (fromRevision <= this.#revision) {
      const rows = (
        prefix === ''
          ? this.#stmt.historyAll.all(fromRevision)
          : this.#stmt.historyRange.all(fromRevision, prefix, prefixEnd(prefix))
      ) as unknown as EventRow[];
      let batch: WatchEvent[] = [];
      for (const row of rows) {
        const event = toEvent(row);
        if (batch.length > 0 && batch[0]!.revision !== event.revision) {
          this.#queue.push({ watcher, events: batch });
          batch = [];
        }
        batch.push(event);
      }
      if (batch.length > 0) this.#queue.push({ watcher, events: batch });
    }
    this.#watchers.add(watcher);
    this.#drain();
    return () => {
      watcher.active = false;
      this.#watchers.delete(watcher);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pending = this.#pending;
    this.#pending = [];
    for (const t of pending) t.reject(new Error(`store ${this.path} is closed`));
    for (const w of this.#watchers) w.active = false;
    this.#watchers.clear();
    this.#queue = [];
    this.#db.close();
  }

  #drain(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      // A callback may write again; its events are queued behind the ones already waiting.
      for (let i = 0; i < this.#queue.length; i++) {
        const item = this.#queue[i]!;
        if (!item.watcher.active) continue;
        try {
          item.watcher.onEvents(item.events);
        } catch (err) {
          this.#onCallbackError(err);
        }
      }
      this.#queue = [];
    } finally {
      this.#delivering = false;
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`store ${this.path} is closed`);
  }
}

function keyOf(event: WatchEvent): string {
  return event.type === 'put' ? event.kv.key : event.key;
}

function toKeyValue(row: KvRow): KeyValue {
  return {
    key: row.key,
    value: row.value,
    createRevision: Number(row.create_revision),
    modRevision: Number(row.mod_revision),
  };
}

function toEvent(row: EventRow): WatchEvent {
  const revision = Number(row.revision);
  if (row.type === 'put') {
    const kv: KeyValue = { key: row.key, value: row.value ?? '', createRevision: Number(row.create_revision), modRevision: revision };
    return row.prev_value === null ? { type: 'put', revision, kv } : { type: 'put', revision, kv, prevValue: row.prev_value };
  }
  return { type: 'delete', revision, key: row.key, prevValue: row.prev_value ?? '' };
}
