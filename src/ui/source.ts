/**
 * What `vxnet ui` asks the manager for each view: info, nodes, networks and endpoints (four reads whatever
 * the number of networks), plus the detail of encrypted networks only, for their tunnels' state.
 */
import type { ManagerClient } from '../client/client.ts';
import type { NetworkDetail } from '../core/model.ts';
import { dashboardView, type DashboardView } from './view.ts';

export async function readDashboard(client: ManagerClient, now: () => Date, signal?: AbortSignal): Promise<DashboardView> {
  const [info, nodes, networks, endpoints] = await Promise.all([
    client.info(signal),
    client.listNodes(signal),
    client.listNetworks(signal),
    client.listEndpoints(undefined, signal),
  ]);
  const details: NetworkDetail[] = await Promise.all(
    networks.map(async (network) => {
      if (network.encrypted === true) return client.inspectNetwork(network.name, signal);
      return { ...network, endpoints: endpoints.filter((e) => e.network === network.name) };
    }),
  );
  return dashboardView(info, nodes, details, now());
}
