/**
 * Pure renderers: planned steps → lines for `ip -batch -` and `bridge -batch -`.
 *
 * Every value reaching these functions has been validated by the planner (addresses, MACs, interface
 * names, namespace paths), so a line never contains whitespace or quotes inside a value and cannot be
 * misparsed by iproute2's batch tokenizer.
 *
 * The FDB lines mirror each other on purpose: entries are added as `self permanent` (the VXLAN device's
 * own table, never aged out) and deleted with the same `self` flag and `dst`, so a delete removes exactly
 * the destination it is meant to and never touches the bridge's learned table. The bridge's own entries for
 * remote MACs are `master static` (`permanent` would make the bridge deliver them to the host itself).
 */
import { allAddresses, type DesiredEndpoint } from '../dataplane.ts';
import type { FdbStep, LinkStep, NeighbourStep } from './plan.ts';

export function renderLinkStep(step: LinkStep): string {
  switch (step.op) {
    case 'link-del':
      return `link del dev ${step.name}`;
    case 'bridge-add':
      return `link add name ${step.name}${step.mac === undefined ? '' : ` address ${step.mac}`} mtu ${step.mtu} type bridge`;
    case 'link-netns':
      return `link set dev ${step.name} netns ${step.netns}`;
    case 'gateway-add':
      return `link add name ${step.name} address ${step.mac} mtu ${step.mtu} type veth peer name ${step.peer} mtu ${step.mtu} netns ${step.netns}`;
    case 'vxlan-add': {
      const parts = [
        `link add name ${step.name} mtu ${step.mtu} type vxlan id ${step.vni} dstport ${step.port} local ${step.local}`,
      ];
      if (step.group !== undefined) parts.push(`group ${step.group} dev ${step.device} ttl ${step.ttl}`);
      parts.push('nolearning proxy');
      return parts.join(' ');
    }
    case 'link-set': {
      const parts = [`link set dev ${step.name}`];
      if (step.master !== undefined) parts.push(`master ${step.master}`);
      if (step.mtu !== undefined) parts.push(`mtu ${step.mtu}`);
      if (step.mac !== undefined) parts.push(`address ${step.mac}`);
      if (step.up) parts.push('up');
      return parts.join(' ');
    }
    case 'port-set':
      return `link set dev ${step.name} type bridge_slave learning ${step.learning ? 'on' : 'off'}`;
    case 'addr-add':
      return `addr add ${step.cidr} dev ${step.dev}${step.cidr.includes(':') ? ' nodad' : ''}`;
    case 'addr-del':
      return `addr del ${step.cidr} dev ${step.dev}`;
  }
}

export function renderNeighbourStep(step: NeighbourStep): string {
  switch (step.op) {
    case 'neigh-replace':
      return `neigh replace ${step.ip} lladdr ${step.mac} dev ${step.dev} nud permanent`;
    case 'neigh-del':
      return `neigh del ${step.ip} dev ${step.dev}`;
  }
}

export function renderFdbStep(step: FdbStep): string {
  switch (step.op) {
    case 'fdb-replace':
      return `fdb replace ${step.mac} dev ${step.dev} dst ${step.dst} self permanent`;
    case 'fdb-append':
      return `fdb append ${step.mac} dev ${step.dev} dst ${step.dst} self permanent`;
    case 'fdb-del':
      return `fdb del ${step.mac} dev ${step.dev} dst ${step.dst} self`;
    case 'fdb-static':
      return `fdb replace ${step.mac} dev ${step.dev} master static`;
    case 'fdb-static-del':
      return `fdb del ${step.mac} dev ${step.dev} master`;
  }
}

/**
 * The host-namespace line that creates an endpoint's veth pair with the peer already in the target
 * namespace. Both ends get the MTU at creation and the peer its MAC, so nothing about them has to change
 * later. Creating the peer where it belongs, in the same netlink message, costs half as much as creating
 * it here and moving it (a move unregisters and registers the device again: 25 against 48 ms measured
 * here). A Docker endpoint (no namespace) keeps its peer here, down, for libnetwork to move. `hostNetns`:
 * the network's namespace (netns.ts), where the host end is made in the same message.
 */
export function renderEndpointCreate(ep: DesiredEndpoint, hostNetns?: string): string[] {
  const add = `link add name ${ep.hostVeth} mtu ${ep.mtu}${hostNetns === undefined ? '' : ` netns ${hostNetns}`} type veth peer name ${ep.peerVeth} mtu ${ep.mtu} address ${ep.mac.toLowerCase()}`;
  return [ep.netns === undefined ? add : `${add} netns ${ep.netns}`];
}

/**
 * The same pair made from inside the container's namespace (`nsenter --net=PATH ip -batch -`), its host end
 * sent to the network's namespace `hostNetns` in the same message: then the lines of renderEndpointInside
 * follow in the same process, and an endpoint costs one process less than a pair made from the host (the
 * step the attach waited for; see endpoint-setup.ts).
 */
export function renderEndpointCreateInside(ep: DesiredEndpoint, hostNetns: string): string {
  return `link add name ${ep.peerVeth} mtu ${ep.mtu} address ${ep.mac.toLowerCase()} type veth peer name ${ep.hostVeth} mtu ${ep.mtu} netns ${hostNetns}`;
}

/**
 * Lines run inside the target namespace (`nsenter --net=PATH ip -batch -`, no -force: the first error
 * stops it and the endpoint is undone). `route replace` so the endpoint's gateway becomes the default route
 * even when the namespace came with one. IPv6 addresses (issue 15) are added `nodad`: the manager made them
 * unique, so duplicate address detection would only delay them and send solicitations; their default route
 * is `::/0` via the IPv6 gateway, and each other subnet goes via the gateway of its own family.
 */
export function renderEndpointInside(ep: DesiredEndpoint): string[] {
  const addresses = allAddresses(ep);
  const gatewayFor = (cidr: string) => addresses.find((a) => a.address.includes(':') === cidr.includes(':'))?.gateway;
  return [
    `link set dev ${ep.peerVeth} name ${ep.ifname}`,
    ...addresses.map(({ address }) => `addr add ${address} dev ${ep.ifname}${address.includes(':') ? ' nodad' : ''}`),
    `link set dev ${ep.ifname} up`,
    'link set dev lo up',
    ...addresses.map(({ address, gateway }) => `route replace ${address.includes(':') ? '::/0' : 'default'} via ${gateway} dev ${ep.ifname}`),
    ...ep.extraRoutes.flatMap((route) => {
      const gateway = gatewayFor(route);
      return gateway === undefined ? [] : [`route replace ${route} via ${gateway} dev ${ep.ifname}`];
    }),
  ];
}

/** The last step: enslave and raise the host end in one netlink message (the "setup completed" mark). */
export function renderEndpointAttach(ep: DesiredEndpoint): string {
  return `link set dev ${ep.hostVeth} master ${ep.bridge} up`;
}

export function renderEndpointUndo(ep: DesiredEndpoint): string {
  return `link del dev ${ep.hostVeth}`;
}

export function batchInput(lines: readonly string[]): string {
  return lines.length ? `${lines.join('\n')}\n` : '';
}
