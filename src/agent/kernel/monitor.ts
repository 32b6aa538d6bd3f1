/**
 * A kernel event monitor (`ip monitor neigh`, `nft monitor`) kept running next to the data plane, for the
 * caches that reuse a dump while the kernel reports nothing new (entry-cache.ts, table-cache.ts).
 *
 * A monitor only vouches for a dump once the kernel lists its netlink socket with the right multicast group
 * in /proc/net/netlink ("armed"): events before that moment may be lost, so nothing is assumed from
 * sleeping a while. A monitor that cannot start, exits or does not subscribe in time is retried with a
 * growing pause (5 s up to 5 min), logged once per streak of failures; meanwhile the caches read every pass.
 */
import type { Runner, Watch } from './exec.ts';

const ARM_ATTEMPTS = 50;
const ARM_INTERVAL_MS = 20;
const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 300_000;

/** Which netlink socket a monitor opens and which multicast group it must join (linux/netlink.h, rtnetlink.h, nfnetlink.h). */
export interface Subscription {
  /** the Eth column of /proc/net/netlink: 0 NETLINK_ROUTE, 12 NETLINK_NETFILTER */
  protocol: number;
  /** the group number (RTNLGRP_NEIGH 3, NFNLGRP_NFTABLES 7) */
  group: number;
}

export const NEIGHBOUR_EVENTS: Subscription = { protocol: 0, group: 3 };
export const NFTABLES_EVENTS: Subscription = { protocol: 12, group: 7 };

/** Pure: whether /proc/net/netlink lists a socket of `pid` on the subscription's protocol with its group. */
export function isSubscribed(table: string, pid: number, subscription: Subscription = NEIGHBOUR_EVENTS): boolean {
  const bit = 1 << (subscription.group - 1);
  for (const line of table.split('\n').slice(1)) {
    const [, eth, port, groups] = line.trim().split(/\s+/);
    if (eth === String(subscription.protocol) && port === String(pid) && (parseInt(groups ?? '0', 16) & bit) !== 0) return true;
  }
  return false;
}

export interface KernelMonitorOptions {
  argv: readonly string[];
  subscription: Subscription;
  /** every line the monitor prints */
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  /** a new monitor process is starting: whatever the previous one vouched for is void */
  onStart: () => void;
  /** what a cache does meanwhile, for the log line, e.g. "reading all entries on every pass" */
  fallback: string;
  log?: (line: string) => void;
  now?: () => number;
}

export class KernelMonitor {
  readonly #run: Runner;
  readonly #options: KernelMonitorOptions;
  readonly #name: string;
  readonly #now: () => number;
  #watch: Watch | undefined;
  #armed = false;
  #retryAt = 0;
  /** consecutive failures to start or keep the monitor: backoff and one log line per streak */
  #failures = 0;
  #closed = false;

  constructor(run: Runner, options: KernelMonitorOptions) {
    this.#run = run;
    this.#options = options;
    this.#name = options.argv.join(' ');
    this.#now = options.now ?? Date.now;
  }

  /** Subscribed and running: events are not being missed. */
  get armed(): boolean {
    return this.#armed;
  }

  /** Starts the monitor when it is not running (and the runner can watch); waits until it is subscribed. */
  async prepare(): Promise<void> {
    if (this.#closed || !this.#run.watch || this.#watch || this.#now() < this.#retryAt) return;
    this.#options.onStart();
    const watch = this.#run.watch(this.#options.argv, this.#options.onLine);
    this.#watch = watch;
    this.#armed = false;
    void watch.exited.then((code) => {
      if (this.#watch !== watch) return;
      this.#watch = undefined;
      this.#armed = false;
      if (!this.#closed) this.#failed(`${this.#name} exited (code ${code})`);
    });
    if (watch.pid !== undefined) {
      for (let i = 0; i < ARM_ATTEMPTS && this.#watch === watch; i++) {
        const table = await this.#run.readFile('/proc/net/netlink');
        if (table !== undefined && isSubscribed(table, watch.pid, this.#options.subscription)) {
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
      this.#failed(`${this.#name} did not subscribe to its events`);
    }
  }

  #failed(what: string): void {
    this.#failures++;
    this.#retryAt = this.#now() + Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.#failures - 1));
    if (this.#failures === 1) this.#options.log?.(`${what}: ${this.#options.fallback} until it works again`);
  }

  /**
   * Stops the monitor for now, without counting it as a failure: the next prepare() starts a new one. For a
   * write of our own so large that reading its events would cost more than reading the result back.
   */
  pause(): void {
    const watch = this.#watch;
    if (!watch) return;
    this.#watch = undefined;
    this.#armed = false;
    watch.stop();
  }

  /** Stops the monitor and waits until it is gone (at most CLOSE_WAIT_MS). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#armed = false;
    const watch = this.#watch;
    this.#watch = undefined;
    if (watch) {
      watch.stop();
      // The monitor is unref'd so that it never keeps its process alive; while waiting for it to go, this
      // timer does (a caller's top-level await would otherwise see the event loop run dry: exit code 13).
      let hold: NodeJS.Timeout | undefined;
      await Promise.race([watch.exited, new Promise((resolve) => (hold = setTimeout(resolve, CLOSE_WAIT_MS)))]);
      clearTimeout(hold);
    }
  }
}

/** How long close() waits for the monitor to exit after SIGTERM. */
const CLOSE_WAIT_MS = 2_000;
