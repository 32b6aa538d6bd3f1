/**
 * The agent's start-up of encryption: the key pair, the implementation this host offers, and the data plane
 * that puts the tunnel before the kernel data plane. A host without WireGuard still runs the agent; its node
 * registers without a key and cannot take part in encrypted networks (the manager says so to whoever asks).
 */
import type { TunnelStatus, WireguardReport } from '../../core/model.ts';
import { WIREGUARD_PORT } from '../../core/wireguard.ts';
import type { Dataplane } from '../dataplane.ts';
import { TunnelledDataplane } from './dataplane.ts';
import { loadOrCreateKeys } from './keys.ts';
import { KeyRotation, type KeyRotationOptions } from './rotation.ts';
import { StatusReports, tunnelDeviceName } from './render.ts';
import { detectImplementation, Tunnel } from './tunnel.ts';

export interface WireguardSetup {
  /** what the node registers with; absent: no WireGuard here */
  report?: WireguardReport;
  dataplane: Dataplane & { close(): Promise<void> };
  /** the tunnel's peers for the next heartbeat, when there is news (StatusReports) */
  tunnels(): TunnelStatus[] | undefined;
  /** follows `vxnet node rotate-key`: give it the node's `keyRotation` at every view change */
  rotation?(options: Pick<KeyRotationOptions, 'register' | 'signal'>): KeyRotation;
}

export async function setUpWireguard(
  inner: Dataplane & { close(): Promise<void> },
  options: { stateDir: string; underlayMtu: number; ipv6Underlay?: boolean; port?: number; log: (line: string) => void },
): Promise<WireguardSetup> {
  const device = tunnelDeviceName(options.stateDir);
  // the probe's name is as unique on the machine as the device's
  const found = await detectImplementation(`vxwp${device.slice(3, 13)}`);
  if (found.implementation === undefined) {
    const reason = `this host has no WireGuard: ${found.reason}`;
    options.log(`warning: ${reason}; this node cannot take part in encrypted networks`);
    return { dataplane: new TunnelledDataplane(inner, undefined, reason), tunnels: () => undefined };
  }
  const keys = loadOrCreateKeys(options.stateDir);
  const port = options.port ?? WIREGUARD_PORT;
  const tunnel = new Tunnel({ device, implementation: found.implementation, keys, port, underlayMtu: options.underlayMtu, ...(options.ipv6Underlay ? { ipv6Underlay: true } : {}), log: options.log });
  options.log(`WireGuard: ${found.implementation} on device ${device}, port ${port}, public key ${keys.publicKey}`);
  const reports = new StatusReports();
  const report: WireguardReport = { publicKey: keys.publicKey, port, implementation: found.implementation };
  return {
    report,
    dataplane: new TunnelledDataplane(inner, tunnel),
    tunnels: () => reports.next(tunnel.status(), Date.now()),
    rotation: (o) => new KeyRotation({ ...o, stateDir: options.stateDir, report, rekey: () => tunnel.rekey(), log: options.log }),
  };
}
