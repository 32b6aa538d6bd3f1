/**
 * The names of one network as its gateway answers them: pure, kept up to date one endpoint at a time by the
 * renderer (desired.ts puts and removes endpoints as the view changes), so a change costs what it touches.
 *
 * What resolves, from an endpoint of network `blue`:
 * - `NAME` and `NAME.blue`: every endpoint of blue carrying NAME as its name or as an alias (A records);
 *   an endpoint without a name answers to the name of its namespace (`--netns web`), but only while no
 *   endpoint of the network carries that name or alias: it was never reserved, so it gives way.
 * - `D.C.B.A.in-addr.arpa` for an address inside blue's subnets: the endpoint's `NAME.blue` (PTR).
 * - On a network with IPv6 subnets (issue 15), AAAA answers each endpoint's IPv6 address as A its IPv4
 *   one, and `...ip6.arpa` (RFC 3596 nibbles) its name.
 * - Nothing of another network: each network has its own zone and its own gateway address.
 *
 * Answers carry TTL 0: no resolver keeps one, so a name never outlives its endpoint, and a name that is
 * missing is answered without an SOA record, which RFC 2308 §5 says must not be cached either (a name that
 * appears a moment later resolves at once).
 */
import { contains, parseCidr, parseIPv4, type Cidr } from '../../core/ipv4.ts';
import { contains6, formatIPv6, parseCidr6, parseIPv6, type Cidr6 } from '../../core/ipv6.ts';
import { endpointAddresses, type Endpoint, type Network } from '../../core/model.ts';
import { defaultEndpointName } from '../../core/names.ts';
import { addressOfReverseName, DNS_CLASS_IN, DnsRcode, DnsType, type DnsMessage, type DnsRecord } from '../../packet/dns.ts';

/** Seconds a resolver may keep an answer: none (see above). */
export const DNS_TTL = 0;

/**
 * Ids by lower-case name: one id as a plain string, a Set only once a second endpoint carries the name. Almost
 * every name belongs to one endpoint, and an agent holds the zones of every endpoint of its networks (18,000
 * in bench/scale): a Set and a record object per endpoint doubled the agent's heap per remote endpoint.
 */
type NameIndex = Map<string, string | Set<string>>;

/** What to do with a query: this answer, or forward it unchanged to the host's resolvers. */
export type ZoneDecision = { answer: DnsMessage } | 'forward';

export class NetworkZone {
  readonly network: string;
  readonly #suffix: string;
  readonly subnets: readonly Cidr[];
  readonly subnets6: readonly Cidr6[];
  /** the gateway addresses the network's zone is served on */
  readonly gateways: readonly string[];
  /**
   * The endpoints that answer to a name, by id: the very objects the view holds (their names are read from
   * them again on removal), so the zone keeps no copy. An endpoint without any name is not kept: it answers
   * nothing, and most endpoints of a large cluster have none.
   */
  readonly #records = new Map<string, Endpoint>();
  /** lower-case name → endpoint ids carrying it as name or alias */
  readonly #strong: NameIndex = new Map();
  /** lower-case name → endpoint ids answering to it by their namespace name */
  readonly #weak: NameIndex = new Map();
  /** address → endpoint id (of the endpoints kept) */
  readonly #byIp = new Map<string, string>();

  constructor(network: Network) {
    this.network = network.name;
    this.#suffix = `.${network.name.toLowerCase()}`;
    this.subnets = network.subnets.map((s) => parseCidr(s.cidr)).filter((c): c is Cidr => c !== undefined);
    this.subnets6 = network.subnets.map((s) => parseCidr6(s.cidr)).filter((c): c is Cidr6 => c !== undefined);
    this.gateways = network.subnets.map((s) => s.gateway);
  }

  /** How many endpoints answer to a name here. */
  get size(): number {
    return this.#records.size;
  }

  /** Adds or replaces `endpoint`; an endpoint whose attach failed answers nothing. */
  put(endpoint: Endpoint): void {
    this.remove(endpoint.id);
    if (endpoint.status === 'error') return;
    const id = endpoint.id;
    const weak = defaultEndpointName(endpoint);
    const aliases = endpoint.aliases ?? [];
    if (endpoint.name === undefined && weak === undefined && aliases.length === 0) return;
    this.#records.set(id, endpoint);
    if (endpoint.name !== undefined) add(this.#strong, endpoint.name.toLowerCase(), id);
    for (const alias of aliases) add(this.#strong, alias.toLowerCase(), id);
    if (weak !== undefined) add(this.#weak, weak.toLowerCase(), id);
    for (const { ip } of endpointAddresses(endpoint)) this.#byIp.set(ip, id);
  }

  remove(id: string): void {
    const endpoint = this.#records.get(id);
    if (!endpoint) return;
    this.#records.delete(id);
    if (endpoint.name !== undefined) drop(this.#strong, endpoint.name.toLowerCase(), id);
    for (const alias of endpoint.aliases ?? []) drop(this.#strong, alias.toLowerCase(), id);
    const weak = defaultEndpointName(endpoint);
    if (weak !== undefined) drop(this.#weak, weak.toLowerCase(), id);
    for (const { ip } of endpointAddresses(endpoint)) if (this.#byIp.get(ip) === id) this.#byIp.delete(ip);
  }

  /** The addresses `name` (one label, any case) resolves to in this network, sorted: IPv4, then IPv6. */
  addressesOf(name: string): string[] {
    const key = name.toLowerCase();
    const ids = this.#strong.get(key) ?? this.#weak.get(key);
    if (ids === undefined) return [];
    const all = (typeof ids === 'string' ? [ids] : [...ids]).flatMap((id) => endpointAddresses(this.#records.get(id)!).map((a) => a.ip));
    const v4 = all.filter((ip) => !ip.includes(':')).sort((a, b) => parseIPv4(a)! - parseIPv4(b)!);
    const v6 = all.filter((ip) => ip.includes(':')).sort((a, b) => (parseIPv6(a)! < parseIPv6(b)! ? -1 : 1));
    return [...v4, ...v6];
  }

  /** `NAME.NETWORK` of the endpoint holding `ip`, if it has a name. */
  nameOf(ip: string): string | undefined {
    const id = this.#byIp.get(ip);
    const endpoint = id === undefined ? undefined : this.#records.get(id);
    const display = endpoint === undefined ? undefined : (endpoint.name ?? defaultEndpointName(endpoint) ?? endpoint.aliases?.[0]);
    return display === undefined ? undefined : `${display}.${this.network}`;
  }

  /** Whether `ip` is inside one of the network's subnets (where queries come from, and what PTR answers for). */
  covers(ip: string): boolean {
    const value = parseIPv4(ip);
    if (value !== undefined) return this.subnets.some((subnet) => contains(subnet, value));
    const value6 = parseIPv6(ip);
    return value6 !== undefined && this.subnets6.some((subnet) => contains6(subnet, value6));
  }

  /** Answers `query` from this zone, or says to forward it. */
  decide(query: DnsMessage): ZoneDecision {
    if (query.response) return { answer: reply(query, DnsRcode.FORMERR, []) };
    if (query.opcode !== 0) return { answer: reply(query, DnsRcode.NOTIMP, []) };
    if (query.questions.length !== 1) return { answer: reply(query, DnsRcode.FORMERR, []) };
    const question = query.questions[0]!;
    if (question.class !== DNS_CLASS_IN) return 'forward';
    const asked = question.name.toLowerCase();

    const reverse = addressOfReverseName(asked) ?? addressOfReverseName6(asked);
    if (reverse !== undefined) {
      if (!this.covers(reverse)) return 'forward';
      const name = this.nameOf(reverse);
      if (name === undefined) return { answer: reply(query, DnsRcode.NXDOMAIN, []) };
      const wanted = question.type === DnsType.PTR || question.type === DnsType.ANY;
      return { answer: reply(query, DnsRcode.NOERROR, wanted ? [{ name: question.name, type: DnsType.PTR, class: DNS_CLASS_IN, ttl: DNS_TTL, target: name }] : []) };
    }

    const qualified = asked.endsWith(this.#suffix);
    const label = qualified ? asked.slice(0, -this.#suffix.length) : asked;
    if (label.includes('.') || label === '') {
      // a name under this network that is no endpoint's (nothing else is inside it) is answered here
      return qualified ? { answer: reply(query, DnsRcode.NXDOMAIN, []) } : 'forward';
    }
    const addresses = this.addressesOf(label);
    if (addresses.length === 0) return qualified ? { answer: reply(query, DnsRcode.NXDOMAIN, []) } : 'forward';
    const any = question.type === DnsType.ANY;
    const records: DnsRecord[] = [];
    for (const address of addresses) {
      const type = address.includes(':') ? DnsType.AAAA : DnsType.A;
      if (any || question.type === type) records.push({ name: question.name, type, class: DNS_CLASS_IN, ttl: DNS_TTL, address });
    }
    // the name exists: another type (AAAA of an IPv4-only endpoint) is an empty answer, not NXDOMAIN
    return { answer: reply(query, DnsRcode.NOERROR, records) };
  }
}

/** The address of an `ip6.arpa` name: 32 nibbles, lowest first (RFC 3596 section 2.5); undefined for anything else. */
export function addressOfReverseName6(name: string): string | undefined {
  const match = /^((?:[0-9a-f]\.){32})ip6\.arpa\.?$/i.exec(name);
  if (!match) return undefined;
  const hex = match[1]!.split('.').slice(0, 32).reverse().join('');
  return formatIPv6(BigInt(`0x${hex}`));
}

/** An authoritative answer to `query` with `answers`. */
export function reply(query: DnsMessage, rcode: number, answers: DnsRecord[]): DnsMessage {
  return {
    id: query.id,
    response: true,
    opcode: query.opcode,
    authoritative: rcode === DnsRcode.NOERROR || rcode === DnsRcode.NXDOMAIN,
    truncated: false,
    recursionDesired: query.recursionDesired,
    recursionAvailable: true,
    rcode,
    questions: query.questions.slice(0, 1),
    answers,
    authorities: [],
    additionals: [],
  };
}

function add(index: NameIndex, name: string, id: string): void {
  const ids = index.get(name);
  if (ids === undefined) index.set(name, id);
  else if (typeof ids !== 'string') ids.add(id);
  else if (ids !== id) index.set(name, new Set([ids, id]));
}

function drop(index: NameIndex, name: string, id: string): void {
  const ids = index.get(name);
  if (ids === undefined) return;
  if (typeof ids === 'string') {
    if (ids === id) index.delete(name);
    return;
  }
  ids.delete(id);
  // back to the plain string when one is left, so that a name shared for a while costs nothing after
  if (ids.size === 1) index.set(name, ids.values().next().value!);
}
