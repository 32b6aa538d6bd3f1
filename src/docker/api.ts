/**
 * Docker's remote plugin protocol (libnetwork "CNM" over HTTP): the request and response shapes of the
 * calls vxnet serves, and their parsing at the edge. Each request shape is a valibot schema, its type derived
 * from it; every request body is turned into a typed value here or refused with one sentence
 * (PluginRequestError, answered with HTTP 400, worded by src/core/schema/sentence.ts); the drivers never see
 * raw JSON.
 *
 * Go's encoding/json writes a nil map or slice as `null` and a missing string as "": null counts as absent
 * here, and absent strings, maps and lists read as empty ones, as the Go side means them.
 *
 * Shapes follow moby's drivers/remote/api/api.go and ipams/remote/api/api.go (libnetwork 20.10, the engine
 * Debian 12 ships), checked against what that engine actually sends (the call table in the Docker section
 * of docs/architecture.md). Field names are Go's, hence the capitals.
 */
import * as v from 'valibot';
import { VxnetError } from '../core/errors.ts';
import { check } from '../core/schema/check.ts';

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

/** A malformed request (not JSON, wrong shape): answered with HTTP 400. */
export class PluginRequestError extends VxnetError {
  constructor(message: string) {
    super('bad_plugin_request', message);
    this.name = 'PluginRequestError';
  }
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const JsonObject = v.custom<Record<string, unknown>>(isJsonObject, 'must be a JSON object');
/** A request body: a JSON object (an array is not one, though valibot's objects would take it) with these fields. */
function body<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(JsonObject, v.object(entries));
}
/** Docker ids (networks, endpoints) are 64 lowercase hex characters. */
const DockerId = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be a Docker id (64 hex characters)'));
const OptionalString = v.nullish(v.string(), '');
const Options = v.nullish(JsonObject, () => ({}));
const StringMap = v.pipe(JsonObject, v.record(v.string(), v.string()));
const StringOptions = v.nullish(StringMap, () => ({}));

const IpamDataSchema = v.pipe(
  body({ AddressSpace: OptionalString, Pool: v.string(), Gateway: OptionalString, AuxAddresses: v.nullish(StringMap) }),
  v.transform(({ AddressSpace, Pool, Gateway, AuxAddresses }) => {
    const data: { AddressSpace: string; Pool: string; Gateway?: string; AuxAddresses?: Record<string, string> } = { AddressSpace, Pool };
    if (Gateway !== '') data.Gateway = Gateway;
    if (AuxAddresses !== undefined && AuxAddresses !== null) data.AuxAddresses = AuxAddresses;
    return data;
  }),
);
const IpamDataList = v.nullish(v.array(IpamDataSchema), () => []);

export const CreateNetworkRequestSchema = body({ NetworkID: DockerId, Options, IPv4Data: IpamDataList, IPv6Data: IpamDataList });
export const NetworkIdRequestSchema = body({ NetworkID: DockerId });
export const EndpointRequestSchema = body({ NetworkID: DockerId, EndpointID: DockerId });
export const CreateEndpointRequestSchema = body({
  NetworkID: DockerId,
  EndpointID: DockerId,
  Interface: v.nullish(body({ Address: OptionalString, AddressIPv6: OptionalString, MacAddress: OptionalString }), () => ({})),
  Options,
});
export const JoinRequestSchema = body({ NetworkID: DockerId, EndpointID: DockerId, SandboxKey: OptionalString, Options });
export const RequestPoolRequestSchema = body({
  AddressSpace: OptionalString,
  Pool: OptionalString,
  SubPool: OptionalString,
  Options: StringOptions,
  V6: v.exactOptional(v.boolean(), false),
});
export const PoolIdRequestSchema = body({ PoolID: v.string() });
export const RequestAddressRequestSchema = body({
  PoolID: v.string(),
  /** a.b.c.d, or "" for any */
  Address: OptionalString,
  Options: StringOptions,
});
export const ReleaseAddressRequestSchema = body({ PoolID: v.string(), Address: v.string() });

export type IpamData = v.InferOutput<typeof IpamDataSchema>;
export type CreateNetworkRequest = v.InferOutput<typeof CreateNetworkRequestSchema>;
export type NetworkIdRequest = v.InferOutput<typeof NetworkIdRequestSchema>;
export type EndpointInterface = CreateEndpointRequest['Interface'];
export type CreateEndpointRequest = v.InferOutput<typeof CreateEndpointRequestSchema>;
export type EndpointRequest = v.InferOutput<typeof EndpointRequestSchema>;
export type JoinRequest = v.InferOutput<typeof JoinRequestSchema>;
export type RequestPoolRequest = v.InferOutput<typeof RequestPoolRequestSchema>;
export type PoolIdRequest = v.InferOutput<typeof PoolIdRequestSchema>;
export type RequestAddressRequest = v.InferOutput<typeof RequestAddressRequestSchema>;
export type ReleaseAddressRequest = v.InferOutput<typeof ReleaseAddressRequestSchema>;

export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string;
  /** the endpoint's IPv6 gateway on a dual-stack network: libnetwork's default route `::/0` in the container */
  GatewayIPv6?: string;
  /** RouteType 0: via NextHop */
  StaticRoutes: { Destination: string; RouteType: number; NextHop: string }[];
  DisableGatewayService: boolean;
}

export interface RequestPoolResponse {
  PoolID: string;
  Pool: string;
  Data: Record<string, string>;
}

/** `body` as the call's request, or a PluginRequestError naming the call and the field. */
function parse<S extends v.GenericSchema>(schema: S, body: unknown, what: string): v.InferOutput<S> {
  const result = check(schema, body, what, 'plugin');
  if (!result.ok) throw new PluginRequestError(result.sentence);
  return result.value;
}

/**
 * The parser of a request shape: bound to its call's name when one call sends it, or told the name by the
 * caller when several calls share the shape (an endpoint's ids, a pool's id).
 */
function requestParser<S extends v.GenericSchema>(schema: S, call: string): (body: unknown) => v.InferOutput<S>;
function requestParser<S extends v.GenericSchema>(schema: S): (body: unknown, what: string) => v.InferOutput<S>;
function requestParser<S extends v.GenericSchema>(schema: S, call?: string): (body: unknown, what?: string) => v.InferOutput<S> {
  return (body, what) => parse(schema, body, call ?? what ?? '');
}

export const parseCreateNetwork = requestParser(CreateNetworkRequestSchema, 'CreateNetwork');
export const parseNetworkId = requestParser(NetworkIdRequestSchema);
export const parseCreateEndpoint = requestParser(CreateEndpointRequestSchema, 'CreateEndpoint');
export const parseEndpoint = requestParser(EndpointRequestSchema);
export const parseJoin = requestParser(JoinRequestSchema, 'Join');
export const parseRequestPool = requestParser(RequestPoolRequestSchema, 'RequestPool');
export const parsePoolId = requestParser(PoolIdRequestSchema);
export const parseRequestAddress = requestParser(RequestAddressRequestSchema, 'RequestAddress');
export const parseReleaseAddress = requestParser(ReleaseAddressRequestSchema, 'ReleaseAddress');
