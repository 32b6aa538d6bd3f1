/**
 * The harness's own record of the cluster it drives: which endpoints exist where. From it come the
 * expectations the agents are checked against (how many remote and local endpoints each one must end up
 * with, and a digest of exactly which), and the choice of what steady churn creates and deletes.
 */
import type { Expectation } from './protocol.ts';
import { type SimNetwork, type Topology, endpointIp, expectedPeerDigest, hostAddress, hostName, prng } from './topology.ts';

export interface Ep {
  /** empty until the create call answered */
  id: string;
  net: number;
  host: number;
  ip: string;
  /** a create or delete call is in flight */
  busy: boolean;
  slot: number;
}

export interface NetState {
  sim: SimNetwork;
  live: Ep[];
  /** host index → its endpoints here (hosts with none are not in the map: they are not interested) */
  countByHost: Map<number, number>;
  /** next address sequence number: never reused, so (network, address) names one endpoint for the whole run */
  next: number;
}

export class Model {
  readonly nets: NetState[];
  readonly random: () => number;
  #cumulative: number[];

  constructor(topology: Topology, seed: number) {
    this.random = prng(seed ^ 0x5eed);
    this.nets = topology.networks.map((sim) => ({ sim, live: [], countByHost: new Map(), next: 0 }));
    let sum = 0;
    this.#cumulative = topology.networks.map((n) => (sum += n.perMember.reduce((a, b) => a + b, 0)));
  }

  /** A new endpoint of `net` on `host` with the next unused address (counted at once, before it is created). */
  allocate(net: number, host: number): Ep {
    const state = this.nets[net]!;
    const ep: Ep = { id: '', net, host, ip: endpointIp(state.sim, state.next++), busy: true, slot: -1 };
    this.add(ep);
    return ep;
  }

  add(ep: Ep): void {
    const state = this.nets[ep.net]!;
    ep.slot = state.live.length;
    state.live.push(ep);
    state.countByHost.set(ep.host, (state.countByHost.get(ep.host) ?? 0) + 1);
  }

  remove(ep: Ep): void {
    const state = this.nets[ep.net]!;
    if (ep.slot < 0 || state.live[ep.slot] !== ep) return;
    const last = state.live.pop()!;
    if (last !== ep) {
      state.live[ep.slot] = last;
      last.slot = ep.slot;
    }
    ep.slot = -1;
    const n = (state.countByHost.get(ep.host) ?? 1) - 1;
    if (n > 0) state.countByHost.set(ep.host, n);
    else state.countByHost.delete(ep.host);
  }

  /** A network, weighted by its initial number of endpoints (each endpoint equally likely to churn). */
  pickNetwork(among?: number[]): number {
    if (among) return among[Math.floor(this.random() * among.length)]!;
    const x = this.random() * this.#cumulative.at(-1)!;
    let lo = 0;
    let hi = this.#cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  pickMember(net: number): number {
    const members = this.nets[net]!.sim.members;
    return members[Math.floor(this.random() * members.length)]!;
  }

  /** An endpoint that can be deleted without its host leaving the network (steady churn keeps memberships). */
  pickDeletable(net: number): Ep | undefined {
    const state = this.nets[net]!;
    for (let attempt = 0; attempt < 64 && state.live.length > 0; attempt++) {
      const ep = state.live[Math.floor(this.random() * state.live.length)]!;
      if (!ep.busy && ep.id !== '' && (state.countByHost.get(ep.host) ?? 0) >= 2) return ep;
    }
    return undefined;
  }

  /** What each of `hosts` must hold: remote endpoints of its networks, and its own endpoints. */
  expectations(hosts: number[]): Expectation[] {
    const peers = new Map<number, number>(hosts.map((h) => [h, 0]));
    const locals = new Map<number, number>(hosts.map((h) => [h, 0]));
    for (const state of this.nets) {
      const total = state.live.length;
      for (const [host, count] of state.countByHost) {
        if (!peers.has(host)) continue;
        peers.set(host, peers.get(host)! + total - count);
        locals.set(host, locals.get(host)! + count);
      }
    }
    return hosts.map((h) => [h, peers.get(h)!, locals.get(h)!]);
  }

  /** The digest of the peers each host's desired state must hold (see topology.peerDigest). */
  digests(): Map<number, { peers: number; digest: number }> {
    const out = new Map<number, { peers: number; digest: number }>();
    for (const state of this.nets) {
      let netSum = 0;
      const byHost = new Map<number, number>();
      for (const ep of state.live) {
        const d = expectedPeerDigest(state.sim, ep.ip, hostAddress(ep.host));
        netSum = (netSum + d) >>> 0;
        byHost.set(ep.host, ((byHost.get(ep.host) ?? 0) + d) >>> 0);
      }
      for (const [host, count] of state.countByHost) {
        const entry = out.get(host) ?? { peers: 0, digest: 0 };
        entry.peers += state.live.length - count;
        entry.digest = (entry.digest + netSum - (byHost.get(host) ?? 0)) >>> 0;
        out.set(host, entry);
      }
    }
    return out;
  }

  endpointCount(): number {
    return this.nets.reduce((a, n) => a + n.live.length, 0);
  }
}

export { hostName };
