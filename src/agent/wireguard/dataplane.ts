/**
 * The data plane of a node with encrypted networks: the tunnel first, then the kernel data plane.
 *
 * A pass brings the WireGuard device to the desired tunnel (peers, address, the blackhole route) before the
 * inner data plane creates or changes any VXLAN device, so an encrypted network's device never exists
 * without the blackhole that keeps its frames off the underlay. Should the blackhole not be in place, or the
 * node have no WireGuard at all, the encrypted networks are left out of the pass and their local endpoints
 * told why: fail closed, never a plain VXLAN path for them. The VXLAN filter learns the tunnel device and
 * the encrypted VNIs (nftables.ts).
 */
import { messageOf } from '../../core/errors.ts';
import type { Dataplane, DesiredState, ReconcileResult, VxlanFilter } from '../dataplane.ts';
import type { Tunnel } from './tunnel.ts';

export class TunnelledDataplane implements Dataplane {
  readonly #inner: Dataplane & { close?(): Promise<void> };
  readonly #tunnel: Tunnel | undefined;
  /** why the node has no tunnel (told to the endpoints of encrypted networks) */
  readonly #missing: string;
  #filterOf: { source: VxlanFilter; key: string; filter: VxlanFilter } | undefined;

  constructor(inner: Dataplane & { close?(): Promise<void> }, tunnel: Tunnel | undefined, missing = 'this node has no WireGuard') {
    this.#inner = inner;
    this.#tunnel = tunnel;
    this.#missing = missing;
  }

  async reconcile(desired: DesiredState, signal?: AbortSignal): Promise<ReconcileResult> {
    let tunnelError: string | undefined;
    if (this.#tunnel) {
      try {
        await this.#tunnel.apply(desired.tunnel, signal);
      } catch (err) {
        tunnelError = `WireGuard ${this.#tunnel.device}: ${messageOf(err)}`;
      }
    }
    const safe = this.#tunnel?.blackholed === true;
    const state = safe ? desired : withoutEncrypted(desired);
    const result = await this.#inner.reconcile({ ...state, vxlanFilter: this.#filter(desired) }, signal);
    if (!safe) {
      const reason = tunnelError ?? this.#missing;
      for (const id of encryptedEndpoints(desired)) result.endpointErrors.set(id, `its network is encrypted and ${reason}`);
    }
    if (tunnelError !== undefined) result.error = result.error ? `${result.error}; ${tunnelError}` : tunnelError;
    return result;
  }

  /** The desired filter with the tunnel device and the encrypted VNIs; the same object while they stay. */
  #filter(desired: DesiredState): VxlanFilter {
    const vnis = desired.networks.filter((n) => n.encrypted === true).map((n) => n.vni);
    const key = `${this.#tunnel?.device ?? ''}/${vnis.join(',')}`;
    if (this.#filterOf?.source !== desired.vxlanFilter || this.#filterOf.key !== key) {
      const filter: VxlanFilter = {
        ...desired.vxlanFilter,
        ...(this.#tunnel ? { tunnelDevice: this.#tunnel.device } : {}),
        ...(vnis.length > 0 ? { encryptedVnis: vnis } : {}),
      };
      this.#filterOf = { source: desired.vxlanFilter, key, filter };
    }
    return this.#filterOf.filter;
  }

  async close(): Promise<void> {
    this.#tunnel?.close();
    await this.#inner.close?.();
  }
}

/** The desired state without the encrypted networks and everything on them. */
export function withoutEncrypted(desired: DesiredState): DesiredState {
  const encrypted = desired.networks.filter((n) => n.encrypted === true);
  if (encrypted.length === 0) return desired;
  const vxlans = new Set(encrypted.map((n) => n.vxlan));
  const bridges = new Set(encrypted.map((n) => n.bridge));
  const { tunnel: _tunnel, ...rest } = desired;
  return {
    ...rest,
    networks: desired.networks.filter((n) => n.encrypted !== true),
    peers: desired.peers.filter((p) => !vxlans.has(p.vxlan)),
    floods: desired.floods.filter((f) => !vxlans.has(f.vxlan)),
    endpoints: desired.endpoints.filter((e) => !bridges.has(e.bridge)),
  };
}

function encryptedEndpoints(desired: DesiredState): string[] {
  const bridges = new Set(desired.networks.filter((n) => n.encrypted === true).map((n) => n.bridge));
  return desired.endpoints.filter((e) => bridges.has(e.bridge)).map((e) => e.id);
}
