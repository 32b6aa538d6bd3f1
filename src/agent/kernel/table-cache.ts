/**
 * Reusing the last read of vxnet's two nftables tables (ip vxnet: the firewall and VXLAN peer filter;
 * bridge vxnet: anti-spoofing) while nobody but vxnet changes them.
 *
 * Why: every pass read both tables, two `nft -j list table` processes (each loads libnftables and fetches
 * a ruleset cache from the kernel) on the path of every attach: on this 2-core machine the slowest of a
 * pass's parallel reads, although vxnet is the tables' only writer.
 *
 * How: `nft monitor` prints every committed ruleset transaction as its changes followed by
 * `# new generation N by process PID (COMM)`. While that monitor is armed (monitor.ts), the kept state is
 * reused unless, since it was read:
 * - a transaction that touched table ip vxnet or bridge vxnet came from a process that is not one of our
 *   own `nft -f` runs (judged when the state is next wanted, by which time our writes have told us their
 *   pid: the kernel's event can reach us before our own nft process is seen to exit);
 * - the monitor wrote to stderr (e.g. lost events), exited or restarted;
 * - one of our writes failed or could not be attributed (no pid), or an unexpected error hit the pass;
 * - 30 s have passed (a full read at least that often regardless, as for the entries).
 * After our own successful transaction the kept state becomes what it installed (write-through), so the
 * next attach reads nothing. A foreign transaction also asks for a pass (`onForeignChange`), so that a
 * `flush ruleset` by a firewall reload is repaired within moments, not at the next 30 s pass. The monitor is a hint that saves work; a read stays the source of truth, and a
 * write built on a wrong kept state fails (an element of a set that is gone) and voids it.
 */
import { OWNED_NFT_TABLE } from '../dataplane.ts';
import type { Runner } from './exec.ts';
import { KernelMonitor, NFTABLES_EVENTS } from './monitor.ts';
import type { TablesState } from './read.ts';
import { UNDERLAY6_TABLE } from './underlay6.ts';

export const TABLES_RESYNC_MS = 30_000;
/** how many of our own recent nft processes are remembered for attributing the monitor's generations */
const OWN_PIDS = 64;

// table ip6 vxnet_underlay (underlay6.ts) is ours too: the VXLAN filter over an IPv6 underlay
const OWNED_TABLE_EVENT = new RegExp(`^\\S+ \\S+ ((ip|ip6|bridge) ${OWNED_NFT_TABLE}|ip6 ${UNDERLAY6_TABLE})( |$)`);
const GENERATION = /^# new generation \d+ by process (\d+)\b/;

/** Pure: whether a line printed by `nft monitor` is a change to table ip vxnet or bridge vxnet. */
export const concernsOwnedTables = (line: string): boolean => OWNED_TABLE_EVENT.test(line);

/** Pure: the pid of a `# new generation N by process PID (COMM)` line, -1 when it names none; undefined for other lines. */
export function generationPid(line: string): number | undefined {
  if (!line.startsWith('# new generation')) return undefined;
  const match = GENERATION.exec(line);
  return match ? Number(match[1]) : -1;
}

export interface TableCacheOptions {
  log?: (line: string) => void;
  now?: () => number;
  resyncMs?: number;
  /**
   * Somebody else changed a table (checked FOREIGN_CHECK_MS after the transaction, once our own writes have
   * told their pids): the data plane runs a pass to repair it rather than waiting for the next one.
   */
  onForeignChange?: () => void;
}

/** How long after a transaction on our tables it is judged (our own nft is seen to exit well within it). */
export const FOREIGN_CHECK_MS = 250;

export class TableCache {
  readonly #now: () => number;
  readonly #resyncMs: number;
  readonly #monitor: KernelMonitor;
  #kept: { state: TablesState; readAt: number } | undefined;
  #dirty = true;
  /** the current transaction (lines since the last generation line) touched our tables */
  #touching = false;
  /** pids of the transactions that touched our tables since the kept state was read */
  #writers: number[] = [];
  /** our own recent nft processes */
  readonly #ours: number[] = [];
  readonly #onForeignChange: (() => void) | undefined;

  constructor(run: Runner, options: TableCacheOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#resyncMs = options.resyncMs ?? TABLES_RESYNC_MS;
    this.#onForeignChange = options.onForeignChange;
    this.#monitor = new KernelMonitor(run, {
      argv: ['nft', 'monitor'],
      subscription: NFTABLES_EVENTS,
      onLine: (line, stream) => this.#onLine(line, stream),
      onStart: () => this.invalidate(),
      fallback: 'reading the nftables tables on every pass',
      ...(options.log ? { log: options.log } : {}),
      now: this.#now,
    });
  }

  #onLine(line: string, stream: 'stdout' | 'stderr'): void {
    if (stream === 'stderr') {
      this.#dirty = true;
      return;
    }
    const pid = generationPid(line);
    if (pid === undefined) {
      if (concernsOwnedTables(line)) this.#touching = true;
      return;
    }
    if (this.#touching) {
      this.#writers.push(pid);
      if (this.#onForeignChange) {
        const judge = setTimeout(() => {
          if (!this.#ours.includes(pid)) this.#onForeignChange!();
        }, FOREIGN_CHECK_MS);
        judge.unref();
      }
    }
    this.#touching = false;
  }

  /** Starts the monitor when it is not running (and the runner can watch); waits until it is subscribed. */
  prepare(): Promise<void> {
    return this.#monitor.prepare();
  }

  /** The kept state, when nothing but our own writes can have changed the tables since it was read. */
  cached(): TablesState | undefined {
    const kept = this.#kept;
    if (!kept || this.#dirty || !this.#monitor.armed || this.#now() - kept.readAt > this.#resyncMs) return undefined;
    if (this.#writers.some((pid) => !this.#ours.includes(pid))) return undefined;
    this.#writers = [];
    return kept.state;
  }

  /** Reads both tables with `read`; the result is kept if the monitor was listening before the read began. */
  async read(read: () => Promise<TablesState>): Promise<TablesState> {
    const armed = this.#monitor.armed;
    const readAt = this.#now();
    this.#dirty = false;
    this.#writers = [];
    this.#kept = undefined;
    const state = await read();
    // an unreadable table is not a state to keep
    const readable = state.firewall.unreadable === undefined && state.antispoof.unreadable === undefined;
    this.#kept = armed && readable ? { state, readAt } : undefined;
    return state;
  }

  /** After our own successful `nft -f` (process `pid`): the tables are now `state`. */
  wrote(pid: number | undefined, state: TablesState): void {
    if (pid === undefined) {
      this.invalidate();
      return;
    }
    this.#ours.push(pid);
    if (this.#ours.length > OWN_PIDS) this.#ours.shift();
    if (this.#kept) this.#kept.state = state;
  }

  /** The tables are not known from what we wrote: the next pass reads them. */
  invalidate(): void {
    this.#dirty = true;
  }

  /** Stops the monitor and waits until it is gone. */
  async close(): Promise<void> {
    this.#kept = undefined;
    await this.#monitor.close();
  }
}
