/** The CNI protocol (src/cni/): environment, stdin, results and every error code, against the spec's shapes. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CNI_API_PATHS, type CniAgentBody } from '../../src/cni/agent-api.ts';
import { type AgentTransport, runPlugin } from '../../src/cni/plugin.ts';
import { addResult, CNI_ERRORS, CniError, DEFAULT_CNI_SOCKET, parseArgs, parseConfig, parseEnv, SUPPORTED_VERSIONS } from '../../src/cni/protocol.ts';

const CONFIG = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'vxnet', network: 'blue', socket: '/run/test/cni.sock' });
const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/run/netns/netns-1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const ENDPOINT = { ifname: 'eth0', mac: '02:42:c0:a8:01:02', ip: '192.168.1.2', prefix: 24, gateway: '192.168.1.1' };

/** A transport that records the calls and answers as told. */
function agent(answer: { status: number; body: unknown } | Error): { transport: AgentTransport; calls: { socket: string; path: string; body: CniAgentBody }[] } {
  const calls: { socket: string; path: string; body: CniAgentBody }[] = [];
  const transport: AgentTransport = async (socket, path, body) => {
    calls.push({ socket, path, body });
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { transport, calls };
}

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return err.code;
  }
  assert.fail('no error');
}

describe('CNI environment', () => {
  test('ADD reads the container, namespace, interface and CNI_ARGS IP and MAC', () => {
    assert.deepEqual(parseEnv({ ...ENV, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web;IP=192.168.1.9;MAC=02:AA:00:00:00:01' }), {
      command: 'ADD', containerId: 'c0ffee', netns: '/run/netns/netns-1', ifname: 'eth0', ip: '192.168.1.9', mac: '02:aa:00:00:00:01',
    });
  });

  test('VERSION needs nothing but CNI_COMMAND', () => {
    assert.equal(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  });

  test('DEL may come without a namespace; ADD and CHECK may not', () => {
    assert.equal(parseEnv({ ...ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns, '');
    assert.throws(() => parseEnv({ ...ENV, CNI_NETNS: undefined }), /^CniError: CNI_NETNS is not set: ADD needs the container's network namespace\.$/);
    assert.throws(() => parseEnv({ ...ENV, CNI_COMMAND: 'CHECK', CNI_NETNS: '' }), /CHECK needs/);
  });

  test('every missing or malformed variable is code 4 with one sentence', () => {
    const cases: [Record<string, string | undefined>, RegExp][] = [
      [{ ...ENV, CNI_COMMAND: undefined }, /^CNI_COMMAND is not set: the runtime names ADD, DEL, CHECK, VERSION, STATUS or GC there\.$/],
      [{ ...ENV, CNI_COMMAND: 'INIT' }, /^CNI_COMMAND "INIT" is not one of ADD, DEL, CHECK, VERSION, STATUS, GC\.$/],
      [{ ...ENV, CNI_CONTAINERID: '' }, /^CNI_CONTAINERID is not set: ADD needs the container's id\.$/],
      [{ ...ENV, CNI_CONTAINERID: 'a/b' }, /^CNI_CONTAINERID "a\/b" is invalid/],
      [{ ...ENV, CNI_NETNS: 'netns-1' }, /^CNI_NETNS "netns-1" is not an absolute path\.$/],
      [{ ...ENV, CNI_IFNAME: undefined }, /^CNI_IFNAME is not set/],
      [{ ...ENV, CNI_IFNAME: 'a-very-long-interface' }, /^CNI_IFNAME "a-very-long-interface" is invalid/],
      [{ ...ENV, CNI_ARGS: 'IP' }, /^CNI_ARGS "IP" is invalid: expected KEY=VALUE pairs separated by ";"\.$/],
      [{ ...ENV, CNI_ARGS: 'IP=10.0.0.256' }, /^CNI_ARGS IP "10\.0\.0\.256" is not an IPv4 address\.$/],
      [{ ...ENV, CNI_ARGS: 'MAC=02:aa' }, /^CNI_ARGS MAC "02:aa" is not a MAC address\.$/],
    ];
    for (const [env, message] of cases) {
      assert.equal(codeOf(() => parseEnv(env)), CNI_ERRORS.invalid_environment, String(message));
      assert.throws(() => parseEnv(env), (err: Error) => message.test(err.message));
    }
  });

  test('unknown CNI_ARGS keys are ignored', () => {
    assert.deepEqual(parseArgs('K8S_POD_NAMESPACE=default;;IgnoreUnknown=true'), {});
  });
});

describe('CNI network configuration', () => {
  test('the network defaults to the name, the socket to the documented path', () => {
    assert.deepEqual(parseConfig('{"cniVersion":"0.4.0","name":"red","type":"vxnet"}'), { cniVersion: '0.4.0', name: 'red', network: 'red', socket: DEFAULT_CNI_SOCKET });
  });

  test('a conflist entry as runtimes pass it (name and version injected, prevResult, runtimeConfig) is accepted', () => {
    const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'vxnet', network: 'blue', runtimeConfig: {}, prevResult: { interfaces: [] } });
    assert.equal(parseConfig(stdin).network, 'blue');
  });

  test('bad stdin: each mistake has its code and sentence', () => {
    const cases: [string, number, RegExp][] = [
      ['', CNI_ERRORS.decode_failure, /^the network configuration on stdin is not JSON\.$/],
      ['{"cniVersion":', CNI_ERRORS.decode_failure, /not JSON/],
      ['[1]', CNI_ERRORS.decode_failure, /^the network configuration on stdin is not a JSON object\.$/],
      ['{"name":"blue"}', CNI_ERRORS.invalid_config, /^the network configuration has no "cniVersion"\.$/],
      ['{"cniVersion":"2.0.0","name":"blue"}', CNI_ERRORS.incompatible_version, /^CNI version "2\.0\.0" is not supported: use one of 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0\.$/],
      ['{"cniVersion":"1.0.0"}', CNI_ERRORS.invalid_config, /^the network configuration has no "name"\.$/],
      ['{"cniVersion":"1.0.0","name":"x","network":"no/slash"}', CNI_ERRORS.invalid_config, /^"network" "no\/slash" is not a vxnet network name\.$/],
      ['{"cniVersion":"1.0.0","name":"x","socket":"rel.sock"}', CNI_ERRORS.invalid_config, /^"socket" must be the absolute path of the agent's plugin socket\.$/],
      ['{"cniVersion":"1.0.0","name":"x","ipam":{"type":"host-local"}}', CNI_ERRORS.unsupported_field, /^"ipam" is not supported/],
    ];
    for (const [stdin, code, message] of cases) {
      assert.equal(codeOf(() => parseConfig(stdin)), code, stdin);
      assert.throws(() => parseConfig(stdin), (err: Error) => message.test(err.message), stdin);
    }
  });
});

describe('CNI results', () => {
  test('ADD: the interface with its MAC in the sandbox, the address with its gateway, the default route', () => {
    assert.deepEqual(addResult('1.0.0', ENDPOINT, '/run/netns/netns-1'), {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '02:42:c0:a8:01:02', sandbox: '/run/netns/netns-1' }],
      ips: [{ address: '192.168.1.2/24', gateway: '192.168.1.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '192.168.1.1' }],
      dns: {},
    });
  });

  test('0.3.x and 0.4.0 results tag the address with its IP version', () => {
    const ips = addResult('0.4.0', ENDPOINT, '/run/netns/x')['ips'] as { version?: string }[];
    assert.equal(ips[0]!.version, '4');
  });

  test('a dual-stack endpoint: both addresses with their own gateway, and a default route per family (spec 1.0 result)', () => {
    const dual = {
      ...ENDPOINT,
      addresses: [
        { ip: '192.168.1.2', prefix: 24, gateway: '192.168.1.1' },
        { ip: 'fd00:1::2', prefix: 64, gateway: 'fd00:1::1' },
      ],
    };
    const result = addResult('1.0.0', dual, '/run/netns/netns-1');
    assert.deepEqual(result, {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '02:42:c0:a8:01:02', sandbox: '/run/netns/netns-1' }],
      ips: [
        { address: '192.168.1.2/24', gateway: '192.168.1.1', interface: 0 },
        { address: 'fd00:1::2/64', gateway: 'fd00:1::1', interface: 0 },
      ],
      routes: [
        { dst: '0.0.0.0/0', gw: '192.168.1.1' },
        { dst: '::/0', gw: 'fd00:1::1' },
      ],
      dns: {},
    });
    // the spec's shape: each ips[].interface indexes interfaces[], each address is CIDR text
    const ips = result['ips'] as { address: string; interface: number }[];
    for (const ip of ips) {
      assert.ok((result['interfaces'] as unknown[])[ip.interface] !== undefined);
      assert.match(ip.address, /\/\d+$/);
    }
    const legacy = addResult('0.4.0', dual, '/run/netns/x')['ips'] as { version?: string }[];
    assert.deepEqual(legacy.map((i) => i.version), ['4', '6']);
  });

  test('the agent answer with both addresses is read; a malformed address list is the plugin\'s error', async () => {
    const body = { ...ENDPOINT, addresses: [{ ip: '192.168.1.2', prefix: 24, gateway: '192.168.1.1' }, { ip: 'fd00:1::2', prefix: 64, gateway: 'fd00:1::1' }] };
    const good = await runPlugin(ENV, CONFIG, agent({ status: 200, body }).transport);
    assert.equal(good.exitCode, 0, good.stdout);
    assert.deepEqual((JSON.parse(good.stdout) as { ips: { address: string }[] }).ips.map((i) => i.address), ['192.168.1.2/24', 'fd00:1::2/64']);
    for (const addresses of [[], [{ ip: 'fd00::1::2', prefix: 64, gateway: 'fd00:1::1' }], [{ ip: 'fd00:1::2', prefix: 129, gateway: 'fd00:1::1' }], [{ ip: 'fd00:1::2', prefix: 64, gateway: '10.0.0.1' }], 'x']) {
      const out = await runPlugin(ENV, CONFIG, agent({ status: 200, body: { ...ENDPOINT, addresses } }).transport);
      assert.equal(out.exitCode, 1, JSON.stringify(addresses));
      assert.match((JSON.parse(out.stdout) as { msg: string }).msg, /without a valid "addresses"/);
    }
  });
});

describe('the plugin process (plugin.ts)', () => {
  test('VERSION answers the supported versions in the version asked', async () => {
    const { transport, calls } = agent(new Error('unused'));
    const out = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}', transport);
    assert.equal(out.exitCode, 0);
    assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '0.4.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    assert.equal(calls.length, 0);
  });

  test('ADD asks the agent on the configured socket and prints the result', async () => {
    const { transport, calls } = agent({ status: 200, body: ENDPOINT });
    const out = await runPlugin({ ...ENV, CNI_ARGS: 'IP=192.168.1.2' }, CONFIG, transport);
    assert.equal(out.exitCode, 0);
    assert.deepEqual(calls, [{ socket: '/run/test/cni.sock', path: CNI_API_PATHS.ADD, body: { containerId: 'c0ffee', netns: '/run/netns/netns-1', ifname: 'eth0', network: 'blue', ip: '192.168.1.2' } }]);
    const result = JSON.parse(out.stdout);
    assert.equal(result.interfaces[0].mac, ENDPOINT.mac);
    assert.equal(result.ips[0].address, '192.168.1.2/24');
  });

  test('an agent refusal is forwarded with its CNI code and vxnet code as details', async () => {
    const { transport } = agent({ status: 409, body: { cniCode: 100, message: 'address 192.168.1.2 is already in use in network blue.', details: 'address_in_use' } });
    const out = await runPlugin(ENV, CONFIG, transport);
    assert.equal(out.exitCode, 1);
    assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', code: 100, msg: 'address 192.168.1.2 is already in use in network blue.', details: 'address_in_use' });
  });

  test('an answer without a reason is an I/O failure (5)', async () => {
    const { transport } = agent({ status: 502, body: null });
    const out = await runPlugin(ENV, CONFIG, transport);
    assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', code: 5, msg: 'the vxnet agent answered ADD with HTTP status 502 and no reason.' });
  });

  test('ADD with the agent down fails with code 11 (try again later) and names the socket', async () => {
    const { transport } = agent(new Error('connect ENOENT /run/test/cni.sock'));
    const out = await runPlugin(ENV, CONFIG, transport);
    assert.equal(out.exitCode, 1);
    const error = JSON.parse(out.stdout);
    assert.equal(error.code, CNI_ERRORS.try_again_later);
    assert.equal(error.msg, 'the vxnet agent does not answer on /run/test/cni.sock (connect ENOENT /run/test/cni.sock): is it running with --cni-socket /run/test/cni.sock?');
    const plain = await runPlugin(ENV, JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'vxnet' }), agent(new Error('connect ENOENT /run/vxnet/cni.sock')).transport);
    assert.equal(
      JSON.parse(plain.stdout).msg,
      'the vxnet agent does not answer on /run/vxnet/cni.sock (connect ENOENT /run/vxnet/cni.sock): is it running (it serves this socket unless started with --cni-socket or --no-cni)?',
    );
  });

  test('DEL succeeds with the agent down, and says so on stderr', async () => {
    const { transport } = agent(new Error('connect ECONNREFUSED'));
    const out = await runPlugin({ ...ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, CONFIG, transport);
    assert.equal(out.exitCode, 0);
    assert.equal(out.stdout, '');
    assert.match(out.stderr ?? '', /The agent releases the endpoint of container c0ffee when it starts\.$/);
  });

  test('DEL refused by the agent for another reason fails', async () => {
    const { transport } = agent({ status: 500, body: { cniCode: 5, message: 'disk full.' } });
    const out = await runPlugin({ ...ENV, CNI_COMMAND: 'DEL' }, CONFIG, transport);
    assert.equal(out.exitCode, 1);
    assert.equal(JSON.parse(out.stdout).code, 5);
  });

  test('CHECK prints nothing on success and the agent\'s finding on failure', async () => {
    const good = await runPlugin({ ...ENV, CNI_COMMAND: 'CHECK' }, CONFIG, agent({ status: 200, body: ENDPOINT }).transport);
    assert.deepEqual(good, { stdout: '', exitCode: 0 });
    const bad = await runPlugin({ ...ENV, CNI_COMMAND: 'CHECK' }, CONFIG, agent({ status: 409, body: { cniCode: 101, message: 'interface eth0 is missing.' } }).transport);
    assert.equal(JSON.parse(bad.stdout).code, CNI_ERRORS.check_failed);
  });

  test('CHECK compares the runtime\'s prevResult with the endpoint: address and MAC', async () => {
    const check = (prevResult: unknown) =>
      runPlugin({ ...ENV, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...JSON.parse(CONFIG), prevResult }), agent({ status: 200, body: ENDPOINT }).transport);
    assert.equal((await check(addResult('1.0.0', ENDPOINT, ENV.CNI_NETNS))).exitCode, 0);
    const moved = await check({ ...addResult('1.0.0', ENDPOINT, ENV.CNI_NETNS), ips: [{ address: '192.168.1.9/24', gateway: '192.168.1.1' }] });
    assert.deepEqual(JSON.parse(moved.stdout), { cniVersion: '1.0.0', code: 101, msg: "the previous result does not hold the endpoint's address 192.168.1.2/24." });
    const mac = await check({ interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01' }] });
    assert.equal(JSON.parse(mac.stdout).msg, 'the previous result gives interface eth0 the MAC 02:00:00:00:00:01, the endpoint has 02:42:c0:a8:01:02.');
  });

  test('MAC= (podman --mac-address) and IP= go to the agent with ADD only; the result carries the agent\'s MAC', async () => {
    const mac = '0a:00:00:00:00:01';
    const { transport, calls } = agent({ status: 200, body: { ...ENDPOINT, mac } });
    const out = await runPlugin({ ...ENV, CNI_ARGS: 'IP=192.168.1.2;MAC=0A:00:00:00:00:01' }, CONFIG, transport);
    assert.equal(out.exitCode, 0, out.stdout);
    assert.deepEqual(calls[0]?.body, { containerId: 'c0ffee', netns: '/run/netns/netns-1', ifname: 'eth0', network: 'blue', ip: '192.168.1.2', mac });
    assert.equal(JSON.parse(out.stdout).interfaces[0].mac, mac);
    await runPlugin({ ...ENV, CNI_COMMAND: 'DEL', CNI_ARGS: 'IP=192.168.1.2;MAC=0a:00:00:00:00:01' }, CONFIG, transport);
    assert.deepEqual(calls[1]?.body, { containerId: 'c0ffee', netns: '/run/netns/netns-1', ifname: 'eth0', network: 'blue' });
  });

  test('an agent answer without a MAC (or any other field) is an I/O failure (5), never a result with an empty MAC', async () => {
    for (const [field, value] of [['mac', ''], ['mac', undefined], ['ip', '1.2.3'], ['prefix', 33], ['gateway', null], ['ifname', '']] as const) {
      const { transport } = agent({ status: 200, body: { ...ENDPOINT, [field]: value } });
      const out = await runPlugin(ENV, CONFIG, transport);
      assert.equal(out.exitCode, 1);
      assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', code: 5, msg: `the vxnet agent answered ADD without a valid "${field}".` });
    }
    const { transport } = agent({ status: 200, body: null });
    assert.equal(JSON.parse((await runPlugin(ENV, CONFIG, transport)).stdout).msg, 'the vxnet agent answered ADD without a valid "ifname".');
  });

  test('bad environment and bad stdin come out as error JSON with a non-zero exit', async () => {
    const { transport } = agent({ status: 200, body: ENDPOINT });
    const env = await runPlugin({ CNI_COMMAND: 'ADD' }, CONFIG, transport);
    assert.equal(env.exitCode, 1);
    assert.equal(JSON.parse(env.stdout).code, 4);
    const stdin = await runPlugin(ENV, 'not json', transport);
    assert.deepEqual(JSON.parse(stdin.stdout), { cniVersion: '1.0.0', code: 6, msg: 'the network configuration on stdin is not JSON.' });
    const version = await runPlugin(ENV, '{"cniVersion":"9.9.9","name":"x"}', transport);
    assert.equal(JSON.parse(version.stdout).code, 1);
  });
});

describe('STATUS and GC (spec 1.1)', () => {
  // The spec's GC example, with this plugin's type: the runtime lists the attachments it still has.
  const GC_CONFIG = {
    cniVersion: '1.1.0',
    name: 'blue',
    type: 'vxnet',
    socket: '/run/test/cni.sock',
    'cni.dev/valid-attachments': [{ containerID: 'd7b1a4e8c0f2', ifname: 'eth0' }, { containerID: 'd7b1a4e8c0f2', ifname: 'net1' }],
  };
  const STATUS_ENV = { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' };
  const GC_ENV = { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' };

  test('STATUS needs no container: success prints nothing and exits 0', async () => {
    const { transport, calls } = agent({ status: 200, body: {} });
    const out = await runPlugin(STATUS_ENV, JSON.stringify({ cniVersion: '1.1.0', name: 'blue', type: 'vxnet', socket: '/run/test/cni.sock' }), transport);
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.deepEqual(calls, [{ socket: '/run/test/cni.sock', path: CNI_API_PATHS.STATUS, body: { network: 'blue' } }]);
  });

  test('STATUS with the agent down or refusing is "not available" (50), with the reason', async () => {
    const down = await runPlugin(STATUS_ENV, CONFIG, agent(new Error('connect ENOENT /run/test/cni.sock')).transport);
    assert.equal(down.exitCode, 1);
    const error = JSON.parse(down.stdout);
    assert.equal(error.code, CNI_ERRORS.not_available);
    assert.match(error.msg, /^the vxnet agent does not answer on \/run\/test\/cni\.sock \(connect ENOENT/);
    const refused = await runPlugin(STATUS_ENV, CONFIG, agent({ status: 409, body: { cniCode: 7, message: 'network "blue" does not exist.', details: 'network_not_found' } }).transport);
    assert.deepEqual(JSON.parse(refused.stdout), { cniVersion: '1.0.0', code: 50, msg: 'network "blue" does not exist.', details: 'network_not_found' });
  });

  test('GC hands the agent the attachments to keep, and prints nothing', async () => {
    const { transport, calls } = agent({ status: 200, body: {} });
    const out = await runPlugin(GC_ENV, JSON.stringify(GC_CONFIG), transport);
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.deepEqual(calls, [{
      socket: '/run/test/cni.sock', path: CNI_API_PATHS.GC,
      body: { network: 'blue', valid: [{ containerId: 'd7b1a4e8c0f2', ifname: 'eth0' }, { containerId: 'd7b1a4e8c0f2', ifname: 'net1' }] },
    }]);
  });

  test('GC reads the list under the older name cni.dev/attachments too; an empty list is a list', async () => {
    const { 'cni.dev/valid-attachments': list, ...rest } = GC_CONFIG;
    assert.deepEqual(parseConfig(JSON.stringify({ ...rest, 'cni.dev/attachments': list })).validAttachments?.length, 2);
    assert.deepEqual(parseConfig(JSON.stringify({ ...rest, 'cni.dev/valid-attachments': [] })).validAttachments, []);
  });

  test('GC without the list, or with a malformed one, deletes nothing and fails with code 7', async () => {
    const { 'cni.dev/valid-attachments': _, ...rest } = GC_CONFIG;
    const cases: [unknown, string][] = [
      [rest, 'GC needs "cni.dev/valid-attachments": without the list of attachments to keep, nothing is deleted.'],
      [{ ...rest, 'cni.dev/valid-attachments': {} }, '"cni.dev/valid-attachments" must be a list of {"containerID", "ifname"} objects.'],
      [{ ...rest, 'cni.dev/valid-attachments': [{ containerID: 'a/b', ifname: 'eth0' }] }, '"cni.dev/valid-attachments" must be a list of {"containerID", "ifname"} objects.'],
      [{ ...rest, 'cni.dev/valid-attachments': [{ containerID: 'abc' }] }, '"cni.dev/valid-attachments" must be a list of {"containerID", "ifname"} objects.'],
    ];
    for (const [config, msg] of cases) {
      const { transport, calls } = agent({ status: 200, body: {} });
      const out = await runPlugin(GC_ENV, JSON.stringify(config), transport);
      assert.equal(out.exitCode, 1);
      assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.1.0', code: CNI_ERRORS.invalid_config, msg });
      assert.equal(calls.length, 0);
    }
  });

  test('GC with the agent down is "try again later" (11); bad stdin for either verb is the decode failure (6)', async () => {
    const down = await runPlugin(GC_ENV, JSON.stringify(GC_CONFIG), agent(new Error('connect ECONNREFUSED')).transport);
    assert.equal(JSON.parse(down.stdout).code, CNI_ERRORS.try_again_later);
    for (const env of [STATUS_ENV, GC_ENV]) {
      const out = await runPlugin(env, '{"cniVersion":', agent({ status: 200, body: {} }).transport);
      assert.deepEqual([out.exitCode, JSON.parse(out.stdout).code], [1, CNI_ERRORS.decode_failure]);
    }
  });
});
