/**
 * Reusing the last neighbour/FDB dump while the kernel says nothing changed, and keeping it up to date
 * with our own writes.
 *
 * Why: with 10,000 remote peers, a pass reads 10,000 neighbours and 10,000 FDB entries. iproute2 spends
 * about 25 ms of CPU on each dump (it formats and flushes every entry separately) and parsing adds a few
 * more, so on a 2-core machine the two dumps are most of a pass that has nothing to do (measured 45-80 ms
 * per no-change pass with dumps, against a target of 50 ms).
 *
 * The kernel announces every neighbour and FDB change on the RTNLGRP_NEIGH netlink group, and
 * `ip monitor neigh` prints them (VXLAN FDB changes included, shown as neighbours). So one monitor runs next
 * to the data plane, and while it has printed nothing unexpected about an owned VXLAN device since the last
 * dump started, that dump (plus our own writes since, see below) still describes the kernel and is reused.
 * The monitor is only a hint that saves work; the dump stays the source of truth:
 * - the dump is reused only if the monitor was subscribed before the dump started (monitor.ts: its socket is
 *   listed in /proc/net/netlink with the neighbour group; no "sleep and hope");
 * - any line about a `vxnv*` device that is not one our own writes cause, anything on the monitor's stderr
 *   (e.g. "No buffer space available": events were lost), the monitor exiting, a VXLAN device with a new
 *   ifindex (recreated) or an invalidation by the data plane (link changes, a batch not entirely in effect)
 *   mean: dump again;
 * - and there is a full dump at least every 30 s regardless.
 *
 * Write-through: without it, the monitor's report of our own writes would void the dump after every change,
 * so one changed peer among 50,000 would cost both dumps again (measured 345 ms against 13 ms). Instead,
 * before a batch the data plane announces its steps (`expect`): each one becomes the exact lines the kernel
 * prints for it (captured in test/fixtures/kernel/ip-monitor-neigh-writes.txt), and a matching line is
 * consumed instead of voiding the dump. After the batch, when every step took effect as planned (`applied`),
 * the steps are applied to the cached dump, which then describes the kernel again. Safety rules:
 * - a line is ours only if it matches exactly, state included: a neighbour's line names (dev, ip) and the
 *   new MAC with "PERMANENT", an FDB entry's names (dev, mac, dst) with "NOARP PERMANENT", so a neighbour
 *   whose IP and MAC equal an FDB entry's destination and MAC is still news; one expectation covers one line;
 * - expectations that are never met (a step that changed nothing, a kernel that prints differently) expire
 *   after a few seconds and are dropped on every invalidation and monitor start, so they cannot swallow a
 *   later change by somebody else for long; an expected line that comes too late only costs a dump;
 * - a batch with any failed, skipped or unknown line is not applied: the data plane invalidates instead.
 * Expected lines may still arrive after the next dump has started; consuming them then is right, since
 * passes never overlap and the write they report ended before that dump began.
 */
import { OWNED_PREFIX } from '../dataplane.ts';
import type { Runner } from './exec.ts';
import { KernelMonitor, NEIGHBOUR_EVENTS } from './monitor.ts';
import type { FdbStep, NeighbourStep } from './plan.ts';
import { BRIDGE_ENTRY, readEntries, type EntryState, type FdbEntry, type LinkState, type NeighbourEntry } from './read.ts';

export const RESYNC_MS = 30_000;
/** How long the lines of our own writes are waited for: the monitor prints them within milliseconds. */
export const EXPECT_MS = 5_000;

const OWNED_VXLAN_EVENT = new RegExp(`\\bdev ${OWNED_PREFIX}v`);

/** Pure: whether a line printed by `ip monitor neigh` concerns an owned VXLAN device. */
export const concernsOwnedVxlan = (line: string): boolean => OWNED_VXLAN_EVENT.test(line);

/**
 * One line of `ip monitor neigh`: `[Deleted ][ADDRESS ]dev DEV[ lladdr MAC][ FLAGS AND STATES]`. For a
 * VXLAN FDB entry ADDRESS is its destination (VTEP) and MAC its key; a bridge's own entry has no ADDRESS.
 */
export interface NeighbourEvent {
  deleted: boolean;
  address?: string;
  dev: string;
  /** lower case */
  lladdr?: string;
  /** everything after the addresses as printed, e.g. "PERMANENT", "NOARP PERMANENT", "FAILED", "router STALE" */
  state: string;
}

/** Pure: parses a line of `ip monitor neigh`; undefined for anything else (a "Miss" line, a stray message). */
export function parseNeighbourEvent(line: string): NeighbourEvent | undefined {
  const words = line.trim().split(/\s+/);
  let i = 0;
  const deleted = words[i] === 'Deleted';
  if (deleted) i++;
  let address: string | undefined;
  if (words[i] !== 'dev') address = words[i++];
  if (words[i] !== 'dev' || words[i + 1] === undefined) return undefined;
  const dev = words[i + 1]!;
  i += 2;
  let lladdr: string | undefined;
  if (words[i] === 'lladdr') {
    lladdr = words[i + 1]?.toLowerCase();
    if (lladdr === undefined) return undefined;
    i += 2;
  }
  const event: NeighbourEvent = { deleted, dev, state: words.slice(i).join(' ') };
  if (address !== undefined) event.address = address;
  if (lladdr !== undefined) event.lladdr = lladdr;
  return event;
}

const eventKey = (deleted: boolean, dev: string, address: string | undefined, lladdr: string | undefined, state: string): string =>
  `${deleted ? '-' : '+'} ${dev} ${address ?? ''} ${lladdr ?? ''} ${state}`;

/** The states iproute2 writes: `ip neigh ... nud permanent`, `bridge fdb ... self permanent` (NUD_NOARP by default). */
const NEIGHBOUR_STATE = 'PERMANENT';
const FDB_STATE = 'NOARP PERMANENT';
/** `bridge fdb ... master static`: the bridge's entry, printed without a destination */
const BRIDGE_STATE = 'NOARP';
/** what a deleted neighbour is set to before it goes (no lladdr: it is no longer valid), printed twice */
const NEIGHBOUR_GONE = 'FAILED';

/**
 * Pure: the monitor lines a step that changes the kernel causes, as monitorLineKey gives them (see
 * ip-monitor-neigh-writes.txt). A deleted neighbour is first set to FAILED, then deleted; an FDB replace
 * prints the new destination only. A step that changes nothing prints nothing.
 */
export function expectedLines(step: NeighbourStep | FdbStep): string[] {
  switch (step.op) {
    case 'neigh-replace':
      return [eventKey(false, step.dev, step.ip, step.mac, NEIGHBOUR_STATE)];
    case 'neigh-del':
      return [eventKey(false, step.dev, step.ip, undefined, NEIGHBOUR_GONE), eventKey(true, step.dev, step.ip, undefined, NEIGHBOUR_GONE)];
    case 'fdb-replace':
    case 'fdb-append':
      return [eventKey(false, step.dev, step.dst, step.mac, FDB_STATE)];
    case 'fdb-del':
      return [eventKey(true, step.dev, step.dst, step.mac, FDB_STATE)];
    case 'fdb-static':
      return [eventKey(false, step.dev, undefined, step.mac, BRIDGE_STATE)];
    case 'fdb-static-del':
      return [eventKey(true, step.dev, undefined, step.mac, BRIDGE_STATE)];
  }
}

/** Pure: a monitor line in the form expectedLines gives; undefined when it cannot be parsed. */
export function monitorLineKey(line: string): string | undefined {
  const event = parseNeighbourEvent(line);
  return event && eventKey(event.deleted, event.dev, event.address, event.lladdr, event.state);
}

const inner = <K, V>(outer: Map<string, Map<K, V>>, dev: string): Map<K, V> => {
  let map = outer.get(dev);
  if (!map) outer.set(dev, (map = new Map()));
  return map;
};

/** group addresses (the all-zero default destination included) may hold several destinations; unicast ones one */
const isGroupMac = (mac: string): boolean => mac === '00:00:00:00:00:00' || (parseInt(mac.slice(0, 2), 16) & 1) === 1;

/**
 * Pure: the entries after `steps` took effect, as the kernel applies them: a neighbour replace sets the
 * MAC; an FDB replace rewrites the entry's first destination in place (nothing when it already has the
 * new one), an append adds a destination (to an existing unicast entry it does nothing), a delete removes
 * one. The input is left alone. Cost: one scan that only looks the entries up among the touched keys, one
 * array copy, and the steps, so a small change stays cheap with 50,000 entries. The destinations of one
 * MAC keep the kernel's order (the first is the one a replace rewrites); new entries go to the end.
 */
export function applyEntrySteps(entries: EntryState, neighbourSteps: readonly NeighbourStep[], fdbSteps: readonly FdbStep[]): EntryState {
  return {
    neighbours: neighbourSteps.length ? applySteps(entries.neighbours, neighbourSteps, neighbourKey, neighbourAfter) : entries.neighbours,
    fdb: fdbSteps.length ? applySteps(entries.fdb, fdbSteps, fdbKey, fdbAfter) : entries.fdb,
  };
}

const neighbourKey = (entry: { ip: string }): string => entry.ip;
// the bridge's static entry for a MAC is an entry of its own, apart from the VXLAN device's destinations
const fdbKey = (entry: { mac: string; dst: string }): string => (entry.dst === BRIDGE_ENTRY ? `${entry.mac} ${BRIDGE_ENTRY}` : entry.mac);

function neighbourAfter(dev: string, ip: string, before: readonly NeighbourEntry[], steps: readonly NeighbourStep[]): NeighbourEntry[] {
  let mac = before[0]?.mac;
  for (const step of steps) mac = step.op === 'neigh-replace' ? step.mac : undefined;
  return mac === undefined ? [] : mac === before[0]?.mac ? [before[0]!] : [{ dev, ip, mac }];
}

function fdbAfter(dev: string, key: string, before: readonly FdbEntry[], steps: readonly FdbStep[]): FdbEntry[] {
  const mac = key.split(' ')[0]!;
  const dsts = before.map((entry) => entry.dst);
  for (const step of steps) {
    const at = dsts.indexOf(step.dst);
    if (step.op === 'fdb-del' || step.op === 'fdb-static-del') {
      if (at >= 0) dsts.splice(at, 1);
    } else if (at >= 0) {
      // already there: nothing changes
    } else if (dsts.length === 0) {
      dsts.push(step.dst);
    } else if (step.op === 'fdb-replace') {
      dsts[0] = step.dst;
    } else if (isGroupMac(mac)) {
      dsts.push(step.dst);
    }
  }
  return dsts.map((dst, i) => (before[i]?.dst === dst ? before[i]! : { dev, mac, dst }));
}

/** Entries of one table keyed by (dev, key(entry)): the touched keys are found, rewritten in place, the rest kept. */
function applySteps<E extends { dev: string }, S extends { dev: string }>(
  entries: readonly E[],
  steps: readonly S[],
  key: (item: E | S) => string,
  after: (dev: string, k: string, before: readonly E[], steps: readonly S[]) => E[],
): E[] {
  const touched = new Map<string, Map<string, { steps: S[]; at: number[] }>>();
  for (const step of steps) {
    const byKey = inner(touched, step.dev);
    const k = key(step);
    const slot = byKey.get(k);
    if (slot) slot.steps.push(step);
    else byKey.set(k, { steps: [step], at: [] });
  }
  // the scan: entries come grouped by device, so mostly one lookup per entry
  let dev: string | undefined;
  let byKey: Map<string, { steps: S[]; at: number[] }> | undefined;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.dev !== dev) byKey = touched.get((dev = entry.dev));
    if (byKey) byKey.get(key(entry))?.at.push(i);
  }
  const result: (E | undefined)[] = entries.slice();
  let holes = false;
  for (const [dev, slots] of touched) {
    for (const [k, slot] of slots) {
      const now = after(dev, k, slot.at.map((i) => entries[i]!), slot.steps);
      slot.at.forEach((i, n) => {
        result[i] = now[n];
        if (n >= now.length) holes = true;
      });
      for (let n = slot.at.length; n < now.length; n++) result.push(now[n]);
    }
  }
  return holes ? result.filter((entry): entry is E => entry !== undefined) : (result as E[]);
}

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
  /** how long an expected line of our own writes is waited for (default EXPECT_MS) */
  expectMs?: number;
}

export class EntryCache {
  readonly #now: () => number;
  readonly #resyncMs: number;
  readonly #expectMs: number;
  readonly #monitor: KernelMonitor;
  #dirty = true;
  #cache: { entries: EntryState; at: number; devices?: string } | undefined;
  /** lines our own writes will cause (see expectedLines) → how many are still due, and until when */
  readonly #expected = new Map<string, { count: number; until: number }>();
  readonly #run: Runner;

  constructor(run: Runner, options: EntryCacheOptions = {}) {
    this.#run = run;
    this.#now = options.now ?? Date.now;
    this.#resyncMs = options.resyncMs ?? RESYNC_MS;
    this.#expectMs = options.expectMs ?? EXPECT_MS;
    this.#monitor = new KernelMonitor(run, {
      argv: ['ip', 'monitor', 'neigh'],
      subscription: NEIGHBOUR_EVENTS,
      onLine: (line, stream) => {
        if (stream === 'stderr' || (concernsOwnedVxlan(line) && !this.#ours(line))) this.#dirty = true;
      },
      onStart: () => {
        this.#dirty = true;
        this.#expected.clear();
      },
      fallback: 'reading all entries on every pass',
      ...(options.log ? { log: options.log } : {}),
      now: this.#now,
    });
  }

  /** Starts the monitor when it is not running (and the runner can watch); waits until it is subscribed. */
  prepare(): Promise<void> {
    return this.#monitor.prepare();
  }

  /** Whether a monitor line is one our own writes were expected to cause; it is used up if so. */
  #ours(line: string): boolean {
    if (this.#expected.size === 0) return false;
    const key = monitorLineKey(line);
    if (key === undefined) return false;
    const due = this.#expected.get(key);
    if (!due) return false;
    if (--due.count === 0 || due.until < this.#now()) this.#expected.delete(key);
    return due.until >= this.#now();
  }

  /** The last dump with our writes since applied, when nothing else can have changed since it started. */
  cached(): EntryState | undefined {
    if (this.#expected.size) {
      const now = this.#now();
      for (const [key, due] of this.#expected) if (due.until < now) this.#expected.delete(key);
    }
    const cache = this.#cache;
    if (!cache || !this.#monitor.armed || this.#dirty || this.#now() - cache.at > this.#resyncMs) return undefined;
    return cache.entries;
  }

  /** Dumps the entries; they are kept for later passes if the monitor was listening before the dump began. */
  async dump(signal?: AbortSignal): Promise<EntryState> {
    const armed = this.#monitor.armed;
    const at = this.#now();
    this.#dirty = false;
    this.#cache = undefined;
    const entries = await readEntries(this.#run, signal);
    this.#cache = armed ? { entries, at } : undefined;
    return entries;
  }

  /**
   * This pass's entries: the kept dump while the monitor vouches for it and the VXLAN devices read in the
   * same pass (`links`) are those it was taken with, else a dump (run next to the read of the links).
   * `reused`: nothing changed the entries since the dump the previous pass saw. Call prepare() first.
   */
  async read(links: Promise<ReadonlyMap<string, LinkState>>, signal?: AbortSignal): Promise<{ entries: EntryState; reused: boolean }> {
    const kept = this.cached();
    const dumping = kept ? undefined : this.dump(signal);
    dumping?.catch(() => {}); // awaited below; a failed read of the links must not leave it unhandled
    const have = await links;
    if (kept && this.stillValid(have)) return { entries: kept, reused: true };
    const entries = await (dumping ?? this.dump(signal));
    this.bind(have);
    return { entries, reused: false };
  }

  /** Ties a fresh dump to the VXLAN devices read in the same pass (their ifindexes). */
  bind(links: ReadonlyMap<string, LinkState>): void {
    if (this.#cache && this.#cache.devices === undefined) this.#cache.devices = vxlanIndexes(links);
  }

  /** Whether a reused dump still belongs to the same devices: one deleted and created again, even empty, voids it. */
  stillValid(links: ReadonlyMap<string, LinkState>): boolean {
    return this.#cache !== undefined && this.#cache.devices === vxlanIndexes(links);
  }

  /**
   * Before our own entry batches run: the lines their steps will cause are not news. Called before, not
   * after, because the monitor may print them before the batch's exit is noticed.
   */
  expect(neighbourSteps: readonly NeighbourStep[], fdbSteps: readonly FdbStep[]): void {
    if (!this.#monitor.armed) return; // nothing to protect; a monitor that starts later clears them anyway
    const until = this.#now() + this.#expectMs;
    for (const steps of [neighbourSteps, fdbSteps]) {
      for (const step of steps) {
        for (const key of expectedLines(step)) {
          const due = this.#expected.get(key);
          if (due) {
            due.count++;
            due.until = until;
          } else {
            this.#expected.set(key, { count: 1, until });
          }
        }
      }
    }
  }

  /** After them, when every step took effect exactly as planned: the cached dump is brought up to date. */
  applied(neighbourSteps: readonly NeighbourStep[], fdbSteps: readonly FdbStep[]): void {
    const cache = this.#cache;
    if (!cache || this.#dirty) return; // read again anyway
    cache.entries = applyEntrySteps(cache.entries, neighbourSteps, fdbSteps);
  }

  /**
   * The kernel's entries are not known from what we wrote (links changed, a batch partly failed): the next
   * pass reads again. Pending expectations go too: a step that failed would never print its line.
   */
  invalidate(): void {
    this.#dirty = true;
    this.#expected.clear();
  }

  /**
   * Before a batch too large to write through (linux-dataplane.ts, WRITE_THROUGH_MAX_STEPS): the monitor
   * stops, so nobody parses the tens of thousands of lines the batch causes, and the next pass starts it
   * again and reads the entries back.
   */
  suspend(): void {
    this.invalidate();
    this.#monitor.pause();
  }

  /** Stops the monitor and waits until it is gone. */
  async close(): Promise<void> {
    this.#cache = undefined;
    this.#expected.clear();
    await this.#monitor.close();
  }
}
