/**
 * Docker's remote plugin protocol (libnetwork "CNM" over HTTP): the request and response shapes of the
 * calls vxnet serves, and their parsing at the edge. Every request body is turned into a typed value here or
 * refused with one sentence (PluginRequestError, answered with HTTP 400); the drivers never see raw JSON.
 *
 * Shapes follow moby's drivers/remote/api/api.go and ipams/remote/api/api.go (libnetwork 20.10, the engine
 * Debian 12 ships), checked against what that engine actually sends (the call table in the Docker section
 * of docs/architecture.md). Field names are Go's, hence the capitals.
 */

/** Every call is a POST with this content type, both ways (moby pkg/plugins/transport/mimetype.go). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
/** The name of both drivers: `docker network create -d vxnet --ipam-driver vxnet`. */
export const DRIVER_NAME = 'vxnet';
/** Our IPAM's only address space (GetDefaultAddressSpaces); seeing it in CreateNetwork proves our IPAM was used. */
export const ADDRESS_SPACE = 'vxnet';
/** libnetwork's option keys (moby netlabel/labels.go, ipamapi/contract.go). */
export const OPTION_GENERIC = 'com.docker.network.generic';
export const OPTION_ENABLE_IPV6 = 'com.docker.network.enable_ipv6';
export const OPTION_INTERNAL = 'com.docker.network.internal';
export const OPTION_MTU = 'com.docker.network.driver.mtu';
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
export const GATEWAY_ADDRESS_TYPE = 'com.docker.network.gateway';
/** RequestPool's `Data` key for the pool's gateway (libnetwork then skips its own gateway request). */
export const DATA_GATEWAY = 'com.docker.network.gateway';

export interface IpamData {
  AddressSpace: string;
  /** "10.1.0.0/24" */
  Pool: string;
  /** "10.1.0.1/24" (may be absent) */
  Gateway?: string;
  AuxAddresses?: Record<string, string>;
}

export interface CreateNetworkRequest {
  NetworkID: string;
  Options: Record<string, unknown>;
  IPv4Data: IpamData[];
  IPv6Data: IpamData[];
}

export interface NetworkIdRequest {
  NetworkID: string;
}

export interface EndpointInterface {
  Address: string;
  AddressIPv6: string;
  MacAddress: string;
}

export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface: EndpointInterface;
  Options: Record<string, unknown>;
}

export interface EndpointRequest {
  NetworkID: string;
  EndpointID: string;
}

export interface JoinRequest extends EndpointRequest {
  SandboxKey: string;
  Options: Record<string, unknown>;
}

export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string;
  /** RouteType 0: via NextHop */
  StaticRoutes: { Destination: string; RouteType: number; NextHop: string }[];
  DisableGatewayService: boolean;
}

export interface RequestPoolRequest {
  AddressSpace: string;
  Pool: string;
  SubPool: string;
  Options: Record<string, string>;
  V6: boolean;
}

export interface RequestPoolResponse {
  PoolID: string;
  Pool: string;
  Data: Record<string, string>;
}

export interface PoolIdRequest {
  PoolID: string;
}

export interface RequestAddressRequest {
  PoolID: string;
  /** a.b.c.d, or "" for any */
  Address: string;
  Options: Record<string, string>;
}

export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}

/** A malformed request (not JSON, wrong shape): answered with HTTP 400. */
export class PluginRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginRequestError';
  }
}

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PluginRequestError(`${what} must be a JSON object.`);
  return value as Json;
}

function string(body: Json, field: string, what: string, optional = false): string {
  const value = body[field];
  if (value === undefined || value === null) {
    if (optional) return '';
    throw new PluginRequestError(`${what}: field "${field}" is required.`);
  }
  if (typeof value !== 'string') throw new PluginRequestError(`${what}: field "${field}" must be a string.`);
  return value;
}

/** Docker ids (networks, endpoints) are 64 lowercase hex characters. */
function dockerId(body: Json, field: string, what: string): string {
  const value = string(body, field, what);
  if (!/^[0-9a-f]{64}$/.test(value)) throw new PluginRequestError(`${what}: field "${field}" must be a Docker id (64 hex characters).`);
  return value;
}

function options(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  return object(value, `${what}: "Options"`);
}

function stringOptions(value: unknown, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(options(value, what))) {
    if (typeof v !== 'string') throw new PluginRequestError(`${what}: option "${key}" must be a string.`);
    out[key] = v;
  }
  return out;
}

function ipamData(value: unknown, what: string): IpamData[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new PluginRequestError(`${what} must be an array.`);
  return value.map((item, i) => {
    const data = object(item, `${what}[${i}]`);
    const out: IpamData = {
      AddressSpace: string(data, 'AddressSpace', `${what}[${i}]`, true),
      Pool: string(data, 'Pool', `${what}[${i}]`),
    };
    const gateway = string(data, 'Gateway', `${what}[${i}]`, true);
    if (gateway !== '') out.Gateway = gateway;
    if (data.AuxAddresses !== undefined && data.AuxAddresses !== null) {
      out.AuxAddresses = stringOptions(data.AuxAddresses, `${what}[${i}].AuxAddresses`);
    }
    return out;
  });
}

export function parseCreateNetwork(body: unknown): CreateNetworkRequest {
  const what = 'CreateNetwork';
  const b = object(body, what);
  return {
    NetworkID: dockerId(b, 'NetworkID', what),
    Options: options(b.Options, what),
    IPv4Data: ipamData(b.IPv4Data, `${what}: IPv4Data`),
    IPv6Data: ipamData(b.IPv6Data, `${what}: IPv6Data`),
  };
}

export function parseNetworkId(body: unknown, what: string): NetworkIdRequest {
  return { NetworkID: dockerId(object(body, what), 'NetworkID', what) };
}

export function parseCreateEndpoint(body: unknown): CreateEndpointRequest {
  const what = 'CreateEndpoint';
  const b = object(body, what);
  const iface = b.Interface === undefined || b.Interface === null ? {} : object(b.Interface, `${what}: "Interface"`);
  return {
    NetworkID: dockerId(b, 'NetworkID', what),
    EndpointID: dockerId(b, 'EndpointID', what),
    Interface: {
      Address: string(iface, 'Address', `${what}: Interface`, true),
      AddressIPv6: string(iface, 'AddressIPv6', `${what}: Interface`, true),
      MacAddress: string(iface, 'MacAddress', `${what}: Interface`, true),
    },
    Options: options(b.Options, what),
  };
}

export function parseEndpoint(body: unknown, what: string): EndpointRequest {
  const b = object(body, what);
  return { NetworkID: dockerId(b, 'NetworkID', what), EndpointID: dockerId(b, 'EndpointID', what) };
}

export function parseJoin(body: unknown): JoinRequest {
  const what = 'Join';
  const b = object(body, what);
  return {
    NetworkID: dockerId(b, 'NetworkID', what),
    EndpointID: dockerId(b, 'EndpointID', what),
    SandboxKey: string(b, 'SandboxKey', what, true),
    Options: options(b.Options, what),
  };
}

export function parseRequestPool(body: unknown): RequestPoolRequest {
  const what = 'RequestPool';
  const b = object(body, what);
  if (b.V6 !== undefined && typeof b.V6 !== 'boolean') throw new PluginRequestError(`${what}: field "V6" must be true or false.`);
  return {
    AddressSpace: string(b, 'AddressSpace', what, true),
    Pool: string(b, 'Pool', what, true),
    SubPool: string(b, 'SubPool', what, true),
    Options: stringOptions(b.Options, what),
    V6: b.V6 === true,
  };
}

export function parsePoolId(body: unknown, what: string): PoolIdRequest {
  return { PoolID: string(object(body, what), 'PoolID', what) };
}

export function parseRequestAddress(body: unknown): RequestAddressRequest {
  const what = 'RequestAddress';
  const b = object(body, what);
  return {
    PoolID: string(b, 'PoolID', what),
    Address: string(b, 'Address', what, true),
    Options: stringOptions(b.Options, what),
  };
}

export function parseReleaseAddress(body: unknown): ReleaseAddressRequest {
  const what = 'ReleaseAddress';
  const b = object(body, what);
  return { PoolID: string(b, 'PoolID', what), Address: string(b, 'Address', what) };
}
