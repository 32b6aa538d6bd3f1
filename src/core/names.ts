/**
 * Validation of user-chosen names. Names end up in kernel object names, store keys and URLs, so they are
 * restricted to a conservative alphabet and never reach a shell.
 */
import { VxnetError, quote } from './errors.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** Linux IFNAMSIZ is 16 including the terminating NUL. */
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
/** An absolute path of a conservative alphabet (isNetnsPath also refuses `..` components). */
const NETNS_PATH = /^\/[A-Za-z0-9_.\/-]+$/;

/** A user-chosen name (network, node, namespace): 1-63 letters, digits, "_", "." or "-", starting with a letter or digit. */
export const isName = (value: unknown): value is string => typeof value === 'string' && NAME.test(value);
/** A Linux interface name: 1-15 such characters, and not "." or "..". */
export const isIfname = (value: unknown): value is string =>
  typeof value === 'string' && IFNAME.test(value) && value !== '.' && value !== '..';
/** An absolute namespace path (/run/netns/NAME, /proc/PID/ns/net, a runtime's bind mount) without `..`. */
export const isNetnsPath = (value: unknown): value is string =>
  typeof value === 'string' && NETNS_PATH.test(value) && !value.split('/').includes('..');

export function requireName(value: unknown, what: string): string {
  if (!isName(value)) {
    throw new VxnetError(
      'invalid_name',
      `${what} name ${quote(value)} is invalid: use 1-63 letters, digits, "_", "." or "-", starting with a letter or digit.`,
    );
  }
  return value;
}

export function requireIfname(value: unknown): string {
  if (!isIfname(value)) {
    throw new VxnetError(
      'invalid_name',
      `interface name ${quote(value)} is invalid: use 1-15 letters, digits, "_", "." or "-".`,
    );
  }
  return value;
}

/** Docker container names are `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, ids are hex; either may be given. */
const CONTAINER_REF = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function requireContainerRef(value: unknown): string {
  if (typeof value !== 'string' || !CONTAINER_REF.test(value)) {
    throw new VxnetError(
      'invalid_name',
      `container ${quote(value)} is invalid: give a Docker container name or id (letters, digits, "_", "." or "-").`,
    );
  }
  return value;
}

/** libnetwork endpoint ids are 64 lowercase hex characters. */
export function requireDockerEndpointId(value: unknown): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) {
    throw new VxnetError('bad_request', `Docker endpoint id ${quote(value)} is invalid: 64 hex characters expected.`);
  }
  return value;
}

/**
 * A target namespace is given as a name (looked up in /run/netns, as `ip netns` does) or an absolute path
 * (e.g. /proc/PID/ns/net or a runtime's bind mount). Stored normalised to an absolute path.
 */
export function normaliseNetns(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 255) {
    throw new VxnetError('bad_request', 'netns must be a namespace name or an absolute path.');
  }
  if (value.startsWith('/')) {
    if (!isNetnsPath(value)) {
      throw new VxnetError('invalid_name', `netns path ${quote(value)} is invalid.`);
    }
    return value;
  }
  return `/run/netns/${requireName(value, 'netns')}`;
}

/**
 * A DNS name of an endpoint (`vxnet attach --name/--alias`, a Docker container's name and aliases): one DNS
 * label (RFC 1035 §2.3.4: at most 63 octets), letters, digits, "-" and "_" (Docker's container names allow
 * "_"), starting with a letter or digit. No "." — a query for `NAME.NETWORK` is split at its last label
 * that names the network, which a dotted name would make ambiguous. Compared without regard to case, as DNS does.
 */
const DNS_LABEL = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
/** How many aliases an endpoint may carry (each is a name others resolve; a bound keeps the record small). */
export const MAX_ENDPOINT_ALIASES = 16;

export const isEndpointName = (value: unknown): value is string => typeof value === 'string' && DNS_LABEL.test(value);

export function requireEndpointName(value: unknown, what: 'name' | 'alias'): string {
  if (!isEndpointName(value)) {
    throw new VxnetError(
      'invalid_name',
      `endpoint ${what} ${quote(value)} is invalid: use 1-63 letters, digits, "-" or "_", starting with a letter or digit (no dots: it is one DNS label).`,
    );
  }
  return value;
}

/**
 * The name an endpoint answers to without an explicit one: the namespace name of `vxnet attach --netns NAME`
 * (stored as /run/netns/NAME), or the name of the Docker container behind a Docker endpoint, when that is a
 * DNS label. It is not reserved in the network (namespaces of
 * one name on two hosts are common), so it gives way: it resolves only while no endpoint of the network
 * carries it as its name or an alias (src/agent/dns/zone.ts).
 */
export function defaultEndpointName(endpoint: { name?: string; netns?: string; cni?: string; dockerContainer?: string }): string | undefined {
  if (endpoint.name !== undefined) return undefined;
  // a Docker container answers to its name, as on Docker's own networks (learned by the plugin after Join)
  if (endpoint.dockerContainer !== undefined) return isEndpointName(endpoint.dockerContainer) ? endpoint.dockerContainer : undefined;
  if (endpoint.netns === undefined || endpoint.cni !== undefined) return undefined;
  const match = /^\/run\/netns\/([^/]+)$/.exec(endpoint.netns);
  return match && isEndpointName(match[1]) ? match[1] : undefined;
}
