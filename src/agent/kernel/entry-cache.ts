/**
 * Reusing the last neighbour/FDB dump while the kernel says nothing changed.
 *
 * Why: with 10,000 remote peers, a pass reads 10,000 neighbours and 10,000 FDB entries. iproute2 spends
 * about 25 ms of CPU on each dump (it formats and flushes every entry separately) and parsing adds a few
 * more, so on a 2-core machine the two dumps are most of a pass that has nothing to do (measured 45-80 ms
 * per no-change pass with dumps, against a target of 50 ms).
 *
 * The kernel announces every neighbour and FDB change on the RTNLGRP_NEIGH netlink group, and
 * `ip monitor neigh` prints them (VXLAN FDB changes included, shown as neighbours). So one monitor runs next
 * to the data plane, and while it has printed nothing about an owned VXLAN device since the last dump
 * started, that dump still describes the kernel and is reused. The monitor is only a hint that saves work;
 * the dump stays the source of truth:
 * - the dump is reused only if the monitor was subscribed before the dump started: its socket is listed in
 *   /proc/net/netlink with the neighbour group (no "sleep and hope");
 * - any line about a `vxnv*` device, anything on the monitor's stderr (e.g. "No buffer space available":
 *   events were lost), the monitor exiting, a VXLAN device with a new ifindex (recreated) or our own
 *   writes (marked by the data plane) mean: dump again;
 * - and there is a full dump at least every 30 s regardless.
 */
import { OWNED_PREFIX } from '../dataplane.ts';
import type { Runner, Watch } from './exec.ts';
import { readEntries, type EntryState, type LinkState } from './read.ts';

/** RTNLGRP_NEIGH (linux/rtnetlink.h) as a bit of the Groups column of /proc/net/netlink. */
const NEIGH_GROUP_BIT = 1 << (3 - 1);
const NETLINK_ROUTE = '0';
export const RESYNC_MS = 30_000;
const ARM_ATTEMPTS = 50;
const ARM_INTERVAL_MS = 20;
const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 300_000;

/** Pure: whether /proc/net/netlink lists a NETLINK_ROUTE socket of `pid` subscribed to neighbour events. */
export function isSubscribed(table: string, pid: number): boolean {
  for (const line of table.split('\n').slice(1)) {
    const [, eth, port, groups] = line.trim().split(/\s+/);
    if (eth === NETLINK_ROUTE && port === String(pid) && (parseInt(groups ?? '0', 16) & NEIGH_GROUP_BIT) !== 0) return true;
  }
  return false;
}

const OWNED_VXLAN_EVENT = new RegExp(`\\bdev ${OWNED_PREFIX}v`);

/** Pure: whether a line printed by `ip monitor neigh` concerns an owned VXLAN device. */
export const concernsOwnedVxlan = (line: string): boolean => OWNED_VXLAN_EVENT.test(line);

const vxlanIndexes = (links: ReadonlyMap<string, LinkState>): string =>
  [...links.values()]
    .filter((l) => l.kind === 'vxlan')
    .map((l) => `${l.name}:${l.index}`)
    .sort()
    .join(',');

export interface EntryCacheOptions {
  log?: (line: string) => void;
  now?: () => number;
  resyncMs?: number;
}

export class EntryCache {
  readonly #run: Runner;
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  readonly #resyncMs: number;
  #watch: Watch | undefined;
  #armed = false;
  #dirty = true;
  #retryAt = 0;
  /** consecutive failures to start or keep the monitor: backoff and one log line per streak */
  #failures = 0;
  #cache: { entries: EntryState; at: number; devices?: string } | undefined;
  #closed = false;

  constructor(run: Runner, options: EntryCacheOptions = {}) {
    this.#run = run;
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? Date.now;
    this.#resyncMs = options.resyncMs ?? RESYNC_MS;
  }

  /** Starts the monitor when it is not running (and the runner can watch); waits until it is subscribed. */
  async prepare(): Promise<void> {
    if (this.#closed || !this.#run.watch || this.#watch || this.#now() < this.#retryAt) return;
    this.#dirty = true;
    const watch = this.#run.watch(['ip', 'monitor', 'neigh'], (line, stream) => {
      if (stream === 'stderr' || concernsOwnedVxlan(line)) this.#dirty = true;
    });
    this.#watch = watch;
    this.#armed = false;
    void watch.exited.then((code) => {
      if (this.#watch !== watch) return;
      this.#watch = undefined;
      this.#armed = false;
      this.#dirty = true;
      if (!this.#closed) this.#failed(`ip monitor neigh exited (code ${code})`);
    });
    if (watch.pid !== undefined) {
      for (let i = 0; i < ARM_ATTEMPTS && this.#watch === watch; i++) {
        const table = await this.#run.readFile('/proc/net/netlink');
        if (table !== undefined && isSubscribed(table, watch.pid)) {
          this.#armed = true;
          this.#failures = 0;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, ARM_INTERVAL_MS));
      }
    }
    if (this.#watch === watch) {
      this.#watch = undefined;
      watch.stop();
      this.#failed('ip monitor neigh did not subscribe to neighbour events');
    }
  }

  #failed(what: string): void {
    this.#failures++;
    this.#retryAt = this.#now() + Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.#failures - 1));
    if (this.#failures === 1) this.#log(`${what}: reading all entries on every pass until it works again`);
  }

  /** The last dump, when nothing can have changed since it started. */
  cached(): EntryState | undefined {
    const cache = this.#cache;
    if (!cache || !this.#armed || this.#dirty || this.#now() - cache.at > this.#resyncMs) return undefined;
    return cache.entries;
  }

  /** Dumps the entries; they are kept for later passes if the monitor was listening before the dump began. */
  async dump(signal?: AbortSignal): Promise<EntryState> {
    const armed = this.#armed;
    const at = this.#now();
    this.#dirty = false;
    this.#cache = undefined;
    const entries = await readEntries(this.#run, signal);
    this.#cache = armed ? { entries, at } : undefined;
    return entries;
  }

  /** Ties a fresh dump to the VXLAN devices read in the same pass (their ifindexes). */
  bind(links: ReadonlyMap<string, LinkState>): void {
    if (this.#cache && this.#cache.devices === undefined) this.#cache.devices = vxlanIndexes(links);
  }

  /** Whether a reused dump still belongs to the same devices: one deleted and created again, even empty, voids it. */
  stillValid(links: ReadonlyMap<string, LinkState>): boolean {
    return this.#cache !== undefined && this.#cache.devices === vxlanIndexes(links);
  }

  /** Our own writes: the next pass reads again rather than waiting for their events. */
  invalidate(): void {
    this.#dirty = true;
  }

  /** Stops the monitor and waits until it is gone. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#armed = false;
    this.#cache = undefined;
    const watch = this.#watch;
    this.#watch = undefined;
    if (watch) {
      watch.stop();
      await watch.exited;
    }
  }
}
