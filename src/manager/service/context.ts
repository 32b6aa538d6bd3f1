/**
 * What every resource module of the service works with, passed in explicitly: the store, the in-memory
 * index of it, node liveness, and the manager's clock, log and shutdown signal. The ManagerService facade
 * (../service.ts) builds one and hands it to networks.ts, nodes.ts, endpoints.ts and reservations.ts.
 */
import type { LivenessTracker } from '../liveness.ts';
import type { ClusterState } from '../state.ts';
import type { Store } from '../store/store.ts';
import type { Waiters } from './wait.ts';

export interface ServiceContext {
  readonly store: Store;
  readonly state: ClusterState;
  readonly liveness: LivenessTracker;
  /** aborted by ManagerService.close(): commits refuse and waits in progress end */
  readonly closing: AbortSignal;
  /** create-with-wait callers, keyed by endpoint id, told of every change to their endpoint */
  readonly endpointWaiters: Waiters;
  /** addresses a node may hold on one network when it asks with its certificate (service/quota.ts) */
  readonly maxAddressesPerNode: number;
  /** milliseconds since the epoch */
  now(): number;
  log(line: string): void;
}

export function isoNow(ctx: ServiceContext): string {
  return new Date(ctx.now()).toISOString();
}
