/**
 * Pure parts of the tunnel: which peers this node's WireGuard needs, the `wg set` and `ip` arguments that
 * make it so, and the device name.
 *
 * Peers are the nodes of the remote endpoints of this node's encrypted networks, nothing else: a node that
 * shares no encrypted network with us is not a peer, so it cannot complete a handshake with us even though
 * its public key is known cluster-wide. Each peer's allowed IP is its tunnel address alone, so WireGuard
 * lets in only that source from that key, and the blackhole route of the whole range (tunnel.ts) drops
 * what has no live tunnel.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { parseCidr } from '../../core/ipv4.ts';
import type { Node, TunnelStatus } from '../../core/model.ts';
import { TUNNEL_POOL, isWireguardKey } from '../../core/wireguard.ts';
import type { DesiredFlood, DesiredNetwork } from '../dataplane.ts';

/** Keepalive every 25 s (WireGuard's own suggestion), so a peer behind NAT or a stateful firewall stays reachable. */
export const KEEPALIVE_SECONDS = 25;
/** The route that drops tunnel traffic without a tunnel: far behind the device's own route (metric 0). */
export const BLACKHOLE_METRIC = 4242;

export interface TunnelPeer {
  readonly node: string;
  readonly publicKey: string;
  /** "10.99.0.12:51820": the peer's underlay address and WireGuard port */
  readonly endpoint: string;
  /** the peer's tunnel address */
  readonly tunnelAddress: string;
}

/**
 * The `rps_cpus` bitmap of every CPU of a host with `cpus` of them: hexadecimal, in comma-separated 32-bit
 * groups, most significant first, as /sys/class/net/DEV/queues/rx-N/rps_cpus takes it ("3" for 2 CPUs,
 * "ff,ffffffff" for 40).
 */
export function rpsMask(cpus: number): string {
  const count = Math.max(1, Math.floor(cpus));
  const groups: string[] = [];
  for (let low = 0; low < count; low += 32) {
    const bits = Math.min(32, count - low);
    groups.unshift((bits === 32 ? 0xffffffff : 2 ** bits - 1).toString(16));
  }
  // every group but the first is written in full width
  return groups.map((g, i) => (i === 0 ? g : g.padStart(8, '0'))).join(',');
}

/** The tunnel this node needs: absent when none of its encrypted networks is wanted here. */
export interface DesiredTunnel {
  /** this node's tunnel address with the range's prefix, "10.201.0.2/16" */
  readonly address: string;
  /** sorted by node name */
  readonly peers: readonly TunnelPeer[];
}

/**
 * The device name: unique on the machine, since wireguard-go's control socket (/var/run/wireguard/NAME.sock)
 * is shared by every network namespace, and kept clear of the data plane's `vxn` prefix, whose links it
 * prunes. Derived from the state directory, which is one agent's own.
 */
export function tunnelDeviceName(stateDir: string): string {
  return `vxw${createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 10)}`;
}

export function tunnelPrefix(): number {
  return parseCidr(TUNNEL_POOL)!.prefix;
}

/**
 * The tunnel for the encrypted networks among `networks`: peers are the nodes behind their flood entries
 * (one per remote node of a network, whose `vtep` is that node's tunnel address). A node without a key or
 * tunnel address is left out: no tunnel, so its frames meet the blackhole route.
 */
export function desiredTunnel(
  nodes: Iterable<Node>,
  selfName: string,
  networks: readonly DesiredNetwork[],
  floods: readonly DesiredFlood[],
): DesiredTunnel | undefined {
  const encrypted = new Set(networks.filter((n) => n.encrypted === true).map((n) => n.vxlan));
  if (encrypted.size === 0) return undefined;
  let self: Node | undefined;
  const byTunnel = new Map<string, Node>();
  for (const node of nodes) {
    if (node.name === selfName) self = node;
    else if (node.tunnelAddress !== undefined) byTunnel.set(node.tunnelAddress, node);
  }
  if (self?.tunnelAddress === undefined) return undefined;
  const peers = new Map<string, TunnelPeer>();
  for (const flood of floods) {
    if (!encrypted.has(flood.vxlan)) continue;
    const node = byTunnel.get(flood.vtep);
    const wg = node?.wireguard;
    if (!node || !wg || !isWireguardKey(wg.publicKey)) continue;
    peers.set(node.name, { node: node.name, publicKey: wg.publicKey, endpoint: wireguardEndpoint(node.address, wg.port), tunnelAddress: flood.vtep });
  }
  return {
    address: `${self.tunnelAddress}/${tunnelPrefix()}`,
    peers: [...peers.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)),
  };
}

/** `wg set`'s `endpoint`: an IPv6 underlay address goes in brackets, as in a URL ("[fd99::3]:51820"). */
export const wireguardEndpoint = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * `wg set` arguments that make the device's peers exactly `peers`: every wanted peer (re)stated, every other
 * one in `present` removed. Stating a peer again keeps its session; only a changed endpoint moves it.
 */
export function wgSetArgs(device: string, privateKeyFile: string, port: number, peers: readonly TunnelPeer[], present: Iterable<string>): string[] {
  const argv = ['wg', 'set', device, 'listen-port', String(port), 'private-key', privateKeyFile];
  const wanted = new Set(peers.map((p) => p.publicKey));
  for (const peer of peers) {
    argv.push('peer', peer.publicKey, 'endpoint', peer.endpoint, 'allowed-ips', `${peer.tunnelAddress}/32`, 'persistent-keepalive', String(KEEPALIVE_SECONDS));
  }
  for (const key of present) if (!wanted.has(key)) argv.push('peer', key, 'remove');
  return argv;
}

export interface PeerStatus {
  publicKey: string;
  /** seconds since the epoch; 0: never */
  latestHandshake: number;
  /** how long nothing came from the peer (Silence); absent: not known */
  silentSeconds?: number;
}

/** WireGuard drops a session this long after its handshake (REJECT_AFTER_TIME, 180 s): older means down. */
export const SESSION_SECONDS = 180;

/**
 * A peer that works sends us something at least every other KEEPALIVE_SECONDS (its persistent keepalive
 * restarts with every packet either way, so two idle peers may take turns), or 10 s after data it had no
 * answer to (WireGuard's passive keepalive). Three intervals without a byte from it mean the path is gone,
 * long before the session's 180 s run out.
 */
export const SILENT_SECONDS = 3 * KEEPALIVE_SECONDS;

/**
 * The peers' status for the heartbeat: by node, up while their last handshake is younger than a session
 * and something came from them within SILENT_SECONDS.
 */
export function tunnelStatus(peers: readonly TunnelPeer[], dump: readonly PeerStatus[], nowSeconds: number): TunnelStatus[] {
  const byKey = new Map(dump.map((p) => [p.publicKey, p]));
  return peers.map((peer) => {
    const latest = byKey.get(peer.publicKey)?.latestHandshake ?? 0;
    const silent = byKey.get(peer.publicKey)?.silentSeconds ?? 0;
    return {
      node: peer.node,
      up: latest > 0 && nowSeconds - latest < SESSION_SECONDS && silent < SILENT_SECONDS,
      latestHandshake: latest > 0 ? new Date(latest * 1000).toISOString() : null,
    };
  });
}

/**
 * How long each peer has sent nothing: its received-bytes counter (`wg show DEVICE transfer`) is compared
 * with the last reading; a counter seen for the first time, or changed, counts as "just now".
 */
export class Silence {
  readonly #seen = new Map<string, { bytes: number; sinceMs: number }>();

  /** Takes the counters read at `nowMs`; returns each peer's silence in seconds. */
  observe(received: ReadonlyMap<string, number>, nowMs: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, bytes] of received) {
      const last = this.#seen.get(key);
      const sinceMs = last === undefined || last.bytes !== bytes ? nowMs : last.sinceMs;
      this.#seen.set(key, { bytes, sinceMs });
      out.set(key, (nowMs - sinceMs) / 1000);
    }
    for (const key of [...this.#seen.keys()]) if (!received.has(key)) this.#seen.delete(key);
    return out;
  }
}

/** `wg show DEVICE dump`: each peer's received bytes (the sixth field of a peer line). */
export function receivedBytes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n').slice(1)) {
    const fields = line.split('\t');
    if (isWireguardKey(fields[0]) && /^\d+$/.test(fields[5] ?? '')) out.set(fields[0], Number(fields[5]));
  }
  return out;
}

/** A peer list that did not change (up or down) is sent again at least this often (a restarted manager forgets). */
export const STATUS_REFRESH_MS = 60_000;

/**
 * What goes with a heartbeat: the peers when their up/down changed since the last report or the last one is
 * a minute old, an empty list once when the tunnel went away, otherwise nothing (the manager keeps the last
 * report). A heartbeat carrying every peer every 5 s would cost a network of 1,000 nodes 20 MB/s at the
 * manager.
 */
export class StatusReports {
  #sentKey: string | undefined;
  #sentAt = 0;

  next(current: readonly TunnelStatus[] | undefined, nowMs: number): TunnelStatus[] | undefined {
    if (current === undefined) {
      if (this.#sentKey === undefined) return undefined;
      this.#sentKey = undefined;
      return [];
    }
    const key = current.map((t) => `${t.node}:${t.up}`).join(',');
    if (key === this.#sentKey && nowMs - this.#sentAt < STATUS_REFRESH_MS) return undefined;
    this.#sentKey = key;
    this.#sentAt = nowMs;
    return [...current];
  }
}

/** `wg show DEVICE dump`: the first line is the interface, then one line per peer, tab-separated. */
export function parseWgDump(text: string): PeerStatus[] {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  return lines.slice(1).flatMap((line) => {
    const fields = line.split('\t');
    const publicKey = fields[0] ?? '';
    if (!isWireguardKey(publicKey)) return [];
    return [{ publicKey, latestHandshake: Number(fields[4]) || 0 }];
  });
}
