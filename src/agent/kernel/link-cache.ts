/**
 * Reusing the last read of one place's links (the host namespace's, or a network namespace's) while
 * `ip monitor link address` there has printed nothing since that read began, in the layout with a namespace
 * per network (LinuxDataplane, netns-caches.ts).
 *
 * Why: a pass with namespaces read the host's links and each namespace's links before it could plan, two
 * processes in front of every attach and every pass with nothing to do; an attach to a network already here
 * then waited for them before its veth pair was even started (session 9's trace: 10-50 ms of its 150).
 *
 * The read stays the source of truth, and the monitor only says when it may be skipped:
 * - a read is kept only if the monitor was subscribed (monitor.ts) before it began, and reused only while
 *   the monitor has printed no line at all since then (an event during the read counts: the read may or may
 *   not show it) and has not been restarted;
 * - the data plane drops the kept read after any pass that ran a write (ours arrive as events too, but
 *   perhaps only after the next pass began), and after anything unexpected; a read under way then is not
 *   kept either. It reads again shortly after such a pass, and after a monitor's line (`refresh`, queued
 *   like a pass, never beside one): the agent runs no pass for the status report that follows an attach,
 *   libnetwork moves a container's end out of the host namespace after Join, and the next attach should not
 *   wait for a read;
 * - the kernel announces links and addresses, not every attribute: a bridge port's `learning` and a VXLAN
 *   device's options changed in place send no event (kernel 6.18, `ip monitor all` prints nothing). A kept
 *   read is therefore used for at most LINKS_KEEP_MS, a third of the agent's periodic pass (30 s): drift of
 *   that kind is repaired by the first pass that finds the kept read older, a periodic one at the latest
 *   (one period later than before when a write came less than 10 s before it).
 */
import type { Runner } from './exec.ts';
import { KernelMonitor, type Subscription } from './monitor.ts';
import type { LinkState } from './read.ts';

/**
 * RTNLGRP_LINK (1) on NETLINK_ROUTE. `ip monitor link address` binds it together with the address groups in
 * one call, so the one bit tells that all of them are joined.
 */
export const LINK_EVENTS: Subscription = { protocol: 0, group: 1 };

/** How long a kept read may be reused at most (see the module comment). */
export const LINKS_KEEP_MS = 10_000;

export interface LinkCacheOptions {
  log?: (line: string) => void;
  /** the monitor printed a line: the kept read is gone (the data plane reads again between passes) */
  onEvent?: () => void;
  now?: () => number;
}

export class LinkCache {
  readonly #monitor: KernelMonitor;
  readonly #now: () => number;
  /** bumped by every line of the monitor and every start of it */
  #generation = 0;
  #kept: { links: ReadonlyMap<string, LinkState>; generation: number; at: number } | undefined;
  readonly #reader: () => Promise<ReadonlyMap<string, LinkState>>;

  /** `reader`: reads the place's owned links (readOwnedLinks) */
  constructor(run: Runner, reader: () => Promise<ReadonlyMap<string, LinkState>>, options: LinkCacheOptions = {}) {
    this.#reader = reader;
    this.#now = options.now ?? Date.now;
    this.#monitor = new KernelMonitor(run, {
      argv: ['ip', 'monitor', 'link', 'address'],
      subscription: LINK_EVENTS,
      onLine: () => {
        this.#generation++;
        options.onEvent?.();
      },
      onStart: () => {
        this.#generation++;
        this.#kept = undefined;
      },
      fallback: 'reading the links on every pass',
      ...(options.log ? { log: options.log } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
  }

  /** Starts the monitor when it is not running; waits until it is subscribed. */
  prepare(): Promise<void> {
    return this.#monitor.prepare();
  }

  /** The kept links when nothing may have changed them, else those read now (kept when vouched for). */
  async read(): Promise<ReadonlyMap<string, LinkState>> {
    return this.#valid() ?? this.#load();
  }

  /** Reads now unless the kept links are still good (or the monitor cannot vouch for a read). */
  async refresh(): Promise<void> {
    if (this.#valid() === undefined && this.#monitor.armed) await this.#load();
  }

  /** A write of ours (or something unexpected) happened: the next read goes to the kernel, and one under way is not kept. */
  invalidate(): void {
    this.#kept = undefined;
    this.#generation++;
  }

  #valid(): ReadonlyMap<string, LinkState> | undefined {
    const kept = this.#kept;
    if (kept && this.#monitor.armed && kept.generation === this.#generation && this.#now() - kept.at < LINKS_KEEP_MS) return kept.links;
    return undefined;
  }

  async #load(): Promise<ReadonlyMap<string, LinkState>> {
    this.#kept = undefined;
    const armed = this.#monitor.armed;
    const generation = this.#generation;
    const at = this.#now();
    const links = await this.#reader();
    if (armed && this.#monitor.armed && generation === this.#generation) this.#kept = { links, generation, at };
    return links;
  }

  async close(): Promise<void> {
    this.#kept = undefined;
    await this.#monitor.close();
  }
}

/**
 * Pure: whether a process may change a link or an address. Reads (`-j`), nftables transactions and entry
 * batches (`bridge`, `ip -batch` of `neigh` lines only) cannot; anything else is taken to.
 */
export function mayChangeLinks(argv: readonly string[], input?: string): boolean {
  if (argv.includes('-j') || argv.includes('nft') || argv[0] === 'bridge') return false;
  if (input === undefined) return true;
  const lines = input.split('\n').filter((line) => line.trim() !== '');
  return lines.length === 0 || !lines.every((line) => line.startsWith('neigh '));
}

/** A runner that tells whether anything run through it may have changed a link (mayChangeLinks, or a file written). */
export function noticeLinkWrites(run: Runner): { run: Runner; wrote: () => boolean } {
  let wrote = false;
  const noticing: Runner = {
    run: (argv, options) => {
      if (mayChangeLinks(argv, options?.input)) wrote = true;
      return run.run(argv, options);
    },
    readFile: (path) => run.readFile(path),
    writeFile: (path, content) => {
      wrote = true;
      return run.writeFile(path, content);
    },
    exists: (path) => run.exists(path),
    ...(run.watch ? { watch: (argv: readonly string[], onLine: Parameters<NonNullable<Runner['watch']>>[1]) => run.watch!(argv, onLine) } : {}),
    ...(run.listDir ? { listDir: (path: string) => run.listDir!(path) } : {}),
  };
  return { run: noticing, wrote: () => wrote };
}
