/**
 * The plugin's logic, apart from the process: it takes the environment, stdin and a transport to the agent
 * and returns what to print and the exit status, so every path is tested in-process (as the reference
 * plugins' `skel` does). main.ts is the executable around it.
 *
 * DEL succeeds when the agent cannot be reached: the spec asks DEL to succeed when resources are gone or
 * cannot be released now, and a failing DEL makes a runtime keep the container forever. The agent releases
 * what is left when it starts again (cni-server.ts sweeps records whose namespace is gone).
 */
import { CNI_API_PATHS, type CniAgentBody, type CniAgentRefusal, type CniAgentRequest } from './agent-api.ts';
import {
  addResult, CNI_ERRORS, CniError, type CniConfig, DEFAULT_CNI_SOCKET, DEFAULT_CNI_VERSION, errorResult, parseAttached, parseConfig, parseEnv, prevResultMismatch, SUPPORTED_VERSIONS, versionResult,
} from './protocol.ts';

/** One POST to the agent's socket: the status and the parsed JSON body, or a rejection when nobody answers. */
export type AgentTransport = (socket: string, path: string, body: CniAgentBody) => Promise<{ status: number; body: unknown }>;

export interface PluginOutcome {
  stdout: string;
  /** a line for the runtime's log (stderr), when there is something to say besides the result */
  stderr?: string;
  exitCode: number;
}

export async function runPlugin(env: Readonly<Record<string, string | undefined>>, stdin: string, transport: AgentTransport): Promise<PluginOutcome> {
  let cniVersion = DEFAULT_CNI_VERSION;
  try {
    const cni = parseEnv(env);
    if (cni.command === 'VERSION') {
      // VERSION's stdin holds only {"cniVersion"}; answer in that version when it is one we speak.
      const asked = versionOf(stdin);
      return ok(versionResult(asked ?? DEFAULT_CNI_VERSION));
    }
    // Errors answer in the configuration's version when it names one this plugin speaks, else the default
    // (a broken stdin still gets the spec's error JSON).
    const named = versionOf(stdin);
    if (named !== undefined && (SUPPORTED_VERSIONS as readonly string[]).includes(named)) cniVersion = named;
    const config = parseConfig(stdin);
    cniVersion = config.cniVersion;
    if (cni.command === 'STATUS') return await status(config, transport);
    if (cni.command === 'GC') return await gc(config, transport);
    const request: CniAgentRequest = {
      containerId: cni.containerId, netns: cni.netns, ifname: cni.ifname, network: config.network,
      ...(cni.command === 'ADD' && cni.ip !== undefined ? { ip: cni.ip } : {}),
      ...(cni.command === 'ADD' && cni.mac !== undefined ? { mac: cni.mac } : {}),
    };
    if (cni.command === 'DEL') return await del(config, request, transport);
    const endpoint = parseAttached(await call(config, cni.command, request, transport), cni.command);
    if (cni.command === 'CHECK') {
      const mismatch = prevResultMismatch(config.prevResult, endpoint);
      if (mismatch !== undefined) throw new CniError('check_failed', mismatch);
      return { stdout: '', exitCode: 0 };
    }
    return ok(addResult(cniVersion, endpoint, cni.netns));
  } catch (err) {
    const failure = err instanceof CniError ? err : new CniError('io_failure', `the vxnet plugin failed: ${err instanceof Error ? err.message : String(err)}`);
    return { stdout: `${JSON.stringify(errorResult(cniVersion, failure))}\n`, exitCode: 1 };
  }
}

async function del(config: CniConfig, request: CniAgentRequest, transport: AgentTransport): Promise<PluginOutcome> {
  try {
    await call(config, 'DEL', request, transport);
    return { stdout: '', exitCode: 0 };
  } catch (err) {
    if (err instanceof CniError && err.code === CNI_ERRORS.try_again_later) {
      return { stdout: '', stderr: `vxnet: ${err.message} The agent releases the endpoint of container ${request.containerId} when it starts.`, exitCode: 0 };
    }
    throw err;
  }
}

/**
 * STATUS (spec 1.1): success when the agent could serve ADD on this network now. Every failure is "not
 * available" (50): a runtime that sees it holds back new containers; the running ones keep their network,
 * because the kernel state stays as the agent left it (fail-static), so 51 is never the answer.
 */
async function status(config: CniConfig, transport: AgentTransport): Promise<PluginOutcome> {
  try {
    await call(config, 'STATUS', { network: config.network }, transport);
  } catch (err) {
    const cause = err instanceof CniError ? err : undefined;
    throw new CniError('not_available', cause?.message ?? String(err), cause?.details);
  }
  return { stdout: '', exitCode: 0 };
}

/**
 * GC (spec 1.1): the agent deletes this node's CNI endpoints on the network that the runtime no longer lists.
 * Without the list nothing is deleted: an empty GC would otherwise take every container off the network.
 */
async function gc(config: CniConfig, transport: AgentTransport): Promise<PluginOutcome> {
  if (config.validAttachments === undefined) {
    throw new CniError('invalid_config', 'GC needs "cni.dev/valid-attachments": without the list of attachments to keep, nothing is deleted.');
  }
  await call(config, 'GC', { network: config.network, valid: config.validAttachments }, transport);
  return { stdout: '', exitCode: 0 };
}

async function call(config: CniConfig, verb: keyof typeof CNI_API_PATHS, request: CniAgentBody, transport: AgentTransport): Promise<unknown> {
  let answer: { status: number; body: unknown };
  try {
    answer = await transport(config.socket, CNI_API_PATHS[verb], request);
  } catch (err) {
    throw new CniError(
      'try_again_later',
      `the vxnet agent does not answer on ${config.socket} (${err instanceof Error ? err.message : String(err)}): ${
        config.socket === DEFAULT_CNI_SOCKET ? 'is it running (it serves this socket unless started with --cni-socket or --no-cni)?' : `is it running with --cni-socket ${config.socket}?`
      }`,
    );
  }
  if (answer.status === 200) return answer.body;
  const refusal = answer.body as Partial<CniAgentRefusal> | null;
  if (refusal && typeof refusal.cniCode === 'number' && typeof refusal.message === 'string') {
    throw new CniError(refusal.cniCode, refusal.message, refusal.details);
  }
  throw new CniError('io_failure', `the vxnet agent answered ${verb} with HTTP status ${answer.status} and no reason.`);
}

function versionOf(stdin: string): string | undefined {
  try {
    const value = JSON.parse(stdin) as { cniVersion?: unknown } | null;
    return typeof value?.cniVersion === 'string' && value.cniVersion !== '' ? value.cniVersion : undefined;
  } catch {
    return undefined;
  }
}

function ok(result: Record<string, unknown>): PluginOutcome {
  return { stdout: `${JSON.stringify(result)}\n`, exitCode: 0 };
}
