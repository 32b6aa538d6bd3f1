/**
 * The lists desiredState hands to the data plane, kept from pass to pass (see RenderCache in desired.ts):
 * the concatenation of per-network lists, and the peer list, which is edited rather than copied twice.
 *
 * Why the peer list is special: a change to one remote endpoint of a network of 7,000 endpoints rebuilt that
 * network's list from the renderer's map and then copied every network's list into the whole, twice the
 * size of the view per watch message; in bench/scale/agent-micro.ts those copies and their garbage were the
 * largest part of an agent's CPU per message. The whole list is now one copy of references with that edit
 * made (native, several times cheaper than a list built from a map), whatever the number of networks.
 */
import type { DesiredPeer } from './dataplane.ts';

/**
 * The concatenation of per-network lists, kept while every list is the same array as last time: a pass in
 * which nothing changed hands the data plane the very array it had, which it can recognise without looking
 * inside (the kernel data plane then skips the entry diff). Concatenating, rather than pushing one by one,
 * is a copy of references; pushing a network of 100,000 peers spread into push() would overflow the stack.
 */
export class Concatenation<T> {
  #parts: readonly (readonly T[])[] = [];
  #whole: readonly T[] = [];

  of(parts: readonly (readonly T[])[]): readonly T[] {
    if (parts.length !== this.#parts.length || parts.some((part, i) => part !== this.#parts[i])) {
      this.#parts = parts;
      this.#whole = parts.length === 1 ? parts[0]! : ([] as T[]).concat(...parts);
    }
    return this.#whole;
  }
}

/** One change to a network's peers: added (no `old`), replaced in its place, or dropped (no `peer`). */
export interface PeerEdit {
  readonly old: DesiredPeer | undefined;
  readonly peer: DesiredPeer | undefined;
}

/** Edits of one network between two passes beyond which building the list again is cheaper (each is a copy). */
export const MAX_PEER_EDITS = 8;

/** What PeerConcatenation needs of a network's rendering (NetworkRender in desired.ts). */
export interface PeerSource {
  /** the network's peers in the view's order, built from its map */
  peerList(): readonly DesiredPeer[];
  /** the edits since the last call, in order; undefined when they cannot be replayed (build the list again) */
  takePeerEdits(): readonly PeerEdit[] | undefined;
}

/**
 * The peers of every local network, one network after another: the same array while nothing changed, the
 * last array with the networks' edits replayed while the networks are the same ones, else built again.
 * Replaying keeps the order a fresh build gives: a new peer goes last in its network (where the renderer's
 * map puts it), a replaced one stays in its place.
 */
export class PeerConcatenation {
  #sources: readonly PeerSource[] = [];
  /** how many peers each source holds in #whole, in order */
  #lengths: number[] = [];
  #whole: readonly DesiredPeer[] = [];

  of(sources: readonly PeerSource[]): readonly DesiredPeer[] {
    // every source's edits are taken, so that none is replayed twice
    const edits = sources.map((source) => source.takePeerEdits());
    const same = sources.length === this.#sources.length && sources.every((source, i) => source === this.#sources[i]);
    if (same && edits.every((e) => e !== undefined)) {
      const replayed = this.#replay(edits as (readonly PeerEdit[])[]);
      if (replayed) return replayed;
    }
    const lists = sources.map((source) => source.peerList());
    this.#sources = sources;
    this.#lengths = lists.map((list) => list.length);
    this.#whole = lists.length === 1 ? lists[0]! : ([] as DesiredPeer[]).concat(...lists);
    return this.#whole;
  }

  /** #whole with `edits` made, or undefined when one of them does not fit it (then it is built again). */
  #replay(edits: readonly (readonly PeerEdit[])[]): readonly DesiredPeer[] | undefined {
    let whole = this.#whole;
    const lengths = [...this.#lengths];
    let start = 0;
    for (const [i, list] of edits.entries()) {
      for (const { old, peer } of list) {
        const end = start + lengths[i]!;
        if (old === undefined) {
          whole = whole.toSpliced(end, 0, peer!);
          lengths[i]!++;
          continue;
        }
        const at = whole.indexOf(old, start);
        if (at === -1 || at >= end) return undefined;
        if (peer === undefined) {
          whole = whole.toSpliced(at, 1);
          lengths[i]!--;
        } else {
          const next = whole.slice();
          next[at] = peer;
          whole = next;
        }
      }
      start += lengths[i]!;
    }
    this.#lengths = lengths;
    return (this.#whole = whole);
  }
}
