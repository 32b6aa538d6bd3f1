/**
 * The error catalogue. Every failure a user can cause has a stable code, one clear sentence and the HTTP
 * status the manager answers with. Errors are created in the core and translated only at the edges
 * (HTTP status, CLI exit code, Docker `Err`).
 */

export const ERROR_STATUS = {
  bad_request: 400,
  /** a Docker libnetwork plugin call whose body is not the request libnetwork defines (src/docker/api.ts) */
  bad_plugin_request: 400,
  invalid_name: 400,
  invalid_vni: 400,
  invalid_cidr: 400,
  invalid_address: 400,
  invalid_mtu: 400,
  invalid_port: 400,
  gateway_outside_subnet: 400,
  address_outside_subnet: 400,
  address_reserved: 400,
  mtu_too_large: 400,
  unauthorized: 401,
  forbidden: 403,
  /** request body over the manager's 1 MiB limit */
  payload_too_large: 413,
  network_not_found: 404,
  node_not_found: 404,
  endpoint_not_found: 404,
  /** no reservation of that address held by that node (Docker IPAM release, adoption) */
  reservation_not_found: 404,
  not_found: 404,
  vni_in_use: 409,
  network_exists: 409,
  subnet_overlap: 409,
  address_in_use: 409,
  subnet_full: 409,
  /** no free /24 left in DEFAULT_SUBNET_POOL for a network created without subnets */
  subnet_pool_exhausted: 409,
  network_in_use: 409,
  /** `DELETE /v1/nodes/:name` without `drain` while the node still has endpoints */
  node_in_use: 409,
  endpoint_exists: 409,
  netns_not_found: 422,
  attach_failed: 422,
  /** a host tool (ip, bridge, nft, nsenter) the agent ran exited non-zero or could not be started */
  host_tool_failed: 500,
  /** the node's Docker engine refused a request, answered badly or could not be reached */
  docker_engine_failed: 502,
  timeout: 504,
  /** the manager could not be reached (client side) */
  unavailable: 503,
  /** the manager's CA or certificate is not the one the token or --ca pins (client side) */
  untrusted_manager: 502,
  /** a join with the worker token for the name of a registered node (docs/security.md, hole 3) */
  node_exists: 409,
  /** a node certificate the manager no longer honours: its node was removed or joined again (docs/security.md, hole 5) */
  certificate_revoked: 401,
  /** a node certificate asked for more addresses on a network than the manager allows a node (--max-endpoints-per-node) */
  quota_exceeded: 403,
  /** a mistake in the command line (the CLI exits with status 2); never sent by the manager */
  usage: 400,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class VxnetError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VxnetError';
    this.code = code;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}

/**
 * A value someone sent, for an error message: JSON-quoted, so a newline or any control character shows as an
 * escape and the message stays one line, and cut to `max` characters, so a 100 kB name gives a short sentence.
 */
export function quote(value: unknown, max = 40): string {
  if (typeof value === 'string') return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The message of anything thrown, for logs and status reports. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
