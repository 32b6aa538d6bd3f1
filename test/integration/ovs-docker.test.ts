/**
 * Docker on an Open vSwitch host (vxnet issue 13): `docker run --network`, `docker network create -d vxnet`
 * and `vxnet attach --container` work on a host whose agent runs `--dataplane ovs` exactly as on a kernel
 * host. host1 runs the Linux data plane with a plain namespace container; host2 runs a private OVS
 * (testkit/ovs.ts, userspace datapath) and a real Docker engine linked to its agent. The plugin's veth is
 * made in the host and moved into the container by libnetwork, so the OVS data plane must turn checksum
 * offload off on it before the move (a container's TCP otherwise reaches the far end with a wrong checksum)
 * and make its host end a port of the bridge; a removed container leaves no port and no veth behind.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OVS_BRIDGE } from '../../src/agent/ovs/flows.ts';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { BUSYBOX_IMAGE, type DockerEngine, INDEX_HTML, destroyDockerCluster, dockerAgentArgs, dockerProblems, startDockerEngines } from '../../src/testkit/docker.ts';
import { startOvs, type OvsHost } from '../../src/testkit/ovs.ts';
import { until } from './support/probes.ts';

const problems = dockerProblems();

describe('Docker on an OVS host', { skip: problems ?? false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let ovs: OvsHost | undefined;
  let engines: DockerEngine[] = [];
  let engine: DockerEngine;
  /** a container namespace on the kernel host, and its address on blue */
  let k1 = { netns: '', ip: '' };

  before(async () => {
    cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxovsd', startDaemons: false, daemonTimeoutMs: 120_000, agentArgsFor: (host) => (ovs && host === ovs.host ? ovs.agentArgs : []) });
    try {
      await cluster.startManager();
      ovs = await startOvs(cluster, cluster.host(2));
      engines = await startDockerEngines(cluster, [cluster.host(2)]);
      engine = engines[0]!;
      await Promise.all([cluster.startAgent(cluster.host(1)), cluster.startAgent(cluster.host(2), { adminToken: true, args: dockerAgentArgs(engine) })]);
      client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
      await client.createNetwork({ name: 'blue', subnets: [{ cidr: '10.51.0.0/24' }] });
      const netns = await cluster.addContainer('k1');
      k1 = { netns, ip: (await client.createEndpoint({ network: 'blue', node: 'host1', netns })).ip };
      await until('blue in docker network ls on the OVS host', async () => (await engine.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('blue'), 10_000);
    } catch (err) {
      await destroyDockerCluster(engines, cluster);
      throw err;
    }
  });

  after(async () => {
    await destroyDockerCluster(engines, cluster, client);
  });

  const ipOf = (container: string, network: string) => engine.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);

  /** The ports of vxnet's bridge that carry a container (`vxnh*`), and the host's `vxnh*` links. */
  async function containerPorts(): Promise<{ ports: string[]; veths: string[] }> {
    const ports = (await ovs!.vsctl(['list-ports', OVS_BRIDGE])).split('\n').filter((p) => p.startsWith('vxnh'));
    const links = await cluster.exec(cluster.host(2).netns, ['ip', '-o', 'link', 'show']);
    const veths = [...links.stdout.matchAll(/^\d+: (vxnh[^@:]+)/gm)].map((m) => m[1]!);
    return { ports: ports.sort(), veths: veths.sort() };
  }

  /** Waits until a removed container has left no port on the bridge and no veth on the OVS host. */
  async function noContainerPortLeft(): Promise<void> {
    await until('no container port or veth left on the OVS host', async () => {
      const { ports, veths } = await containerPorts();
      return ports.length === 0 && veths.length === 0;
    }, 10_000);
  }

  it('docker run --network on the OVS host reaches a container on the kernel host and back (ICMP and TCP both ways)', async () => {
    await engine.dockerOk(['run', '-d', '--name', 'web', '--network', 'blue', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    try {
      const ip = await ipOf('web', 'blue');
      assert.match(ip, /^10\.51\.0\.\d+$/);
      const inside = await engine.dockerOk(['exec', 'web', 'sh', '-c', 'ip -o link show eth0; ip route']);
      assert.match(inside, /mtu 1450/);
      assert.match(inside, /default via 10\.51\.0\.1 dev eth0/);
      // the kernel host's agent programs the new endpoint in its own time
      await until(`kernel host → ${ip}`, async () => (await cluster.exec(k1.netns, ['ping', '-c', '1', '-W', '1', ip])).code === 0, 10_000);
      const fetched = await cluster.exec(k1.netns, ['curl', '-sS', '--max-time', '5', `http://${ip}/`]);
      assert.equal(fetched.stdout, INDEX_HTML, `TCP kernel host → Docker container on the OVS host: ${fetched.stderr}`);

      const back = await engine.docker(['exec', 'web', 'ping', '-c', '3', '-i', '0.2', '-W', '2', k1.ip]);
      assert.equal(back.code, 0, `ICMP Docker container on the OVS host → kernel host: ${back.stdout}${back.stderr}`);
      // TCP from the container: every segment it sends (a request, the ACKs of a 1 MiB page) leaves through
      // OVS, so its checksum must have been filled in by the container's kernel, not left to an offload
      const www = join(cluster.tmpDir, 'k1-www');
      mkdirSync(www, { recursive: true });
      writeFileSync(join(www, 'big'), Buffer.alloc(1 << 20, 'v'));
      const server = cluster.spawn(k1.netns, ['busybox', 'httpd', '-f', '-p', '8080', '-h', www], { label: 'httpd on the kernel host' });
      try {
        await until('httpd on the kernel host', async () => (await cluster.exec(k1.netns, ['ss', '-ltn'])).stdout.includes(':8080'), 5000);
        const size = await engine.docker(['exec', 'web', 'sh', '-c', `wget -qO- http://${k1.ip}:8080/big | wc -c`]);
        assert.equal(size.stdout.trim(), String(1 << 20), `TCP Docker container on the OVS host → kernel host: ${size.stdout}${size.stderr}`);
      } finally {
        await server.stop('SIGKILL');
      }
      const { ports, veths } = await containerPorts();
      assert.equal(ports.length, 1, `one container port on ${OVS_BRIDGE}: ${ports}`);
      assert.deepEqual(veths, ports, 'the port is the host end of the container veth');
    } finally {
      await engine.docker(['rm', '-f', 'web']);
    }
    await noContainerPortLeft();
    assert.equal((await client.listEndpoints({ network: 'blue', node: 'host2' })).length, 0);
  });

  it('docker network create -d vxnet on the OVS host makes a network that carries its containers to the kernel host', async () => {
    await engine.dockerOk(['network', 'create', '-d', 'vxnet', '--ipam-driver', 'vxnet', '--subnet', '10.52.0.0/24', 'green']);
    try {
      const netns = await cluster.addContainer('k2');
      const remote = await client.createEndpoint({ network: 'green', node: 'host1', netns });
      const fetched = await engine.docker(['run', '--rm', '--network', 'green', BUSYBOX_IMAGE, 'ping', '-c', '3', '-i', '0.2', '-W', '2', remote.ip]);
      assert.equal(fetched.code, 0, `a container on the Docker-made network → the kernel host: ${fetched.stdout}${fetched.stderr}`);
      await client.deleteEndpoint(remote.id);
    } finally {
      await engine.docker(['network', 'rm', 'green']);
    }
  });

  it('vxnet attach --container wires a --net=none container on the OVS host; detach unwires it', async () => {
    await engine.dockerOk(['run', '-d', '--name', 'lone', '--network', 'none', BUSYBOX_IMAGE, 'httpd', '-f', '-h', '/www']);
    try {
      const attached = await cluster.cli(['attach', 'blue', '--node', 'host2', '--container', 'lone', '--ip', '10.51.0.88']);
      assert.equal(attached.code, 0, attached.stderr);
      assert.equal(attached.stdout.trim(), '10.51.0.88/24');
      await until('kernel host → 10.51.0.88', async () => (await cluster.exec(k1.netns, ['ping', '-c', '1', '-W', '1', '10.51.0.88'])).code === 0, 10_000);
      const fetched = await cluster.exec(k1.netns, ['curl', '-sS', '--max-time', '5', 'http://10.51.0.88/']);
      assert.equal(fetched.stdout, INDEX_HTML, fetched.stderr);
      const back = await engine.docker(['exec', 'lone', 'ping', '-c', '2', '-i', '0.2', '-W', '2', k1.ip]);
      assert.equal(back.code, 0, `lone → kernel host: ${back.stdout}${back.stderr}`);
      const detached = await cluster.cli(['detach', 'blue', '--node', 'host2', '--container', 'lone']);
      assert.equal(detached.code, 0, detached.stderr);
      await until('eth0 gone from lone', async () => !/eth0/.test(await engine.dockerOk(['exec', 'lone', 'ip', '-o', 'link'])), 10_000);
    } finally {
      await engine.docker(['rm', '-f', 'lone']);
    }
    await noContainerPortLeft();
  });
});
