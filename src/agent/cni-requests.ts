/**
 * The requests on the agent's CNI socket (agent-api.ts), checked: the plugin checked its input already, and
 * the agent checks again, because anything root runs may write to the socket. A refusal carries the CNI
 * error code the plugin reports.
 */
import { isIfname, isName } from '../core/names.ts';
import type { CniAgentRequest, CniContainerVerb, CniGcRequest, CniStatusRequest } from '../cni/agent-api.ts';
import { CNI_ERRORS } from '../cni/protocol.ts';

/** The spec's container id, bounded. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$/;

/** A refusal with the CNI code the plugin reports. */
export class CniRefusal extends Error {
  readonly cniCode: number;
  readonly details: string | undefined;
  constructor(cniCode: number, message: string, details?: string) {
    super(message);
    this.name = 'CniRefusal';
    this.cniCode = cniCode;
    this.details = details;
  }
}

/** The plugin checked these already; the agent checks again, because anything root runs may write to the socket. */
export function parseRequest(text: string, verb: CniContainerVerb): CniAgentRequest {
  const v = parseObject(text, verb);
  const bad = (what: string): CniRefusal => new CniRefusal(CNI_ERRORS.decode_failure, `the ${verb} request has no valid "${what}".`);
  const text1 = (key: string, valid: (value: string) => boolean): string => {
    const field = v[key];
    if (typeof field !== 'string' || !valid(field)) throw bad(key);
    return field;
  };
  const matches = (pattern: RegExp) => (value: string) => pattern.test(value);
  const containerId = text1('containerId', matches(CONTAINER_ID));
  const netns = text1('netns', matches(verb === 'DEL' ? /^(\/.{0,4095})?$/ : /^\/.{0,4095}$/));
  const ifname = text1('ifname', isIfname);
  const network = text1('network', isName);
  const request: CniAgentRequest = { containerId, netns, ifname, network };
  if (v['ip'] !== undefined) request.ip = text1('ip', matches(/^\d{1,3}(\.\d{1,3}){3}$/));
  if (v['mac'] !== undefined) request.mac = text1('mac', matches(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/));
  return request;
}

function parseObject(text: string, verb: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CniRefusal(CNI_ERRORS.decode_failure, `the ${verb} request is not JSON.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CniRefusal(CNI_ERRORS.decode_failure, `the ${verb} request is not a JSON object.`);
  return value as Record<string, unknown>;
}

/** STATUS: `{network}`. */
export function parseNetworkRequest(text: string, verb: 'STATUS' | 'GC'): CniStatusRequest {
  const network = parseObject(text, verb)['network'];
  if (typeof network !== 'string' || !isName(network)) throw new CniRefusal(CNI_ERRORS.decode_failure, `the ${verb} request has no valid "network".`);
  return { network };
}

/** GC: `{network, valid: [{containerId, ifname}]}`. */
export function parseGcRequest(text: string): CniGcRequest {
  const { network } = parseNetworkRequest(text, 'GC');
  const valid = parseObject(text, 'GC')['valid'];
  const bad = new CniRefusal(CNI_ERRORS.decode_failure, 'the GC request has no valid "valid" list of {containerId, ifname}.');
  if (!Array.isArray(valid)) throw bad;
  return {
    network,
    valid: valid.map((item: unknown) => {
      const { containerId, ifname } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
      if (typeof containerId !== 'string' || !CONTAINER_ID.test(containerId) || typeof ifname !== 'string' || !isIfname(ifname)) throw bad;
      return { containerId, ifname };
    }),
  };
}
