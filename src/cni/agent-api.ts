/**
 * The local API between the CNI plugin and its agent: HTTP/JSON on the agent's unix socket (`--cni-socket`,
 * mode 0600, so only root reaches it). One POST per verb; the body names the container, its namespace and
 * interface and the vxnet network. Success is 200 with the endpoint (ADD, CHECK) or `{}` (DEL, STATUS, GC); a refusal is
 * an error status with `{cniCode, message, details}`: the agent knows what went wrong, so it also picks the
 * CNI error code, and the plugin only forwards it.
 */
import type { AttachedEndpoint } from './protocol.ts';

export const CNI_API_PATHS = { ADD: '/v1/cni/add', DEL: '/v1/cni/del', CHECK: '/v1/cni/check', STATUS: '/v1/cni/status', GC: '/v1/cni/gc' } as const;
/** The verbs about one container interface. */
export type CniContainerVerb = 'ADD' | 'DEL' | 'CHECK';

export interface CniAgentRequest {
  containerId: string;
  /** '' on a DEL whose namespace is gone */
  netns: string;
  ifname: string;
  network: string;
  /** ADD only: CNI_ARGS IP= */
  ip?: string;
  /** ADD only: CNI_ARGS MAC= (lower case) */
  mac?: string;
}

/** STATUS: can the agent serve ADD on this network now (its manager reachable, the network there)? */
export interface CniStatusRequest {
  network: string;
}

/** GC: the attachments the runtime keeps on `network`; the agent deletes its other CNI endpoints there. */
export interface CniGcRequest {
  network: string;
  valid: { containerId: string; ifname: string }[];
}

export type CniAgentBody = CniAgentRequest | CniStatusRequest | CniGcRequest;

export type CniAgentAnswer = AttachedEndpoint | Record<string, never>;

export interface CniAgentRefusal {
  cniCode: number;
  message: string;
  details?: string;
}
