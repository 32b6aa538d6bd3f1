/**
 * What the data plane keeps per network namespace between passes (layout with a namespace per network,
 * linux-netns.ts), so that a settled network costs a pass no read at all:
 * - its links, through one `ip monitor link address` inside it (link-cache.ts), dropped after any pass that
 *   wrote (invalidateLinks);
 * - its anti-spoofing table, through one `nft monitor` inside it (table-cache.ts): reused while only our own
 *   transactions touched it, and anyone else's asks for a pass, so that a flushed or edited table is repaired
 *   within moments, as the host's are;
 * - its entries, through one `ip monitor neigh` inside it (entry-cache.ts): a pass that changes another
 *   network, or nothing, dumps none of this one's; our writes are written through (entry-writes.ts);
 * - whether its entries need a diff at all (`entriesSettled`), as LinuxDataplane decides for the host's.
 * One monitor per namespace rather than one `ip monitor all-nsid neigh` in the host's: no nsid to assign and
 * no `[nsid N]` lines to route, the same cache and line format as without namespaces, one process per network.
 */
import type { DesiredState } from '../dataplane.ts';
import { readAntispoof, type AntispoofState } from './antispoof.ts';
import { EntryCache } from './entry-cache.ts';
import { LinkCache } from './link-cache.ts';
import type { Runner } from './exec.ts';
import type { NamespaceReaders } from './netns.ts';
import { readEntries, readOwnedLinks, type EntryState, type LinkState } from './read.ts';
import { TableCache } from './table-cache.ts';

export interface NamespaceCacheOptions {
  log: (line: string) => void;
  /** keep the anti-spoofing tables (LinuxDataplaneOptions.watchTables) */
  watchTables: boolean;
  /** keep the entries (LinuxDataplaneOptions.watchEntries) */
  watchEntries: boolean;
  /** keep the links (LinuxDataplaneOptions.watchLinks; default: read every pass) */
  watchLinks?: boolean;
  /** a namespace's link monitor printed a line */
  onLinkEvent?: () => void;
  onDrift?: () => void;
}

const same = <T>(a: readonly T[], b: readonly T[]): boolean => a.length === b.length && a.every((item, i) => item === b[i]);

export class NamespaceCaches {
  readonly #options: NamespaceCacheOptions;
  readonly #tables = new Map<string, TableCache>();
  readonly #entries = new Map<string, EntryCache>();
  readonly #links = new Map<string, LinkCache>();
  /** what the last pass wanted of a namespace's network when it found it as wanted and changed nothing there */
  readonly #settled = new Map<string, DesiredState>();
  /** the namespaces whose kept entry dump this pass reused */
  readonly #reused = new Set<string>();

  constructor(options: NamespaceCacheOptions) {
    this.#options = options;
  }

  /** The readers of one pass (readNamespaces); a new pass starts from no reused dump. */
  readers(signal?: AbortSignal): NamespaceReaders {
    this.#reused.clear();
    return {
      links: (name, inside) => this.#linkRead(name, inside),
      antispoof: (name, inside) => this.#antispoof(name, inside, signal),
      entries: (name, inside, links) => this.#entryRead(name, inside, links, signal),
    };
  }

  async #linkRead(name: string, inside: Runner): Promise<ReadonlyMap<string, LinkState>> {
    if (!this.#options.watchLinks) return readOwnedLinks(inside);
    let cache = this.#links.get(name);
    if (!cache) {
      const { log, onLinkEvent } = this.#options;
      cache = new LinkCache(inside, () => readOwnedLinks(inside), { log, ...(onLinkEvent ? { onEvent: onLinkEvent } : {}) });
      this.#links.set(name, cache);
    }
    await cache.prepare();
    return cache.read();
  }

  /** A pass wrote (or failed in an unknown way): every namespace's links are read again. */
  invalidateLinks(): void {
    for (const cache of this.#links.values()) cache.invalidate();
  }

  /** Reads the links of every namespace whose kept read was dropped (between passes, see link-cache.ts). */
  async refreshLinks(): Promise<void> {
    await Promise.all([...this.#links.values()].map((cache) => cache.refresh()));
  }

  async #antispoof(name: string, inside: Runner, signal?: AbortSignal): Promise<AntispoofState> {
    if (!this.#options.watchTables) return readAntispoof(inside, signal);
    let cache = this.#tables.get(name);
    if (!cache) {
      const { log, onDrift } = this.#options;
      cache = new TableCache(inside, { log, ...(onDrift ? { onForeignChange: onDrift } : {}) });
      this.#tables.set(name, cache);
    }
    await cache.prepare();
    const kept = cache.cached();
    if (kept) return kept.antispoof;
    return (await cache.read(async () => ({ firewall: { present: false }, antispoof: await readAntispoof(inside, signal) }))).antispoof;
  }

  async #entryRead(name: string, inside: Runner, links: Promise<ReadonlyMap<string, LinkState>>, signal?: AbortSignal): Promise<EntryState> {
    if (!this.#options.watchEntries) return readEntries(inside, signal);
    let cache = this.#entries.get(name);
    if (!cache) {
      cache = new EntryCache(inside, { log: this.#options.log });
      this.#entries.set(name, cache);
    }
    await cache.prepare();
    const read = await cache.read(links, signal);
    if (read.reused) this.#reused.add(name);
    return read.entries;
  }

  /** Our own transaction (process `pid`) on namespace `name`'s anti-spoofing table. */
  antispoofWritten(name: string, pid: number | undefined, after: AntispoofState): void {
    this.#tables.get(name)?.wrote(pid, { firewall: { present: false }, antispoof: after });
  }

  /** The cache of namespace `name`'s entries, to write through to. */
  entryCache(name: string): EntryCache | undefined {
    return this.#entries.get(name);
  }

  /**
   * Whether namespace `name`'s entries need no diff: its dump was reused this pass, and the last pass found
   * them as wanted for the same network and the very same peer and flood objects (desiredPerNetwork hands
   * them over as the renderer made them, and it keeps those of a network that did not change).
   */
  entriesSettled(name: string, part: DesiredState): boolean {
    const settled = this.#settled.get(name);
    return (
      this.#reused.has(name) &&
      settled !== undefined &&
      settled.networks[0] === part.networks[0] &&
      same(settled.peers, part.peers) &&
      same(settled.floods, part.floods)
    );
  }

  /** After a pass: `part` when namespace `name` needed nothing and the pass had no error; undefined: doubt. */
  settled(name: string, part: DesiredState | undefined): void {
    if (part) this.#settled.set(name, part);
    else this.#settled.delete(name);
  }

  /** Something unexpected hit the pass: what was written is unknown, every namespace's entries are read again. */
  invalidate(): void {
    for (const cache of this.#entries.values()) cache.invalidate();
    this.invalidateLinks();
    this.#settled.clear();
  }

  /** Stops the monitors of the namespaces not `present` (all of them when undefined) and waits until they are gone. */
  async forget(present?: ReadonlySet<string>): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const caches of [this.#tables, this.#entries, this.#links] as Map<string, { close(): Promise<void> }>[]) {
      for (const [name, cache] of caches) {
        if (present?.has(name)) continue;
        caches.delete(name);
        closing.push(cache.close());
      }
    }
    for (const name of this.#settled.keys()) if (!present?.has(name)) this.#settled.delete(name);
    await Promise.all(closing);
  }

  /** Namespace `name` is about to be deleted: nothing of ours may keep running inside it. */
  async gone(name: string): Promise<void> {
    await this.forget(new Set([...this.#tables.keys(), ...this.#entries.keys(), ...this.#links.keys()].filter((n) => n !== name)));
  }
}
