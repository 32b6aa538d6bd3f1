/**
 * The CNI protocol (CNI spec 1.0, "Container Network Interface Specification"), pure: what a runtime hands
 * the plugin (environment and the network configuration on stdin), what the plugin answers (a result or an
 * error, JSON on stdout), and the request the plugin forwards to its agent (agent-api.ts).
 *
 * Why a thin plugin: the agent already holds the node's identity and programs the kernel, so the plugin
 * only translates. Every input is checked here, with one sentence per mistake and the spec's error code, so
 * that the agent never sees a malformed request and the runtime always gets the spec's error JSON.
 *
 * This module imports nothing but its one constant (socket.ts): the plugin runs once per container start,
 * and its start-up is what a `podman run` waits for.
 */
import { DEFAULT_CNI_SOCKET } from './socket.ts';

/** The versions whose configuration and result formats this plugin reads and writes (the spec's "VERSION"). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
/** What the plugin answers VERSION with when the configuration names none. */
export const DEFAULT_CNI_VERSION = '1.0.0';
export { DEFAULT_CNI_SOCKET };

/** The spec's well-known error codes ("Error" section); 100 and up are the plugin's own. */
export const CNI_ERRORS = {
  incompatible_version: 1,
  unsupported_field: 2,
  unknown_container: 3,
  invalid_environment: 4,
  io_failure: 5,
  decode_failure: 6,
  invalid_config: 7,
  try_again_later: 11,
  /** STATUS (spec 1.1): the plugin cannot serve ADD now */
  not_available: 50,
  /** STATUS (spec 1.1): not available, and existing containers may have limited connectivity */
  not_available_limited: 51,
  /** vxnet's own: the manager or the agent refused or failed the request; `details` holds vxnet's error code */
  vxnet_refused: 100,
  /** vxnet's own: CHECK found the container's interface not as ADD left it */
  check_failed: 101,
} as const;
export type CniErrorName = keyof typeof CNI_ERRORS;

/** A failure the plugin reports to the runtime as the spec's error JSON, with a non-zero exit status. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;
  /** `code`: a name from CNI_ERRORS, or the number an agent chose (agent-api.ts) */
  constructor(code: CniErrorName | number, message: string, details?: string) {
    super(message);
    this.name = 'CniError';
    this.code = typeof code === 'number' ? code : CNI_ERRORS[code];
    this.details = details;
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];
/** The verbs about the network as a whole (spec 1.1): no container, namespace or interface. */
const NETWORK_VERBS: readonly string[] = ['VERSION', 'STATUS', 'GC'];

/** The runtime's environment, checked: what a verb needs is present. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  /** CNI_NETNS; DEL may come without it (the namespace is gone), every other verb has it */
  netns: string;
  ifname: string;
  /** CNI_ARGS IP= (`podman run --ip`) */
  ip?: string;
  /** CNI_ARGS MAC= (`podman run --mac`) */
  mac?: string;
}

/** The network configuration on stdin, checked. */
export interface CniConfig {
  cniVersion: string;
  name: string;
  /** the vxnet network; the configuration's `name` when absent */
  network: string;
  /** the agent's plugin socket */
  socket: string;
  /** CHECK and DEL: the result ADD gave, as the runtime kept it */
  prevResult?: unknown;
  /** GC: the attachments the runtime still has on this network; everything else of the plugin's may go */
  validAttachments?: Attachment[];
}

/** One container interface as GC names it (`cni.dev/valid-attachments`). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

// The spec: "alphanumeric, hyphen, underscore and period" for container ids (and network names).
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Linux interface names: what `ip link` accepts and what vxnet's own attach accepts (core/names.ts).
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

/** Reads CNI_COMMAND and, for the verbs that need them, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_ARGS. */
export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = env['CNI_COMMAND'] ?? '';
  if (command === '') throw new CniError('invalid_environment', 'CNI_COMMAND is not set: the runtime names ADD, DEL, CHECK, VERSION, STATUS or GC there.');
  if (!COMMANDS.includes(command)) {
    throw new CniError('invalid_environment', `CNI_COMMAND "${clip(command)}" is not one of ADD, DEL, CHECK, VERSION, STATUS, GC.`);
  }
  const verb = command as CniCommand;
  if (NETWORK_VERBS.includes(verb)) return { command: verb, containerId: '', netns: '', ifname: '' };
  const containerId = env['CNI_CONTAINERID'] ?? '';
  if (containerId === '') throw new CniError('invalid_environment', `CNI_CONTAINERID is not set: ${verb} needs the container's id.`);
  if (!CONTAINER_ID.test(containerId)) {
    throw new CniError('invalid_environment', `CNI_CONTAINERID "${clip(containerId)}" is invalid: use letters, digits, "_", "." or "-".`);
  }
  const netns = env['CNI_NETNS'] ?? '';
  // The spec lets DEL come without a namespace: the container may be gone already.
  if (netns === '' && verb !== 'DEL') throw new CniError('invalid_environment', `CNI_NETNS is not set: ${verb} needs the container's network namespace.`);
  if (netns !== '' && !netns.startsWith('/')) throw new CniError('invalid_environment', `CNI_NETNS "${clip(netns)}" is not an absolute path.`);
  const ifname = env['CNI_IFNAME'] ?? '';
  if (ifname === '') throw new CniError('invalid_environment', `CNI_IFNAME is not set: ${verb} needs the interface name inside the container.`);
  if (!IFNAME.test(ifname)) {
    throw new CniError('invalid_environment', `CNI_IFNAME "${clip(ifname)}" is invalid: use 1-15 letters, digits, "_", "." or "-", starting with a letter or digit.`);
  }
  const parsed: CniEnv = { command: verb, containerId, netns, ifname };
  const args = parseArgs(env['CNI_ARGS'] ?? '');
  if (args.ip !== undefined) parsed.ip = args.ip;
  if (args.mac !== undefined) parsed.mac = args.mac;
  return parsed;
}

/**
 * CNI_ARGS: "K=V;K=V". IP= and MAC= are read (podman's `--ip` and `--mac`); the spec says a plugin ignores
 * the keys it does not know unless IgnoreUnknown is false, and runtimes pass their own (K8S_POD_NAME, ...).
 */
export function parseArgs(value: string): { ip?: string; mac?: string } {
  const out: { ip?: string; mac?: string } = {};
  if (value === '') return out;
  for (const pair of value.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError('invalid_environment', `CNI_ARGS "${clip(value)}" is invalid: expected KEY=VALUE pairs separated by ";".`);
    const key = pair.slice(0, eq);
    const v = pair.slice(eq + 1);
    if (key === 'IP') {
      if (!IPV4.test(v)) throw new CniError('invalid_environment', `CNI_ARGS IP "${clip(v)}" is not an IPv4 address.`);
      out.ip = v;
    } else if (key === 'MAC') {
      if (!MAC.test(v)) throw new CniError('invalid_environment', `CNI_ARGS MAC "${clip(v)}" is not a MAC address.`);
      out.mac = v.toLowerCase();
    }
  }
  return out;
}

/** Parses the network configuration the runtime writes to stdin. */
export function parseConfig(stdin: string): CniConfig {
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch {
    throw new CniError('decode_failure', 'the network configuration on stdin is not JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError('decode_failure', 'the network configuration on stdin is not a JSON object.');
  }
  const config = value as Record<string, unknown>;
  const cniVersion = config['cniVersion'];
  if (typeof cniVersion !== 'string' || cniVersion === '') throw new CniError('invalid_config', 'the network configuration has no "cniVersion".');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError('incompatible_version', `CNI version "${clip(cniVersion)}" is not supported: use one of ${SUPPORTED_VERSIONS.join(', ')}.`);
  }
  const name = config['name'];
  if (typeof name !== 'string' || name === '') throw new CniError('invalid_config', 'the network configuration has no "name".');
  const network = config['network'] ?? name;
  if (typeof network !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(network)) {
    throw new CniError('invalid_config', `"network" ${JSON.stringify(network).slice(0, 40)} is not a vxnet network name.`);
  }
  const socket = config['socket'] ?? DEFAULT_CNI_SOCKET;
  if (typeof socket !== 'string' || !socket.startsWith('/')) throw new CniError('invalid_config', '"socket" must be the absolute path of the agent\'s plugin socket.');
  const ipam = config['ipam'];
  // vxnet's IPAM is the cluster's; another IPAM plugin would hand out addresses vxnet does not know.
  if (ipam !== undefined && !(typeof ipam === 'object' && ipam !== null && Object.keys(ipam).length === 0)) {
    throw new CniError('unsupported_field', '"ipam" is not supported: vxnet assigns addresses from the network\'s own subnets.');
  }
  const parsed: CniConfig = { cniVersion, name, network, socket, ...(config['prevResult'] !== undefined ? { prevResult: config['prevResult'] } : {}) };
  // libcni writes the list under both names: the spec's text once said "cni.dev/attachments"
  const attachments = config['cni.dev/valid-attachments'] ?? config['cni.dev/attachments'];
  if (attachments !== undefined) parsed.validAttachments = parseAttachments(attachments);
  return parsed;
}

function parseAttachments(value: unknown): Attachment[] {
  const bad = (): CniError => new CniError('invalid_config', '"cni.dev/valid-attachments" must be a list of {"containerID", "ifname"} objects.');
  if (!Array.isArray(value)) throw bad();
  return value.map((item: unknown) => {
    const { containerID, ifname } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof containerID !== 'string' || !CONTAINER_ID.test(containerID) || typeof ifname !== 'string' || !IFNAME.test(ifname)) throw bad();
    return { containerId: containerID, ifname };
  });
}

/**
 * CHECK: what in the runtime's `prevResult` disagrees with the endpoint as it is now, in one sentence, or
 * undefined. Only what vxnet put there is compared (its interface's MAC, its address); a chained plugin may
 * have added more.
 */
export function prevResultMismatch(prev: unknown, endpoint: AttachedEndpoint): string | undefined {
  if (typeof prev !== 'object' || prev === null) return undefined;
  const { interfaces, ips } = prev as { interfaces?: unknown; ips?: unknown };
  const address = `${endpoint.ip}/${endpoint.prefix}`;
  if (Array.isArray(ips) && !ips.some((ip) => (ip as { address?: unknown } | null)?.address === address)) {
    return `the previous result does not hold the endpoint's address ${address}.`;
  }
  if (Array.isArray(interfaces)) {
    const own = interfaces.find((i) => (i as { name?: unknown } | null)?.name === endpoint.ifname) as { mac?: unknown } | undefined;
    if (own && typeof own.mac === 'string' && own.mac.toLowerCase() !== endpoint.mac.toLowerCase()) {
      return `the previous result gives interface ${endpoint.ifname} the MAC ${own.mac}, the endpoint has ${endpoint.mac}.`;
    }
  }
  return undefined;
}

/** One address of an attached endpoint, with the gateway of its subnet. */
export interface AttachedAddress {
  ip: string;
  prefix: number;
  gateway: string;
}

/** What the agent tells the plugin about an attached endpoint (agent-api.ts carries it). */
export interface AttachedEndpoint extends AttachedAddress {
  ifname: string;
  mac: string;
  /** every address, one per family of a dual-stack network (IPv4 first, the same as `ip`); absent: `ip` alone */
  addresses?: AttachedAddress[];
}

/** An IPv6 address in any RFC 4291 form, without a zone; the URL parser knows them, which spares an import. */
function isIPv6Text(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(text) || !text.includes(':')) return false;
  try {
    return new URL(`http://[${text}]/`).hostname !== '';
  } catch {
    return false;
  }
}

/**
 * The agent's answer to ADD and CHECK, checked before it becomes a result: every runtime reads the interface's
 * MAC from it, and podman fails on an empty one, so an answer short of any field is the plugin's error (5).
 */
export function parseAttached(value: unknown, verb: string): AttachedEndpoint {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const bad = (field: string): CniError => new CniError('io_failure', `the vxnet agent answered ${verb} without a valid "${field}".`);
  const text = (field: string, pattern: RegExp): string => {
    const given = v[field];
    if (typeof given !== 'string' || !pattern.test(given)) throw bad(field);
    return given;
  };
  const ifname = text('ifname', IFNAME);
  const mac = text('mac', MAC).toLowerCase();
  const ip = text('ip', IPV4);
  const prefix = v['prefix'];
  if (typeof prefix !== 'number' || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw bad('prefix');
  const gateway = text('gateway', IPV4);
  const attached: AttachedEndpoint = { ifname, mac, ip, prefix, gateway };
  if (v['addresses'] === undefined) return attached;
  if (!Array.isArray(v['addresses']) || v['addresses'].length === 0 || v['addresses'].length > 2) throw bad('addresses');
  attached.addresses = v['addresses'].map((item) => {
    const a = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const v6 = typeof a['ip'] === 'string' && isIPv6Text(a['ip']);
    const valid = (x: unknown): x is string => typeof x === 'string' && (v6 ? isIPv6Text(x) : IPV4.test(x));
    const max = v6 ? 128 : 32;
    if (!valid(a['ip']) || !valid(a['gateway']) || typeof a['prefix'] !== 'number' || !Number.isInteger(a['prefix']) || a['prefix'] < 0 || a['prefix'] > max) {
      throw bad('addresses');
    }
    return { ip: a['ip'], prefix: a['prefix'], gateway: a['gateway'] };
  });
  return attached;
}

/**
 * The ADD (and CHECK's prevResult) result: the interface in the sandbox, every address of the endpoint with
 * its gateway (both families on a dual-stack network), and a default route per family.
 */
export function addResult(cniVersion: string, endpoint: AttachedEndpoint, netns: string): Record<string, unknown> {
  // 0.3.x and 0.4.0 results tag each address with its IP version; 1.0.0 dropped the field.
  const legacy = cniVersion.startsWith('0.');
  const addresses = endpoint.addresses ?? [endpoint];
  return {
    cniVersion,
    interfaces: [{ name: endpoint.ifname, mac: endpoint.mac, sandbox: netns }],
    ips: addresses.map((a) => ({
      ...(legacy ? { version: a.ip.includes(':') ? '6' : '4' } : {}),
      address: `${a.ip}/${a.prefix}`,
      gateway: a.gateway,
      interface: 0,
    })),
    routes: addresses.map((a) => ({ dst: a.ip.includes(':') ? '::/0' : '0.0.0.0/0', gw: a.gateway })),
    dns: {},
  };
}

export function versionResult(cniVersion: string): Record<string, unknown> {
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}

export function errorResult(cniVersion: string, err: CniError): Record<string, unknown> {
  return { cniVersion, code: err.code, msg: err.message, ...(err.details !== undefined ? { details: err.details } : {}) };
}

function clip(value: string): string {
  return value.length > 40 ? `${value.slice(0, 40)}...` : value;
}
