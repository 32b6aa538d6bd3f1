/**
 * The local API between the CNI plugin and its agent: HTTP/JSON on the agent's unix socket (`--cni-socket`,
 * mode 0600, so only root reaches it). One POST per verb; the body names the container, its namespace and
 * interface and the vxnet network. Success is 200 with the endpoint (ADD, CHECK) or `{}` (DEL); a refusal is
 * an error status with `{cniCode, message, details}`: the agent knows what went wrong, so it also picks the
 * CNI error code, and the plugin only forwards it.
 */
import type { AttachedEndpoint } from './protocol.ts';

export const CNI_API_PATHS = { ADD: '/v1/cni/add', DEL: '/v1/cni/del', CHECK: '/v1/cni/check' } as const;

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

export type CniAgentAnswer = AttachedEndpoint | Record<string, never>;

export interface CniAgentRefusal {
  cniCode: number;
  message: string;
  details?: string;
}
