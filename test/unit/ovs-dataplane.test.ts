/**
 * The OVS data plane's pure parts: the flow renderer (flows.ts), the readers of ovs-vsctl and ip output
 * (on output captured from Open vSwitch 3.1 and iproute2, test/fixtures/ovs/), the port planner (state.ts),
 * where it finds Open vSwitch (host.ts) and the agent's flags.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DesiredEndpoint, DesiredNetwork, DesiredState } from '../../src/agent/dataplane.ts';
import { OVS_BRIDGE, renderFlows, supported } from '../../src/agent/ovs/flows.ts';
import { ovsTarget } from '../../src/agent/ovs/host.ts';
import { lineDifference, OvsDataplane, portGuardScript } from '../../src/agent/ovs/ovs-dataplane.ts';
import type { Runner, RunOptions, RunResult } from '../../src/agent/kernel/exec.ts';
import { parseKernelLinks, parseOvsState, planGatewayPorts, planPorts, portNumbers, type OvsState } from '../../src/agent/ovs/state.ts';
import { UsageError } from '../../src/cli/command.ts';
import type { AgentCommand } from '../../src/cli/commands/agent.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';

const fixtures = join(import.meta.dirname, '../fixtures/ovs');

const red: DesiredNetwork = {
  name: 'red',
  vni: 4097,
  bridge: 'vxnb4097',
  vxlan: 'vxnv4097',
  port: 4789,
  mtu: 1450,
  localAddress: '10.99.0.13',
  gatewayMac: '02:78:c0:a8:47:01',
  gatewayAddresses: ['192.168.71.1/24'],
  subnets: ['192.168.71.0/24'],
  internal: false,
};
const blue: DesiredNetwork = { ...red, name: 'blue', vni: 4098, bridge: 'vxnb4098', vxlan: 'vxnv4098', gatewayMac: '02:78:c0:a8:48:01', gatewayAddresses: ['192.168.72.1/24'], subnets: ['192.168.72.0/24'] };
const r3: DesiredEndpoint = {
  id: '0123456789ab',
  bridge: 'vxnb4097',
  hostVeth: 'vxnh0123456789',
  peerVeth: 'vxnc0123456789',
  netns: '/run/netns/c3',
  ifname: 'eth0',
  mac: '02:78:c0:a8:47:03',
  address: '192.168.71.3/24',
  gateway: '192.168.71.1',
  mtu: 1450,
  extraRoutes: [],
};
const b3: DesiredEndpoint = { ...r3, id: 'abcdef012345', bridge: 'vxnb4098', hostVeth: 'vxnhabcdef0123', peerVeth: 'vxncabcdef0123', mac: '02:78:c0:a8:48:03', address: '192.168.72.3/24', gateway: '192.168.72.1' };

const desired: Pick<DesiredState, 'networks' | 'peers' | 'floods' | 'endpoints' | 'vxlanFilter'> = {
  networks: [red, blue],
  peers: [
    { vxlan: 'vxnv4097', ip: '192.168.71.2', mac: '02:78:c0:a8:47:02', vtep: '10.99.0.11' },
    { vxlan: 'vxnv4098', ip: '192.168.72.2', mac: '02:78:c0:a8:48:02', vtep: '10.99.0.12' },
  ],
  floods: [
    { vxlan: 'vxnv4097', vtep: '10.99.0.11' },
    { vxlan: 'vxnv4098', vtep: '10.99.0.12' },
  ],
  endpoints: [r3, b3],
  vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.11', '10.99.0.12'] },
};
const ports = new Map([
  ['vxnt4789', 1],
  ['vxnb4097', 2],
  ['vxnb4098', 3],
  ['vxnh0123456789', 4],
  ['vxnhabcdef0123', 5],
]);

describe('OVS flows (flows.ts)', () => {
  const flows = renderFlows(desired, ports);
  const matching = (...parts: string[]) => flows.filter((f) => parts.every((p) => f.includes(p)));

  it('drops by default in every table, and never names table 0 (replace-flows rejects it)', () => {
    for (const table of ['', 'table=1,', 'table=2,']) assert.ok(flows.includes(`${table}cookie=0x7678,priority=0,actions=drop`), table);
    assert.ok(!flows.some((f) => f.includes('table=0')));
  });

  it('accepts VXLAN only from the registered nodes (the peer allow-list)', () => {
    assert.deepEqual(matching('in_port=1,', 'tun_src='), [
      'cookie=0x7678,priority=100,in_port=1,tun_src=10.99.0.11,actions=resubmit(,1)',
      'cookie=0x7678,priority=100,in_port=1,tun_src=10.99.0.12,actions=resubmit(,1)',
    ]);
  });

  it('lets a container port send only its own MAC and address, tagged with its network', () => {
    assert.deepEqual(matching('in_port=4,'), [
      'cookie=0x7678,priority=100,in_port=4,dl_src=02:78:c0:a8:47:03,arp,arp_spa=0.0.0.0,arp_sha=02:78:c0:a8:47:03,actions=set_field:4097->reg0,resubmit(,2)',
      'cookie=0x7678,priority=100,in_port=4,dl_src=02:78:c0:a8:47:03,arp,arp_spa=192.168.71.3,arp_sha=02:78:c0:a8:47:03,actions=set_field:4097->reg0,resubmit(,2)',
      'cookie=0x7678,priority=100,in_port=4,dl_src=02:78:c0:a8:47:03,ip,nw_src=192.168.71.3,actions=set_field:4097->reg0,resubmit(,2)',
      'cookie=0x7678,priority=100,in_port=4,dl_src=02:78:c0:a8:47:03,ipv6,actions=set_field:4097->reg0,resubmit(,2)',
    ]);
  });

  it('sends a remote MAC to its VTEP with the VNI, and delivers from the tunnel by VNI only', () => {
    assert.deepEqual(matching('dl_dst=02:78:c0:a8:47:02'), ['table=2,cookie=0x7678,priority=100,reg0=4097,dl_dst=02:78:c0:a8:47:02,actions=set_field:10.99.0.11->tun_dst,set_field:4097->tun_id,output:1']);
    assert.deepEqual(matching('table=1,', 'dl_dst=02:78:c0:a8:47:03'), ['table=1,cookie=0x7678,priority=100,in_port=1,tun_id=4097,dl_dst=02:78:c0:a8:47:03,actions=output:4']);
    // blue's container is never reachable with red's VNI
    assert.deepEqual(matching('tun_id=4097', 'output:5'), []);
  });

  it('answers ARP for every known address in place, and keeps unanswered ARP on the host', () => {
    const responders = matching('table=2,', 'reg0=4097', 'arp_op=1');
    assert.deepEqual(responders.map((f) => /arp_tpa=([\d.]+)/.exec(f)![1]).sort(), ['192.168.71.1', '192.168.71.2', '192.168.71.3']);
    assert.ok(responders.every((f) => f.endsWith(',IN_PORT')));
    assert.deepEqual(matching('table=2,', 'priority=150', 'reg0=4097'), ['table=2,cookie=0x7678,priority=150,reg0=4097,arp,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:4,output:2']);
  });

  it('replicates broadcast to the local ports and the network\'s member hosts only', () => {
    assert.deepEqual(matching('table=2,', 'priority=50', 'reg0=4097'), [
      'table=2,cookie=0x7678,priority=50,reg0=4097,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:4,output:2,set_field:4097->tun_id,set_field:10.99.0.11->tun_dst,output:1',
    ]);
  });

  it('is the same text for the same state, and leaves out ports the switch does not have', () => {
    assert.deepEqual(renderFlows({ ...desired, endpoints: [...desired.endpoints].reverse() }, ports), flows);
    const without = renderFlows(desired, new Map([...ports].filter(([name]) => name !== 'vxnhabcdef0123')));
    assert.ok(!without.some((f) => /in_port=5,|output:5/.test(f)));
    assert.ok(without.length < flows.length);
  });

  it('refuses multicast and encrypted networks with a sentence', () => {
    assert.match(supported({ ...red, multicastGroup: '239.1.1.1' })!, /does not join underlay multicast groups/);
    assert.match(supported({ ...red, encrypted: true })!, /encrypted/);
    assert.deepEqual(renderFlows({ ...desired, networks: [{ ...red, encrypted: true }] }, ports).filter((f) => f.includes('4097')), []);
  });

  it('counts the lines two flow files do not share', () => {
    assert.equal(lineDifference('a\nb\nc\n', 'a\nc\nd\n'), 2);
    assert.equal(lineDifference('a\n', 'a\n'), 0);
  });
});

describe('OVS state (state.ts), on output captured from Open vSwitch 3.1', () => {
  const [bridges, portRows, interfaces] = readFileSync(join(fixtures, 'vsctl-list.json'), 'utf8').split('\n').filter(Boolean);
  const state = parseOvsState(bridges!, portRows!, interfaces!);

  it('reads vxnet\'s bridge, its ports (not another bridge\'s), their numbers and endpoint marks', () => {
    assert.deepEqual(state.bridge, { present: true, datapathType: 'netdev' });
    assert.deepEqual([...state.interfaces.keys()].sort(), ['vxnb4097', 'vxnh0123456789', 'vxnovs', 'vxnt4789']);
    assert.deepEqual(state.interfaces.get('vxnt4789')!.options, { dst_port: '4789', key: 'flow', remote_ip: 'flow' });
    assert.equal(state.interfaces.get('vxnh0123456789')!.endpoint, '0123456789ab');
    assert.equal(portNumbers(state).get('vxnt4789'), 1);
  });

  it('plans nothing for a bridge that is as wanted, and removes what nobody wants', () => {
    const links = parseKernelLinks(readFileSync(join(fixtures, 'ip-addr.json'), 'utf8'));
    const plan = planPorts([red], [r3], state, links, 'netdev');
    assert.deepEqual(plan.ensure, []);
    assert.deepEqual(plan.ready, [r3]);
    assert.deepEqual(plan.remove, []);
    assert.deepEqual(planGatewayPorts([red], links), []);
    const gone = planPorts([], [], state, links, 'netdev');
    assert.deepEqual(gone.remove, ['vxnb4097', 'vxnh0123456789', 'vxnt4789'], 'never the bridge\'s own port');
  });

  it('creates the bridge, the tunnel and gateway ports in one transaction from empty', () => {
    const empty: OvsState = { bridge: { present: false }, interfaces: new Map() };
    const plan = planPorts([red, blue], [r3], empty, new Map(), 'netdev');
    assert.deepEqual(plan.ensure[0], ['add-br', OVS_BRIDGE]);
    assert.ok(plan.ensure.some((c) => c.join(' ') === 'set interface vxnt4789 type=vxlan options:remote_ip=flow options:key=flow options:dst_port=4789'));
    assert.ok(plan.ensure.some((c) => c.join(' ') === 'set interface vxnb4098 type=internal'));
    assert.deepEqual(plan.create, [r3]);
    assert.deepEqual(planGatewayPorts([red], new Map()), ['link set dev vxnb4097 address 02:78:c0:a8:47:01 mtu 1450 up', 'addr add 192.168.71.1/24 dev vxnb4097']);
  });

  it('replaces a tunnel port\'s options when they differ', () => {
    const changed: OvsState = { ...state, interfaces: new Map([...state.interfaces, ['vxnt4789', { name: 'vxnt4789', type: 'vxlan', options: { remote_ip: '10.0.0.1', key: 'flow', dst_port: '4789' } }]]) };
    const plan = planPorts([red], [r3], changed, new Map(), 'netdev');
    assert.deepEqual(plan.ensure.slice(0, 1), [['clear', 'interface', 'vxnt4789', 'options']]);
  });

  it('keeps the kernel off the container ports', () => {
    assert.match(portGuardScript(), /iifname "vxnh\*" counter drop/);
  });
});

describe('where the OVS data plane finds Open vSwitch (host.ts)', () => {
  it('uses OVS_RUNDIR as the OVS tools do, else the folder of --ovs-db, else /var/run/openvswitch', () => {
    assert.deepEqual(ovsTarget(undefined, { OVS_RUNDIR: '/r' }), { db: 'unix:/r/db.sock', bridgeControl: 'unix:/r/vxnovs.mgmt' });
    assert.deepEqual(ovsTarget('unix:/x/db.sock', {}), { db: 'unix:/x/db.sock', bridgeControl: 'unix:/x/vxnovs.mgmt' });
    assert.deepEqual(ovsTarget(undefined, {}), { db: 'unix:/var/run/openvswitch/db.sock', bridgeControl: 'unix:/var/run/openvswitch/vxnovs.mgmt' });
    assert.throws(() => ovsTarget('tcp:1.2.3.4:6640', {}), /--ovs-db must be unix:ABSOLUTE-PATH/);
  });
});

describe('vxnet agent --dataplane / --ovs-db', () => {
  const ENV = { VXNET_MANAGER: 'https://10.0.0.1:7400' };
  const parse = (line: string) => parseCommandLine(`agent --advertise-addr 10.0.0.2 ${line}`.trim().split(' '), ENV) as AgentCommand;
  const usageError = (line: string, pattern: RegExp) => assert.throws(() => parse(line), (err: unknown) => err instanceof UsageError && pattern.test(err.message));

  it('chooses the OVS data plane and its database', () => {
    const c = parse('--dataplane ovs --ovs-db unix:/run/ovs/db.sock');
    assert.equal(c.dataplane, 'ovs');
    assert.equal(c.ovsDb, 'unix:/run/ovs/db.sock');
    assert.equal(parse('').dataplane, undefined);
  });

  it('refuses what cannot work, in one sentence', () => {
    usageError('--dataplane vpp', /^--dataplane must be linux or ovs, not "vpp"\.$/);
    usageError('--ovs-db unix:/x', /^--ovs-db needs --dataplane ovs/);
    usageError('--dataplane ovs --ovs-db /x', /^--ovs-db must be unix:ABSOLUTE-PATH/);
  });
});

describe('OvsDataplane passes, against a recording fake of the host tools', () => {
  /** Answers the reads from the captured fixtures; the switch's flows are `switchFlows` (diff-flows compares). */
  class FakeOvsHost implements Runner {
    readonly calls: string[] = [];
    switchFlows = '';
    async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
      const line = argv.join(' ');
      this.calls.push(line);
      const ok = (stdout = '', code = 0): RunResult => ({ argv, code, stdout, stderr: '' });
      if (argv[0] === 'ovs-vsctl' && line.includes('list Bridge')) return ok(readFileSync(join(fixtures, 'vsctl-list.json'), 'utf8'));
      if (line === 'ip -j addr show') return ok(readFileSync(join(fixtures, 'ip-addr.json'), 'utf8'));
      if (line.startsWith('nft -j list')) return { argv, code: 1, stdout: '', stderr: 'Error: No such file or directory' };
      if (argv[0] === 'ovs-ofctl' && argv.includes('diff-flows')) {
        const wanted = readFileSync(argv.at(-1)!, 'utf8');
        return wanted === this.switchFlows ? ok() : ok(`+${wanted.split('\n')[0]}\n`, 2);
      }
      if (argv[0] === 'ovs-ofctl' && argv.includes('replace-flows')) this.switchFlows = readFileSync(argv.at(-1)!, 'utf8');
      void options;
      return ok();
    }
    async readFile(): Promise<string | undefined> {
      return '1\n';
    }
    async writeFile(): Promise<void> {}
    async exists(): Promise<boolean> {
      return true;
    }
  }
  const state: DesiredState = { ...desired, networks: [red], endpoints: [r3], peers: desired.peers.slice(0, 1), floods: desired.floods.slice(0, 1) };

  it('changes nothing on a switch that is right (a restarted agent), and replaces only when the rendering changes', async () => {
    const host = new FakeOvsHost();
    const plane = new OvsDataplane({ target: ovsTarget('unix:/r/db.sock', {}), datapath: 'netdev', run: host });
    try {
      const first = await plane.reconcile(state);
      assert.equal(first.error, undefined);
      assert.ok(first.readyEndpoints.has(r3.id));
      assert.equal(host.calls.filter((c) => c.includes('replace-flows')).length, 1, 'the empty switch gets its flows');

      // a new agent on the same switch: reads back, finds it right, writes no flow and no port
      const again = new OvsDataplane({ target: ovsTarget('unix:/r/db.sock', {}), datapath: 'netdev', run: host });
      host.calls.length = 0;
      const adopted = await again.reconcile(state);
      assert.ok(host.calls.some((c) => c.includes('diff-flows')));
      assert.deepEqual(host.calls.filter((c) => c.includes('replace-flows') || c.includes('add-port') || c.startsWith('ip link')), []);
      assert.ok(adopted.readyEndpoints.has(r3.id));

      // a peer arrives: one replace, no read-back needed
      host.calls.length = 0;
      const moved = await again.reconcile({ ...state, peers: [...state.peers, { vxlan: 'vxnv4097', ip: '192.168.71.9', mac: '02:78:c0:a8:47:09', vtep: '10.99.0.12' }] });
      assert.ok(moved.changes >= 2);
      assert.deepEqual(host.calls.filter((c) => c.startsWith('ovs-ofctl')).map((c) => c.split(' ')[4]), ['replace-flows']);
    } finally {
      await plane.close();
    }
  });
});
