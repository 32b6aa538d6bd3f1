/**
 * The agent's watch stream (newline-delimited JSON), one schema per message type. The manager sends each
 * agent only what concerns its node: every node (the VTEP list is cluster-wide and small), and the networks
 * in which the node has at least one endpoint together with all endpoints of those networks. An agent linked
 * to a Docker engine asks for every network (`networks=all`): it then also gets every network and
 * `network-deleted`, while endpoints stay filtered as before.
 */
import * as v from 'valibot';
import { DiagnoseRequestSchema } from './diagnose.ts';
import { EndpointSchema, Integer, NetworkSchema, NodeSchema } from './resources.ts';

export const WatchMessageSchema = v.variant('type', [
  v.object({
    type: v.literal('snapshot'),
    revision: Integer,
    nodes: v.array(NodeSchema),
    networks: v.array(NetworkSchema),
    endpoints: v.array(EndpointSchema),
  }),
  v.object({ type: v.literal('node'), revision: Integer, node: NodeSchema }),
  v.object({ type: v.literal('node-deleted'), revision: Integer, name: v.string() }),
  v.object({ type: v.literal('network'), revision: Integer, network: NetworkSchema }),
  /** the node no longer has endpoints on this network: drop its endpoints (and the network, unless all are watched) */
  v.object({ type: v.literal('network-forgotten'), revision: Integer, name: v.string() }),
  /** only with `networks=all`: the network was deleted */
  v.object({ type: v.literal('network-deleted'), revision: Integer, name: v.string() }),
  v.object({ type: v.literal('endpoint'), revision: Integer, endpoint: EndpointSchema }),
  v.object({ type: v.literal('endpoint-deleted'), revision: Integer, id: v.string(), network: v.string() }),
  /** keeps idle connections alive and tells the agent the current revision */
  v.object({ type: v.literal('ping'), revision: Integer }),
  /** an administrator's `vxnet trace` asks this node's agent to read its kernel (schema/diagnose.ts); changes no state */
  v.object({ type: v.literal('diagnose'), revision: Integer, id: v.string(), request: DiagnoseRequestSchema }),
]);

/** Every message type the stream carries: a client skips a line of any other type (a newer manager's). */
export const WATCH_MESSAGE_TYPES: ReadonlySet<string> = new Set(WatchMessageSchema.options.map((option) => option.entries.type.literal));
