/**
 * `vxnet agent`: wires the real pieces together — the node's identity (identity.ts), the manager client
 * over mutually authenticated TLS, the Linux data plane — after a preflight that names any missing tool or
 * kernel feature.
 */
import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ManagerClient } from '../client/client.ts';
import { parseManagerUrl } from '../client/manager-url.ts';
import { VxnetError, messageOf } from '../core/errors.ts';
import { canonicalUnderlay, underlayFamily } from '../core/underlay.ts';
import { requireName } from '../core/names.ts';
import { EngineContainerNamespaces } from '../docker/containers.ts';
import { DockerEngineClient } from '../docker/engine-client.ts';
import { type DockerIntegration, startDockerIntegration } from '../docker/integration.ts';
import { type MetricsListener, serveMetrics } from '../http/metrics.ts';
import { Agent } from './agent.ts';
import { type CniServer, startCniPlugin } from './cni-server.ts';
import { AgentMetrics } from './metrics.ts';
import { DnsResponder } from './dns/responder.ts';
import { DnsRedirect } from './dns/redirect.ts';
import { AgentDns } from './dns/service.ts';
import { diagnoseHandler } from './diagnose.ts';
import { HostEndpoints } from './host-endpoint.ts';
import { createRunner } from './kernel/exec.ts';
import { CERT_FILE, DEFAULT_STATE_DIR, keepRenewed, obtainCredentials } from './identity.ts';
import { detectUnderlay, LinuxDataplane, preflight } from './kernel/linux-dataplane.ts';
import { DEFAULT_NETNS_PREFIX, networkNamespace } from './kernel/netns.ts';
import { checkOvsHost, ovsTarget } from './ovs/host.ts';
import { OvsDataplane } from './ovs/ovs-dataplane.ts';
import { setUpWireguard } from './wireguard/setup.ts';

export interface RunAgentOptions {
  /** https://ADDR:PORT */
  managerUrl: string;
  /** the worker join token; not needed once the state directory holds the node certificate; never the admin token */
  token?: string;
  /** the admin token, only for the Docker integration to create and delete vxnet networks (--admin-token-file) */
  adminToken?: string;
  /** the cluster CA (PEM), to pin it without (or beside) a token */
  ca?: string;
  /** where the node certificate and key are kept (default /var/lib/vxnet/agent) */
  stateDir?: string;
  advertiseAddress: string;
  name?: string;
  log?: (line: string) => void;
  /** reconnect when the watch has carried nothing for this long (default 30 s) */
  watchIdleMs?: number;
  /**
   * The API socket of a Docker engine on this host: links the agent to it (docs/architecture.md, "Docker"):
   * it serves the `vxnet` network and IPAM plugin, keeps a Docker network for every vxnet network, and can
   * attach the engine's containers (`vxnet attach --container`).
   */
  dockerSocket?: string;
  /** where to serve the plugin (default /run/docker/plugins/vxnet.sock, where Docker looks) */
  pluginSocket?: string;
  /** ADDR:PORT for a plain-HTTP Prometheus `/metrics` listener (metrics.ts) */
  metricsListen?: string;
  /** serve the CNI plugin (src/cni/) on this unix socket (default DEFAULT_CNI_SOCKET; cni-server.ts) */
  cniSocket?: string;
  /** the resolv.conf whose nameservers get what the gateways' DNS does not answer (default /etc/resolv.conf) */
  resolvConf?: string;
  /** which data plane programs this host: the Linux kernel's bridges (default) or Open vSwitch (src/agent/ovs/) */
  dataplane?: 'linux' | 'ovs';
  /** `unix:PATH` of Open vSwitch's database (--ovs-db; default from OVS_RUNDIR, src/agent/ovs/host.ts) */
  ovsDb?: string;
  /** do not serve the CNI plugin at all (`--no-cni`) */
  noCni?: boolean;
  /** each network's namespace is PREFIX<VNI> (`--netns-prefix`, default DEFAULT_NETNS_PREFIX; kernel/netns.ts) */
  netnsPrefix?: string;
  /** every network's devices in the host namespace (`--no-network-namespaces`) */
  noNetworkNamespaces?: boolean;
}

export async function runAgent(options: RunAgentOptions, signal: AbortSignal): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(line));
  const advertiseAddress = canonicalUnderlay(options.advertiseAddress, 'advertise address');
  const ipv6Underlay = underlayFamily(advertiseAddress) === 'IPv6';
  // the OVS data plane's tunnel ports and flows are IPv4-only (remote_ip, set_field:IP->tun_dst)
  if (ipv6Underlay && options.dataplane === 'ovs') {
    throw new VxnetError('bad_request', `the Open vSwitch data plane needs an IPv4 underlay: advertise an IPv4 address instead of ${advertiseAddress}, or run the Linux data plane.`);
  }
  const name = requireName(options.name ?? hostname(), 'node');
  if (parseManagerUrl(options.managerUrl).kind !== 'tls') {
    throw new VxnetError('bad_request', 'the agent needs the manager\'s https:// URL: it authenticates with its node certificate over TLS.');
  }

  const missing = await preflight();
  if (missing.length > 0) throw new VxnetError('internal', `this host cannot run the agent: ${missing.join(' ')}`);

  const underlay = await detectUnderlay(advertiseAddress);
  const identityOptions = {
    managerUrl: options.managerUrl,
    token: options.token,
    ca: options.ca,
    stateDir: options.stateDir ?? DEFAULT_STATE_DIR,
    name,
    log,
  };
  let credentials = await obtainCredentials(identityOptions, signal);
  // `vxnet node rm` revoked the stored certificate (docs/security.md, hole 5): with a token, join again
  if (options.token !== undefined && (await revoked(options.managerUrl, credentials))) {
    log(`the node certificate in ${identityOptions.stateDir} was revoked ("vxnet node rm"); joining again with the token`);
    rmSync(join(identityOptions.stateDir, CERT_FILE), { force: true });
    credentials = await obtainCredentials(identityOptions, signal);
  }
  const client = new ManagerClient({ url: options.managerUrl, ca: credentials.ca, cert: credentials.cert, key: credentials.key });
  void keepRenewed(client, credentials, identityOptions, signal).catch((err) => log(`error: certificate renewal stopped: ${messageOf(err)}`));
  const engine = options.dockerSocket === undefined ? undefined : new DockerEngineClient({ socketPath: options.dockerSocket });
  // a foreign change to vxnet's nftables tables asks for a pass at once (the agent exists by then)
  let agentRef: Agent | undefined;
  // encrypted networks (src/agent/wireguard/): the tunnel goes before the kernel data plane; the OVS data
  // plane carries no encrypted network (it says so per network)
  const wireguard =
    options.dataplane === 'ovs'
      ? await ovsDataplane(options.ovsDb, underlay.device, identityOptions.stateDir, log, signal)
      : await setUpWireguard(new LinuxDataplane({
          log,
          onDrift: () => agentRef?.schedule(),
          ...(options.noNetworkNamespaces ? {} : { networkNamespaces: { prefix: options.netnsPrefix ?? DEFAULT_NETNS_PREFIX } }),
        }), {
          stateDir: identityOptions.stateDir,
          underlayMtu: underlay.mtu,
          ipv6Underlay,
          log,
        });
  const dataplane = wireguard.dataplane;
  const metrics = options.metricsListen === undefined ? undefined : new AgentMetrics(createRunner(), ipv6Underlay);
  // linked to a Docker engine, the containers' forwarded DNS is steered to the gateways (dns/redirect.ts)
  const dns = new AgentDns(
    new DnsResponder({ ...(options.resolvConf !== undefined ? { resolvConf: options.resolvConf } : {}), log }),
    engine ? new DnsRedirect(createRunner(), log) : undefined,
  );
  const netnsPrefix = options.dataplane === 'ovs' || options.noNetworkNamespaces ? undefined : (options.netnsPrefix ?? DEFAULT_NETNS_PREFIX);
  const hostEndpoints = new HostEndpoints({
    run: createRunner(),
    self: { name },
    setEndpointStatus: (id, req, s) => client.setEndpointStatus(id, req, s),
    log,
    ...(netnsPrefix === undefined ? {} : { networkNamespace: (vni: number) => networkNamespace(netnsPrefix, vni) }),
  });
  const agent = new Agent({
    dns,
    api: client,
    dataplane,
    ...(wireguard.report ? { wireguard: wireguard.report, tunnels: () => wireguard.tunnels() } : {}),
    self: { name, address: advertiseAddress, underlayDevice: underlay.device },
    underlayMtu: underlay.mtu,
    log,
    ...(metrics ? { observer: metrics } : {}),
    ...(options.watchIdleMs !== undefined ? { watchIdleMs: options.watchIdleMs } : {}),
    ...(engine ? { watchAllNetworks: true, containers: new EngineContainerNamespaces(engine) } : {}),
    afterPass: (view, s) => hostEndpoints.reconcile(view, s),
    diagnose: diagnoseHandler({
      run: createRunner(),
      self: { name, address: advertiseAddress, underlayDevice: underlay.device },
      underlayMtu: underlay.mtu,
      ...(engine ? { containers: new EngineContainerNamespaces(engine) } : {}),
      ...(netnsPrefix === undefined ? {} : { networkNamespace: (vni: number) => networkNamespace(netnsPrefix, vni) }),
      answer: (id, report, s) => client.answerDiagnose(name, id, report, s),
      log,
      signal,
    }),
  });
  agentRef = agent;
  const rotation = wireguard.rotation?.({
    register: async (report, s) => void (await client.registerNode({ name, address: advertiseAddress, mtu: underlay.mtu, wireguard: report }, s)),
    signal,
  });
  if (rotation) agent.onViewChange(() => rotation.check(agent.view.nodes.get(name)?.keyRotation));
  let docker: DockerIntegration | undefined;
  if (engine) {
    // Creating and deleting networks needs the admin token, given apart from the join token (which is never it).
    const adminApi = options.adminToken === undefined ? undefined : new ManagerClient({ url: options.managerUrl, token: options.adminToken, ca: credentials.ca });
    docker = await startDockerIntegration(
      {
        node: name,
        agent,
        engine,
        nodeApi: client,
        nodeNetworkApi: client,
        ...(adminApi ? { adminApi } : {}),
        ...(options.pluginSocket !== undefined ? { pluginSocket: options.pluginSocket } : {}),
        log,
      },
      signal,
    );
  }
  let metricsListener: MetricsListener | undefined;
  let cni: CniServer | undefined;
  try {
    cni = await startCniPlugin({ api: client, node: name, stateDir: identityOptions.stateDir, log, socket: options.cniSocket, off: options.noCni === true });
    if (metrics) {
      metricsListener = await serveMetrics(options.metricsListen!, metrics.registry);
      log(`serving metrics on http://${metricsListener.address}/metrics`);
    }
    await agent.run(signal);
  } finally {
    await docker?.close();
    await metricsListener?.close();
    await cni?.close();
    await dns.close();
    // Stops the neighbour monitor; the kernel state itself is left as it is (fail-static).
    await dataplane.close();
  }
}

/** The OVS data plane (src/agent/ovs/), after its start-up check, in the shape setUpWireguard answers. */
async function ovsDataplane(db: string | undefined, underlayDevice: string, stateDir: string, log: (line: string) => void, signal: AbortSignal) {
  const target = ovsTarget(db);
  const startup = await checkOvsHost(createRunner(), target, underlayDevice, signal);
  log(startup.report);
  return { dataplane: new OvsDataplane({ target, datapath: startup.datapath, log, workDir: stateDir }), report: undefined, rotation: undefined, tunnels: () => undefined };
}

/** Whether the manager refuses `credentials` as revoked (any other answer, or none, is not that). */
async function revoked(url: string, credentials: { ca: string; cert: string; key: string }): Promise<boolean> {
  const probe = new ManagerClient({ url, ca: credentials.ca, cert: credentials.cert, key: credentials.key });
  try {
    await probe.info();
    return false;
  } catch (err) {
    return err instanceof VxnetError && err.code === 'certificate_revoked';
  } finally {
    probe.close();
  }
}
