import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatEndpointAddress,
  formatEndpointTable,
  formatEndpointTarget,
  formatError,
  formatJson,
  formatLastSeen,
  formatNetworkCreated,
  formatNetworkDetail,
  formatNetworkTable,
  formatNodeTable,
  formatTable,
} from '../../src/cli/format.ts';
import type { Endpoint, Network, NodeStatus } from '../../src/core/model.ts';
import { blueEndpoint, blueNetwork } from './support/fixtures.ts';

const blue = blueNetwork('2024-05-01T10:00:00.000Z');

const redNet: Network = {
  name: 'red-network',
  vni: 2000,
  subnets: [
    { cidr: '10.1.0.0/16', gateway: '10.1.0.1' },
    { cidr: '10.2.0.0/24', gateway: '10.2.0.254' },
  ],
  mtu: 1400,
  port: 8472,
  internal: true,
  multicastGroup: '239.1.1.1',
  createdAt: '2024-05-01T10:00:00.000Z',
};

const endpoint = blueEndpoint({ id: 'ep-1', node: 'h1', netns: '/run/netns/c1', host: 2, createdAt: '2024-05-01T10:00:00.000Z' });

describe('formatTable', () => {
  test('pads every column but the last to its widest cell, header first', () => {
    assert.equal(
      formatTable(['A', 'LONG-HEADER', 'C'], [['xxxx', 'y', 'z'], ['1', '2', 'last column is not padded']]),
      ['A      LONG-HEADER   C', 'xxxx   y             z', '1      2             last column is not padded', ''].join('\n'),
    );
  });

  test('an empty listing is the header alone', () => {
    assert.equal(formatTable(['NAME', 'VNI'], []), 'NAME   VNI\n');
  });

  test('no line ends in spaces', () => {
    const out = formatTable(['A', 'B'], [['x', '']]);
    for (const line of out.split('\n')) assert.equal(line, line.trimEnd());
  });
});

describe('network output', () => {
  test('network ls table', () => {
    assert.equal(
      formatNetworkTable([blue, redNet]),
      [
        'NAME          VNI    SUBNETS                   MTU    PORT   INTERNAL   MULTICAST',
        'blue          1000   192.168.1.0/24            1450   4789   no         -',
        'red-network   2000   10.1.0.0/16,10.2.0.0/24   1400   8472   yes        239.1.1.1',
        '',
      ].join('\n'),
    );
  });

  test('network create prints name, vni, subnets with gateways and mtu on one line', () => {
    assert.equal(formatNetworkCreated(blue), 'created network blue: vni 1000, subnet 192.168.1.0/24 (gateway 192.168.1.1), mtu 1450\n');
    assert.equal(
      formatNetworkCreated(redNet),
      'created network red-network: vni 2000, subnets 10.1.0.0/16 (gateway 10.1.0.1), 10.2.0.0/24 (gateway 10.2.0.254), mtu 1400\n',
    );
  });

  test('network inspect is JSON in reading order, multicastGroup always present', () => {
    const out = formatNetworkDetail({ ...blue, endpoints: [endpoint] });
    const parsed = JSON.parse(out) as Record<string, unknown>;
    assert.deepEqual(Object.keys(parsed), [
      'name',
      'vni',
      'subnets',
      'mtu',
      'port',
      'internal',
      'multicastGroup',
      'createdAt',
      'endpoints',
    ]);
    assert.equal(parsed['multicastGroup'], null);
    assert.deepEqual(parsed['subnets'], [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }]);
    assert.deepEqual(parsed['endpoints'], [endpoint]);
    assert.ok(out.endsWith('}\n'));
  });
});

describe('node output', () => {
  const now = new Date('2024-05-01T12:00:00.000Z');
  test('node ls: NAME ADDRESS MTU STATE LAST-SEEN', () => {
    const nodes: NodeStatus[] = [
      { name: 'h1', address: '10.0.0.1', mtu: 1500, registeredAt: 'x', state: 'up', lastSeen: '2024-05-01T11:59:57.500Z', reconciledRevision: 4 },
      { name: 'host-two', address: '10.0.0.22', mtu: 9000, registeredAt: 'x', state: 'down', lastSeen: null, reconciledRevision: 0 },
    ];
    assert.equal(
      formatNodeTable(nodes, now),
      [
        'NAME       ADDRESS     MTU    STATE   LAST-SEEN',
        'h1         10.0.0.1    1500   up      2s ago',
        'host-two   10.0.0.22   9000   down    never',
        '',
      ].join('\n'),
    );
  });

  test('last seen is relative to now', () => {
    const ago = (ms: number): string => new Date(now.getTime() - ms).toISOString();
    assert.equal(formatLastSeen(null, now), 'never');
    assert.equal(formatLastSeen(ago(300), now), 'just now');
    assert.equal(formatLastSeen(ago(-5000), now), 'just now');
    assert.equal(formatLastSeen(ago(59_000), now), '59s ago');
    assert.equal(formatLastSeen(ago(125_000), now), '2m ago');
    assert.equal(formatLastSeen(ago(3 * 3600_000), now), '3h ago');
    assert.equal(formatLastSeen(ago(50 * 3600_000), now), '2d ago');
    assert.equal(formatLastSeen('garbage', now), 'garbage');
  });
});

describe('endpoint output', () => {
  test('address as ip/prefix', () => {
    assert.equal(formatEndpointAddress(endpoint), '192.168.1.2/24');
  });

  test('endpoint ls table, with the reason of a failed endpoint', () => {
    const failed: Endpoint = { ...endpoint, id: 'ep-2', ip: '192.168.1.3', status: 'error', message: 'netns c9\nnot found' };
    assert.equal(
      formatEndpointTable([endpoint, failed]),
      [
        'ID     NETWORK   NODE   TARGET          IFNAME   ADDRESS          MAC                 STATUS',
        'ep-1   blue      h1     /run/netns/c1   eth0     192.168.1.2/24   02:78:c0:a8:01:02   ready',
        'ep-2   blue      h1     /run/netns/c1   eth0     192.168.1.3/24   02:78:c0:a8:01:02   error: netns c9 not found',
        '',
      ].join('\n'),
    );
  });

  test('endpoint ls table shows every address of a dual-stack endpoint, comma-joined, IPv4 first', () => {
    const dual: Endpoint = {
      ...endpoint,
      addresses: [
        { ip: '192.168.1.2', prefix: 24, gateway: '192.168.1.1' },
        { ip: 'fd00:1::2', prefix: 64, gateway: 'fd00:1::1' },
      ],
    };
    const only6: Endpoint = { ...endpoint, id: 'ep-3', ip: 'fd00:2::5', prefix: 64, gateway: 'fd00:2::1' };
    const table = formatEndpointTable([dual, only6]);
    assert.match(table.split('\n')[1]!, / 192\.168\.1\.2\/24,fd00:1::2\/64 /);
    assert.match(table.split('\n')[2]!, / fd00:2::5\/64 /);
  });
});

describe('endpoint targets', () => {
  test('a Docker endpoint shows its container by name once the plugin told it, its endpoint id until then', () => {
    const { netns: _n, ...docker } = { ...endpoint, docker: '23a4ddcc8a40'.padEnd(64, '0') };
    assert.equal(formatEndpointTarget(docker), 'docker:23a4ddcc8a40');
    assert.equal(formatEndpointTarget({ ...docker, dockerContainer: 'web' }), 'docker:web');
    assert.equal(formatEndpointTarget({ ...endpoint, netns: undefined, container: 'lone' } as Endpoint), 'container:lone');
  });
});

describe('JSON and errors', () => {
  test('JSON is pretty and ends with a newline', () => {
    assert.equal(formatJson([1, { a: 2 }]), '[\n  1,\n  {\n    "a": 2\n  }\n]\n');
  });

  test('an error is exactly one line', () => {
    assert.equal(formatError('bad thing\n  happened.\n'), 'vxnet: bad thing happened.\n');
  });
});
