/**
 * Liveness shared by several managers on one etcd (vxnet issue 11). An agent heartbeats to one manager only,
 * so without this every other manager would show its node down and never see it confirm a change: a detach
 * through another manager than the agent's waited for a confirmation that could not come (bench/scale with
 * 3 managers: 123 of 298 deletes failed).
 *
 * News, not beats. A manager that hears a node writes `/liveness/<node>` once, as a session key (attached
 * to its etcd lease, store.ts), and the node counts as up on every manager for as long as that key stands;
 * the manager's one lease keep-alive keeps all of its keys, however many nodes it hears. It writes again only
 * when there is news: it hears a node whose key another manager wrote (the agent moved to it) or that has no
 * key (it was dropped, or this manager's lease was lost), or the node passed a revision at which one of its
 * endpoints was deleted (a detach with `wait`, possibly on another manager, waits for exactly that; see
 * service/endpoints.ts). It deletes its key once it has not heard the node for the down-time, comparing the
 * key's revision so that a key another manager wrote since stays. A manager that dies takes its keys with
 * its lease, one lease TTL later (etcd-session.ts); its agents meanwhile heartbeat to another manager, which
 * writes keys of its own.
 *
 * An earlier version wrote each node's sighting once it was a third of the down-time (5 s) newer than the
 * last one told, and every higher revision at once: with a heartbeat every 5 s that is about every other
 * heartbeat at rest (~100 keys a second at 1,000 nodes) and nearly every one under churn, where most
 * heartbeats carry a revision the node passed since — each a key decoded by both watches of every manager.
 *
 * So a manager that does not hear a node knows the revision that node reached only as of its last news; the
 * revisions someone waits for are told at once (within one batch interval). Only the manager that deleted
 * the endpoint waits, so a revision this manager's own store made (Store.madeRevision) is owed to nobody: the
 * node's heartbeat answers the wait here, or, if its agent moved, the manager it moved to tells it, for whom
 * that revision is another's. (Told regardless, it was an etcd write and an event in every manager's two
 * watches per detach, most of them through the manager the agent heartbeats to; bench/scale.) A revision
 * whose answer has not come back yet when the watch delivers it counts as another's: told, as before.
 *
 * Only for a shared store: a single manager on SQLite has nobody to tell.
 *
 * A node's key goes with the node (`vxnet node rm` deletes it in the removal's transaction). A write by a
 * manager whose index had not yet seen the removal would put it back; so a key whose node the index does not
 * hold once it has reached the key's revision is deleted, by whichever manager sees it first (the compares
 * make the others' attempts, and one racing a new registration of the name, change nothing).
 */
import { messageOf } from '../core/errors.ts';
import { keys } from './keys.ts';
import type { Liveness, LivenessTracker } from './liveness.ts';
import type { ClusterState } from './state.ts';
import type { Compare, KeyValue, Op, Store } from './store/store.ts';

export const LIVENESS_PREFIX = '/liveness/';
/** How often news is written; a batch interval with nothing to tell costs nothing. */
export const LIVENESS_BATCH_MS = 250;
/** etcd refuses a transaction of more than 128 operations by default (--max-txn-ops) */
const OPS_PER_TXN = 100;

export interface SharedLivenessOptions {
  /** the down-time of nodes (service.ts): a manager drops its key of a node it has not heard for this long */
  downAfterMs: number;
  batchMs?: number;
  log: (line: string) => void;
}

/** What this needs of the manager's index: which nodes exist, as of which revision, and what changes. */
type NodeIndex = Pick<ClusterState, 'nodes' | 'revision' | 'waitFor' | 'subscribe'>;

/** A node's key as last delivered by the watch. */
interface SharedKey {
  modRevision: number;
  reconciledRevision: number;
}

/** Loads what the other managers report, follows it, and tells them this one's news. Resolves to the stop function. */
export async function shareLiveness(store: Store, tracker: LivenessTracker, index: NodeIndex, options: SharedLivenessOptions): Promise<() => void> {
  let stopped = false;
  const shared = new Map<string, SharedKey>();
  /** the keys this manager wrote: node → the revision of its write */
  const mine = new Map<string, number>();
  /** node → the latest revision at which one of its endpoints was deleted (someone may wait for the node to pass it) */
  const awaited = new Map<string, number>();
  /** nodes this manager holds the key of whose revision reached an awaited one after it was heard */
  const passed = new Set<string>();

  /** Deletes the key of `node` written at `revision` if the index, once there, holds no such node. */
  const dropIfOrphan = (node: string, revision: number) => {
    if (index.revision >= revision && index.nodes.has(node)) return; // the common case, decided at once
    index
      .waitFor(revision)
      .then(async () => {
        if (stopped || index.nodes.has(node)) return;
        forget(node);
        await store.txn(
          [
            { key: keys.node(node), modRevision: 0 },
            { key: LIVENESS_PREFIX + node, modRevision: revision },
          ],
          [{ type: 'delete', key: LIVENESS_PREFIX + node }],
        );
      })
      .catch((err: unknown) => {
        if (!stopped) options.log(`the shared liveness of removed node ${node} could not be deleted: ${messageOf(err)}`);
      });
  };
  const forget = (node: string) => {
    tracker.forget(node);
    mine.delete(node);
    awaited.delete(node);
    passed.delete(node);
  };
  const put = ({ key, value, modRevision, session }: KeyValue) => {
    const node = key.slice(LIVENESS_PREFIX.length);
    dropIfOrphan(node, modRevision);
    let parsed: Liveness;
    try {
      const value_ = JSON.parse(value) as { lastSeen?: unknown; reconciledRevision?: unknown };
      if (typeof value_.lastSeen !== 'number' || !Number.isSafeInteger(value_.reconciledRevision)) return;
      parsed = { lastSeen: value_.lastSeen, reconciledRevision: value_.reconciledRevision as number };
    } catch {
      return; // a value no manager of this version writes: ignored, the node's own manager still knows it
    }
    shared.set(node, { modRevision, reconciledRevision: parsed.reconciledRevision });
    const wanted = awaited.get(node);
    if (wanted !== undefined && parsed.reconciledRevision >= wanted) awaited.delete(node);
    const own = mine.get(node);
    if (own !== undefined && modRevision <= own) {
      // this manager's own write (or an older one of it) coming back: the node is up through its own sightings
      if (modRevision === own) tracker.release(node);
      return;
    }
    mine.delete(node); // another manager took the node over, or wrote it first
    // A key without a lease (written by a manager of an earlier version) would stand for ever: it counts by
    // its sighting only, as it did then.
    tracker.merge(node, parsed, session === true);
  };
  const gone = (key: string) => {
    const node = key.slice(LIVENESS_PREFIX.length);
    shared.delete(node);
    mine.delete(node);
    tracker.release(node);
  };
  const listed = await store.list(LIVENESS_PREFIX);
  for (const kv of listed.kvs) put(kv);
  const unwatch = await store.watch(
    LIVENESS_PREFIX,
    listed.revision + 1,
    (events) => {
      for (const event of events) {
        if (event.type === 'put') put(event.kv);
        else gone(event.key);
      }
    },
    { previousValues: false },
  );
  const unsubscribe = index.subscribe((change) => {
    if (change.kind === 'node-deleted') forget(change.node.name);
    if (change.kind !== 'endpoint-deleted') return;
    if (store.madeRevision?.(change.revision) === true) return; // waited for here, if at all: see the top of this file
    const node = change.endpoint.node;
    awaited.set(node, Math.max(awaited.get(node) ?? 0, change.revision));
    // the node's heartbeat may have come before this manager's index saw the delete
    if (mine.has(node) && (tracker.entry(node)?.reconciledRevision ?? 0) >= change.revision) passed.add(node);
  });

  /** Whether the others lack a revision of `node` that someone may wait for. */
  const owed = (node: string, entry: Liveness) => {
    const wanted = awaited.get(node);
    return wanted !== undefined && entry.reconciledRevision >= wanted && (shared.get(node)?.reconciledRevision ?? 0) < wanted;
  };
  let failing = false;
  let writing = false;
  const publish = async () => {
    if (writing) return; // a slow store: the next batch carries what this one would have
    writing = true;
    const heard = new Set(tracker.takeHeard());
    const news: [string, Liveness][] = [];
    for (const node of new Set([...heard, ...passed])) {
      const entry = tracker.entry(node);
      // a node this index no longer holds was removed: its key is gone, and must stay so
      if (!entry || !index.nodes.has(node)) continue;
      const held = mine.has(node) && mine.get(node) === shared.get(node)?.modRevision;
      if ((heard.has(node) && !held) || owed(node, entry)) news.push([node, { ...entry }]);
    }
    passed.clear();
    // the keys of nodes this manager no longer hears; a key rewritten since (another manager) stays
    const quiet = [...mine].filter(([node, revision]) => shared.get(node)?.modRevision === revision && !tracker.hears(node));
    let written = 0;
    try {
      for (; written < news.length; written += OPS_PER_TXN) {
        const slice = news.slice(written, written + OPS_PER_TXN);
        const ops: Op[] = slice.map(([node, entry]) => ({
          type: 'put',
          key: LIVENESS_PREFIX + node,
          value: JSON.stringify({ lastSeen: entry.lastSeen, reconciledRevision: entry.reconciledRevision }),
          session: true,
        }));
        const { revision } = await store.txn([], ops);
        for (const [node] of slice) {
          mine.set(node, revision);
          // the watch may have delivered the write before the answer came
          if (shared.get(node)?.modRevision === revision) tracker.release(node);
        }
      }
      await Promise.all(
        quiet.map(async ([node, revision]) => {
          const compare: Compare = { key: LIVENESS_PREFIX + node, modRevision: revision };
          await store.txn([compare], [{ type: 'delete', key: compare.key }]);
          if (mine.get(node) === revision) mine.delete(node);
        }),
      );
      if (failing) options.log('sharing node liveness with the other managers works again');
      failing = false;
    } catch (err) {
      tracker.heardAgain(news.slice(written).map(([node]) => node));
      if (!failing) options.log(`sharing node liveness with the other managers failed: ${messageOf(err)}`);
      failing = true;
    } finally {
      writing = false;
    }
  };
  const timer = setInterval(() => void publish(), options.batchMs ?? LIVENESS_BATCH_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    unwatch();
    unsubscribe();
  };
}
