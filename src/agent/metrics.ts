/**
 * The agent's Prometheus metrics (`vxnet agent --metrics-listen ADDR:PORT`): what its reconcile loop did
 * and how long it took, its watch of the manager, and what the kernel's VXLAN allow-list dropped.
 */
import { Registry } from '../core/metrics.ts';
import type { ReconcileResult } from './dataplane.ts';
import { createRunner, type Runner } from './kernel/exec.ts';
import { VXLAN_FILTER_CHAIN } from './kernel/nftables.ts';
import { UNDERLAY6_TABLE } from './kernel/underlay6.ts';
import { parseVxlanFilterDrops } from './kernel/read.ts';
import { OWNED_NFT_TABLE } from './dataplane.ts';

/** What the agent's loop tells whoever watches it (the metrics; nothing else needs it yet). */
export interface AgentObserver {
  /** a reconcile pass ended (also one that threw: then `result.error` says why) */
  pass(result: ReconcileResult, seconds: number, revision: number): void;
  /** the watch of the manager ended or failed; the agent reconnects */
  watchLost(): void;
}

export class AgentMetrics implements AgentObserver {
  readonly registry = new Registry();
  readonly #passes = this.registry.counter('vxnet_agent_reconcile_passes_total', 'Reconcile passes, by outcome (ok, or error: retried with backoff).', ['result']);
  readonly #passSeconds = this.registry.histogram('vxnet_agent_reconcile_duration_seconds', 'Duration of reconcile passes.');
  readonly #changes = this.registry.counter('vxnet_agent_kernel_changes_total', 'Kernel objects (links, addresses, entries, rule sets) created, changed or deleted by reconcile passes; changes on a pass with nothing new are drift repaired.');
  readonly #endpointErrors = this.registry.counter('vxnet_agent_endpoint_errors_total', 'Local endpoints a pass could not set up (each is retried).');
  readonly #watchLost = this.registry.counter('vxnet_agent_watch_reconnects_total', 'Times the watch of the manager ended or failed and the agent reconnected.');
  readonly #revision = this.registry.gauge('vxnet_agent_applied_revision', 'Cluster revision of the desired state the last pass applied.');

  /** `underlay6`: this node's underlay is IPv6, so the allow-list's drops are counted in table ip6 vxnet_underlay too */
  constructor(run: Runner = createRunner(), underlay6 = false) {
    this.registry.gauge('vxnet_agent_vxlan_filter_dropped_packets', 'VXLAN packets the allow-list dropped since its table was last installed (not a member node, or not the underlay device).', [], async (gauge) => {
      // and, over an IPv6 underlay, its twin in table ip6 vxnet_underlay (kernel/underlay6.ts)
      const tables = [['ip', OWNED_NFT_TABLE], ...(underlay6 ? [['ip6', UNDERLAY6_TABLE]] : [])];
      const results = await Promise.all(tables.map((table) => run.run(['nft', '-j', 'list', 'chain', ...table!, VXLAN_FILTER_CHAIN], { allowFailure: true })));
      gauge.set(results.reduce((sum, result) => sum + (result.code === 0 ? (parseVxlanFilterDrops(result.stdout) ?? 0) : 0), 0));
    });
  }

  pass(result: ReconcileResult, seconds: number, revision: number): void {
    this.#passes.inc({ result: result.error ? 'error' : 'ok' });
    this.#passSeconds.observe(seconds);
    this.#changes.inc(result.changes);
    this.#endpointErrors.inc(result.endpointErrors.size);
    this.#revision.set(revision);
  }

  watchLost(): void {
    this.#watchLost.inc();
  }
}
