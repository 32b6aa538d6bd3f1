/**
 * Address allocation for one network, in memory. The store's `/ipam/<network>/<ip>` keys are the truth and
 * the final arbiter (created only if absent); this allocator is a fast, rebuildable view of them that also
 * holds short-lived reservations for requests whose transaction is in flight, so parallel requests in this
 * manager pick different addresses instead of racing for the same one and retrying.
 *
 * "Lowest free address" must not cost a scan of the used ones: each subnet has a hierarchical bitmap
 * (one bit per address; above it one bit per full 32-bit word, and so on), so finding the first free
 * address, taking and releasing one are all O(log32 size).
 */
import { VxnetError, quote } from '../core/errors.ts';
import { type Cidr, broadcastOf, contains, formatCidr, formatIPv4, parseIPv4, usableRange } from '../core/ipv4.ts';
import { type Cidr6, contains6, formatCidr6, formatIPv6, parseIPv6, usableRange6 } from '../core/ipv6.ts';

/** A set of bits 0..size-1 with "first clear bit" in O(log32 size). */
export class FreeBitmap {
  readonly size: number;
  /** levels[0]: one bit per element; levels[k+1]: bit i set iff word i of levels[k] is all ones */
  #levels: Uint32Array[] = [];

  constructor(size: number) {
    this.size = size;
    let count = size;
    do {
      const words = Math.max(1, Math.ceil(count / 32));
      const level = new Uint32Array(words);
      // Bits past the end count as used, so they are never found free.
      const tail = count % 32;
      if (tail !== 0) level[words - 1] = (0xffffffff << tail) >>> 0;
      if (count === 0) level[0] = 0xffffffff;
      this.#levels.push(level);
      count = words;
    } while (count > 1);
    // Propagate words that are full already (only the padding case) upwards.
    for (let k = 0; k + 1 < this.#levels.length; k++) {
      const lower = this.#levels[k]!;
      const upper = this.#levels[k + 1]!;
      for (let i = 0; i < lower.length; i++) {
        if (lower[i] === 0xffffffff) upper[i >>> 5] = (upper[i >>> 5]! | (1 << (i & 31))) >>> 0;
      }
    }
  }

  has(index: number): boolean {
    return ((this.#levels[0]![index >>> 5]! >>> (index & 31)) & 1) === 1;
  }

  set(index: number): void {
    let i = index;
    for (const level of this.#levels) {
      const before = level[i >>> 5]!;
      const after = (before | (1 << (i & 31))) >>> 0;
      level[i >>> 5] = after;
      if (after !== 0xffffffff || before === 0xffffffff) return;
      i >>>= 5;
    }
  }

  clear(index: number): void {
    let i = index;
    for (const level of this.#levels) {
      const before = level[i >>> 5]!;
      level[i >>> 5] = (before & ~(1 << (i & 31))) >>> 0;
      if (before !== 0xffffffff) return;
      i >>>= 5;
    }
  }

  /** The lowest clear bit, or -1 when every bit is set. */
  firstClear(): number {
    const top = this.#levels.length - 1;
    if (this.#levels[top]![0] === 0xffffffff) return -1;
    let word = 0;
    for (let k = top; k >= 0; k--) {
      const w = this.#levels[k]![word]!;
      const inverted = ~w;
      const bit = 31 - Math.clz32(inverted & -inverted);
      word = word * 32 + bit;
    }
    return word < this.size ? word : -1;
  }
}

/** One subnet of a network: its usable addresses `first`..`last` (core/ipv4.ts, ipv6.ts usableRange). */
interface Pool<A, C> {
  cidr: C;
  text: string;
  gateway: A;
  first: A;
  last: A;
}

interface SubnetPool extends Pool<number, Cidr> {
  /** created on first use: a /8 costs 2 MiB */
  bits?: FreeBitmap;
}

/** The address arithmetic of one family that an AddressBook uses. */
interface Family<A, C> {
  usableRange(cidr: C): { first: A; last: A };
  formatCidr(cidr: C): string;
  format(address: A): string;
}

const IPV4: Family<number, Cidr> = { usableRange, formatCidr, format: formatIPv4 };
const IPV6: Family<bigint, Cidr6> = { usableRange: usableRange6, formatCidr: formatCidr6, format: formatIPv6 };

export interface Allocation {
  ip: string;
  /** prefix length of the subnet the address lies in */
  prefix: number;
  gateway: string;
}

/**
 * What the IPv4 and IPv6 allocators share: a network's subnets, the addresses the store holds and those
 * promised to requests in flight, and handing out an address from them. How the next free address is found
 * and which addresses a request may not name are each family's own (a bitmap and the lowest free address;
 * a cursor that does not hand a released address out again soon).
 */
abstract class AddressBook<A extends number | bigint, C extends { prefix: number }, P extends Pool<A, C>> {
  readonly network: string;
  protected readonly pools: P[];
  /** addresses held by an `/ipam/` key in the store */
  protected readonly committed = new Set<A>();
  /** addresses promised to an in-flight request */
  protected readonly reserved = new Set<A>();
  readonly #family: Family<A, C>;

  constructor(network: string, subnets: { cidr: C; gateway: A }[], family: Family<A, C>) {
    this.network = network;
    this.#family = family;
    // a family's pool adds only fields it fills in later (IPv4's bitmap, IPv6's cursor)
    this.pools = subnets.map(({ cidr, gateway }) => ({ cidr, text: family.formatCidr(cidr), gateway, ...family.usableRange(cidr) }) as P);
  }

  protected full(): never {
    const cidrs = this.pools.map((p) => p.text).join(', ');
    throw new VxnetError('subnet_full', `network ${this.network} has no free address left in ${cidrs}.`);
  }

  /** A requested address of `pool` (`shown` as the request is told), reserved unless it is taken. */
  protected take(pool: P, address: A, shown: string): Allocation {
    if (this.committed.has(address) || this.reserved.has(address)) {
      throw new VxnetError('address_in_use', `address ${shown} is already in use on network ${this.network}.`);
    }
    return this.hand(pool, address);
  }

  /** Reserves a free `address` of `pool`. */
  protected hand(pool: P, address: A): Allocation {
    this.reserved.add(address);
    return { ip: this.#family.format(address), prefix: pool.cidr.prefix, gateway: this.#family.format(pool.gateway) };
  }
}

export class NetworkAllocator extends AddressBook<number, Cidr, SubnetPool> {
  constructor(network: string, subnets: { cidr: Cidr; gateway: number }[]) {
    super(network, subnets, IPV4);
  }

  /** Takes the lowest free address of the first subnet with room, as a reservation. */
  reserveNext(): Allocation {
    for (const pool of this.pools) {
      const index = this.#bits(pool).firstClear();
      if (index < 0) continue;
      this.#bits(pool).set(index);
      return this.hand(pool, pool.first + index);
    }
    return this.full();
  }

  /** Reserves a requested address after checking it may be used and is free. */
  reserve(ipText: string): Allocation {
    const address = parseIPv4(ipText);
    if (address === undefined) throw new VxnetError('invalid_address', `ip ${quote(ipText)} is not a valid IPv4 address.`);
    const pool = this.pools.find((p) => contains(p.cidr, address));
    if (!pool) {
      const cidrs = this.pools.map((p) => p.text).join(', ');
      throw new VxnetError('address_outside_subnet', `address ${ipText} is not in any subnet of network ${this.network} (${cidrs}).`);
    }
    if (address === pool.cidr.network || address === broadcastOf(pool.cidr)) {
      const what = address === pool.cidr.network ? 'network' : 'broadcast';
      throw new VxnetError('address_reserved', `address ${ipText} is the ${what} address of ${pool.text}.`);
    }
    if (address === pool.gateway) {
      throw new VxnetError('address_reserved', `address ${ipText} is the gateway of ${pool.text}.`);
    }
    const allocation = this.take(pool, address, ipText);
    this.#bits(pool).set(address - pool.first);
    return allocation;
  }

  /** Drops a reservation (the request committed or gave up). */
  unreserve(ipText: string): void {
    const address = parseIPv4(ipText);
    if (address === undefined || !this.reserved.delete(address)) return;
    if (!this.committed.has(address)) this.#free(address);
  }

  /** The store now holds this address (an `/ipam/` key appeared). */
  markUsed(ipText: string): void {
    const address = parseIPv4(ipText);
    if (address === undefined || this.committed.has(address)) return;
    this.committed.add(address);
    const pool = this.#poolOf(address);
    if (pool && address >= pool.first && address <= pool.last) this.#bits(pool).set(address - pool.first);
  }

  /** The store released this address (its `/ipam/` key was deleted). */
  markFree(ipText: string): void {
    const address = parseIPv4(ipText);
    if (address === undefined || !this.committed.delete(address)) return;
    if (!this.reserved.has(address)) this.#free(address);
  }

  #free(address: number): void {
    const pool = this.#poolOf(address);
    if (!pool || address === pool.gateway || address < pool.first || address > pool.last) return;
    this.#bits(pool).clear(address - pool.first);
  }

  #poolOf(address: number): SubnetPool | undefined {
    return this.pools.find((p) => contains(p.cidr, address));
  }

  #bits(pool: SubnetPool): FreeBitmap {
    if (!pool.bits) {
      const bits = new FreeBitmap(pool.last - pool.first + 1);
      if (pool.gateway >= pool.first && pool.gateway <= pool.last) bits.set(pool.gateway - pool.first);
      for (const address of this.committed) {
        if (address >= pool.first && address <= pool.last) bits.set(address - pool.first);
      }
      pool.bits = bits;
    }
    return pool.bits;
  }
}

interface SubnetPool6 extends Pool<bigint, Cidr6> {
  /** where the next search starts: one past the highest address handed out or seen in the store (none yet: first) */
  cursor?: bigint;
}

/**
 * Address allocation in a network's IPv6 subnets. A /64 holds 2^64 addresses, so nothing may cost a walk
 * of the subnet or a bitmap of it: each subnet has a cursor one past the highest address handed out or
 * seen in the store, and the next address is the cursor's, skipping only addresses in use. A released
 * address is therefore not handed out again until the cursor wraps around the end of the subnet, which also
 * keeps a stale neighbour entry somewhere from pointing at a newcomer. As for IPv4, the store's
 * `/ipam/<network>/<ip>` key, created only if absent, decides; the sets here are its rebuildable view.
 */
export class NetworkAllocator6 extends AddressBook<bigint, Cidr6, SubnetPool6> {
  constructor(network: string, subnets: { cidr: Cidr6; gateway: bigint }[]) {
    super(network, subnets, IPV6);
  }

  get subnetCount(): number {
    return this.pools.length;
  }

  /** The next free address of the first subnet with room, as a reservation. */
  reserveNext(): Allocation {
    for (const pool of this.pools) {
      // At most every address in use and the gateway lie between the cursor and a free one; a small subnet
      // is walked at most once around.
      const size = pool.last - pool.first + 1n;
      const bound = BigInt(this.committed.size + this.reserved.size + 2);
      const tries = size < bound ? size : bound;
      let candidate = pool.cursor ?? pool.first;
      for (let i = 0n; i < tries; i++) {
        if (candidate > pool.last) candidate = pool.first;
        if (candidate !== pool.gateway && !this.committed.has(candidate) && !this.reserved.has(candidate)) {
          pool.cursor = candidate + 1n;
          return this.hand(pool, candidate);
        }
        candidate++;
      }
    }
    return this.full();
  }

  /** Reserves a requested address after checking it may be used and is free. */
  reserve(ipText: string): Allocation {
    const address = parseIPv6(ipText);
    if (address === undefined) throw new VxnetError('invalid_address', `ip ${quote(ipText)} is not a valid IPv6 address.`);
    const pool = this.pools.find((p) => contains6(p.cidr, address));
    const shown = formatIPv6(address);
    if (!pool) {
      const cidrs = this.pools.map((p) => p.text).join(', ') || 'none';
      throw new VxnetError('address_outside_subnet', `address ${shown} is not in any IPv6 subnet of network ${this.network} (${cidrs}).`);
    }
    if (address < pool.first) {
      throw new VxnetError('address_reserved', `address ${shown} is the Subnet-Router anycast address of ${pool.text} (RFC 4291).`);
    }
    if (address === pool.gateway) throw new VxnetError('address_reserved', `address ${shown} is the gateway of ${pool.text}.`);
    return this.take(pool, address, shown);
  }

  unreserve(ipText: string): void {
    const address = parseIPv6(ipText);
    if (address !== undefined) this.reserved.delete(address);
  }

  /** The store now holds this address: the cursor moves past it, so a restarted manager goes on where it was. */
  markUsed(ipText: string): void {
    const address = parseIPv6(ipText);
    if (address === undefined) return;
    this.committed.add(address);
    const pool = this.pools.find((p) => contains6(p.cidr, address));
    if (pool && address >= (pool.cursor ?? pool.first) && address < pool.last) pool.cursor = address + 1n;
  }

  markFree(ipText: string): void {
    const address = parseIPv6(ipText);
    if (address !== undefined) this.committed.delete(address);
  }
}
