/**
 * The one compare-and-swap loop of the service. Every write is decided against the in-memory index and
 * committed with compares that re-check, in the store, each fact the decision relied on. If another
 * request (or another manager) changed one of them first, the transaction fails, the index has caught up
 * by the time `commit` returns, and the request is decided again from the fresh view, possibly now ending
 * in a proper error such as address_in_use. Every failure means some other writer made progress, so the
 * loop only gives up after many attempts.
 */
import { VxnetError } from '../../core/errors.ts';
import type { Compare, Op } from '../store/store.ts';
import type { ServiceContext } from './context.ts';

/** Attempts at a compare-and-swap before giving up; each failure means another writer made progress. */
const MAX_ATTEMPTS = 200;

/** What one attempt decided from the current index. */
export type Decision<T> =
  /** nothing to write: the answer is known already */
  | { done: T }
  | {
      compares: Compare[];
      ops: Op[];
      /** the answer once the transaction succeeded (the index reflects it by then) */
      then: (revision: number) => T;
      /** undoes what deciding held in memory (an address picked but not yet stored); runs after every commit */
      release?: () => void;
    };

/**
 * Decides and commits until a transaction succeeds. `decide` reads the index afresh on every attempt and
 * throws the request's error when the index says it cannot succeed. `what` completes "could not ...".
 */
export async function casRetry<T>(ctx: ServiceContext, what: string, decide: () => Decision<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const decision = decide();
    if ('done' in decision) return decision.done;
    try {
      const revision = await commit(ctx, decision.compares, decision.ops);
      if (revision !== undefined) return decision.then(revision);
    } finally {
      decision.release?.();
    }
    await backoff(attempt, what);
  }
}

/** Runs a transaction and waits until the index reflects its outcome; the new revision, or undefined. */
export async function commit(ctx: ServiceContext, compares: Compare[], ops: Op[]): Promise<number | undefined> {
  if (ctx.closing.aborted) throw new VxnetError('internal', 'the manager is shutting down.');
  const result = await ctx.store.txn(compares, ops);
  await ctx.state.waitFor(result.revision);
  return result.succeeded ? result.revision : undefined;
}

async function backoff(attempt: number, what: string): Promise<void> {
  if (attempt + 1 >= MAX_ATTEMPTS) {
    throw new VxnetError('internal', `could not ${what}: the store kept changing underneath (${MAX_ATTEMPTS} attempts).`);
  }
  // The index is current again; only under heavy contention is a short random pause worth it.
  if (attempt >= 3) await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 2 ** attempt)));
}
