/**
 * The manager's Prometheus metrics (`vxnet manager --metrics-listen ADDR:PORT`): the API's requests by route
 * and status, and the cluster as the manager sees it (nodes by state, networks, endpoints, agents watching),
 * read at each scrape.
 */
import { Registry } from '../core/metrics.ts';
import type { ManagerService } from './service.ts';
import type { WatchHub } from './watch-hub.ts';

export class ManagerMetrics {
  readonly registry = new Registry();
  readonly #requests = this.registry.counter('vxnet_manager_http_requests_total', 'API requests answered, by route and HTTP status.', ['route', 'code']);
  readonly #seconds = this.registry.histogram('vxnet_manager_http_request_duration_seconds', 'Time to answer API requests (watch streams not included).', ['route']);

  constructor(service: ManagerService, hub: WatchHub) {
    this.registry.gauge('vxnet_manager_nodes', 'Registered nodes, by state (up: heard from within --node-down-after).', ['state'], (gauge) => {
      const counts = new Map<string, number>([['up', 0], ['down', 0]]);
      for (const node of service.listNodes()) counts.set(node.state, (counts.get(node.state) ?? 0) + 1);
      for (const [state, count] of counts) gauge.set({ state }, count);
    });
    this.registry.gauge('vxnet_manager_networks', 'Networks defined.', [], (gauge) => gauge.set(service.listNetworks().length));
    this.registry.gauge('vxnet_manager_endpoints', 'Endpoints attached, on all nodes.', [], (gauge) => gauge.set(service.listEndpoints().length));
    this.registry.gauge('vxnet_manager_watch_sessions', 'Agents watching the manager (open watch streams).', [], (gauge) => gauge.set(hub.sessionCount));
  }

  /** An answered request (ApiContext.observe). */
  observe = (route: string, status: number, seconds: number): void => {
    this.#requests.inc({ route, code: String(status) });
    this.#seconds.observe({ route }, seconds);
  };
}
