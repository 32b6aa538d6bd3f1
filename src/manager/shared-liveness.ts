/**
 * Liveness shared by several managers on one etcd (vxnet issue 11). An agent heartbeats to one manager only,
 * so without this every other manager would show its node down and never see it confirm a change: a detach
 * through another manager than the agent's waited for a confirmation that could not come (bench/scale with
 * 3 managers: 123 of 298 deletes failed).
 *
 * Each manager writes what it heard, in batches, under `/liveness/<node>`, and follows that prefix for what
 * the others heard (LivenessTracker.merge). A batch per second at most, and per node only a higher revision
 * or a sighting a third of the down-time newer than the last one told: at 1,000 nodes heartbeating every
 * 5 s that is ~200 keys per second in a few transactions, instead of one write per heartbeat. A confirmation
 * through another manager thus takes up to one batch interval longer.
 *
 * Sightings are the writing manager's wall-clock times, compared with the reader's: managers' clocks are
 * expected to agree far better than the down-time (15 s by default), as NTP keeps them.
 *
 * Only for a shared store: a single manager on SQLite has nobody to tell, and each batch would cost a
 * revision and an fsync.
 *
 * A node's key goes with the node (`vxnet node rm` deletes it in the removal's transaction). A batch written
 * by a manager whose index had not yet seen the removal would put it back; so a key whose node the index
 * does not hold once it has reached the key's revision is deleted, by whichever manager sees it first (the
 * compares make the others' attempts, and one racing a new registration of the name, change nothing).
 */
import { messageOf } from '../core/errors.ts';
import { keys } from './keys.ts';
import type { LivenessTracker } from './liveness.ts';
import type { ClusterState } from './state.ts';
import type { Op, Store } from './store/store.ts';

export const LIVENESS_PREFIX = '/liveness/';
export const LIVENESS_BATCH_MS = 1000;
/** etcd refuses a transaction of more than 128 operations by default (--max-txn-ops) */
const OPS_PER_TXN = 100;

export interface SharedLivenessOptions {
  /** the down-time of nodes (service.ts): a sighting is told again once a third of it newer */
  downAfterMs: number;
  batchMs?: number;
  log: (line: string) => void;
}

/** What this needs of the manager's index: which nodes exist, as of which revision. */
type NodeIndex = Pick<ClusterState, 'nodes' | 'revision' | 'waitFor' | 'subscribe'>;

/** Loads what the other managers heard, follows it, and tells them what this one hears. Resolves to the stop function. */
export async function shareLiveness(store: Store, tracker: LivenessTracker, index: NodeIndex, options: SharedLivenessOptions): Promise<() => void> {
  let stopped = false;
  /** Deletes the key of `node` written at `revision` if the index, once there, holds no such node. */
  const dropIfOrphan = (node: string, revision: number) => {
    if (index.revision >= revision && index.nodes.has(node)) return; // the common case, decided at once
    index
      .waitFor(revision)
      .then(async () => {
        if (stopped || index.nodes.has(node)) return;
        tracker.forget(node);
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
  const heard = (key: string, value: string, revision: number) => {
    const node = key.slice(LIVENESS_PREFIX.length);
    dropIfOrphan(node, revision);
    try {
      const parsed = JSON.parse(value) as { lastSeen?: unknown; reconciledRevision?: unknown };
      if (typeof parsed.lastSeen === 'number' && Number.isSafeInteger(parsed.reconciledRevision)) {
        tracker.merge(node, { lastSeen: parsed.lastSeen, reconciledRevision: parsed.reconciledRevision as number });
      }
    } catch {
      // a value no manager of this version writes: ignored, the node's own manager still knows it
    }
  };
  const listed = await store.list(LIVENESS_PREFIX);
  for (const kv of listed.kvs) heard(kv.key, kv.value, kv.modRevision);
  const unwatch = await store.watch(LIVENESS_PREFIX, listed.revision + 1, (events) => {
    for (const event of events) if (event.type === 'put') heard(event.kv.key, event.kv.value, event.kv.modRevision);
  });
  const unsubscribe = index.subscribe((change) => {
    if (change.kind === 'node-deleted') tracker.forget(change.node.name);
  });

  let failing = false;
  let writing = false;
  const publish = async () => {
    if (writing) return; // a slow store: the next batch carries what this one would have
    writing = true;
    // a node this index no longer holds was removed: its key is gone, and must stay so
    const news = tracker.unpublished(options.downAfterMs / 3).filter(([node]) => index.nodes.has(node));
    let written = 0;
    try {
      for (; written < news.length; written += OPS_PER_TXN) {
        const ops: Op[] = news.slice(written, written + OPS_PER_TXN).map(([node, entry]) => ({
          type: 'put',
          key: LIVENESS_PREFIX + node,
          value: JSON.stringify({ lastSeen: entry.lastSeen, reconciledRevision: entry.reconciledRevision }),
        }));
        await store.txn([], ops);
      }
      if (failing) options.log('sharing node liveness with the other managers works again');
      failing = false;
    } catch (err) {
      tracker.untold(news.slice(written).map(([node]) => node));
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
