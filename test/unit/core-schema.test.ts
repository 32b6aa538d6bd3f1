/**
 * The schemas of src/core/schema: the one translator from valibot's issues to vxnet's sentences, the issue it
 * picks among several, and the compiled fast check, which must say yes and no exactly as valibot does.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as v from 'valibot';
import { ERROR_STATUS, VxnetError } from '../../src/core/errors.ts';
import { check, requireBody } from '../../src/core/schema/check.ts';
import { CreateNetworkRequestSchema, EndpointStatusRequestSchema, HeartbeatRequestSchema, JoinRequestSchema } from '../../src/core/schema/requests.ts';
import { EndpointSchema, NodeStatusListSchema } from '../../src/core/schema/resources.ts';
import { WATCH_MESSAGE_TYPES, WatchMessageSchema } from '../../src/core/schema/watch.ts';
import { PluginRequestError, parseCreateNetwork, parseJoin, parseRequestPool } from '../../src/docker/api.ts';

function refusal(schema: v.GenericSchema, body: unknown): string {
  try {
    requireBody(schema, body);
  } catch (err) {
    assert.ok(err instanceof VxnetError && err.code === 'bad_request', String(err));
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(body)}`);
}

const endpoint = {
  id: '0123456789ab',
  network: 'blue',
  node: 'h1',
  netns: '/run/netns/c1',
  ifname: 'eth0',
  ip: '10.1.0.2',
  prefix: 24,
  gateway: '10.1.0.1',
  mac: '02:78:0a:01:00:02',
  status: 'ready',
  createdAt: '2026-01-01T00:00:00.000Z',
};

describe('request bodies: one sentence naming the field', () => {
  test('wrong types say what the field must be and what it was', () => {
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', vni: 'x' }), 'field "vni" must be an integer, not string "x".');
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', vni: 1.5 }), 'field "vni" must be an integer, not number 1.5.');
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', mtu: null }), 'field "mtu" must be an integer, not null.');
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', internal: 'yes' }), 'field "internal" must be true or false, not string "yes".');
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', subnets: '10.0.0.0/24' }), 'field "subnets" must be an array of {cidr, gateway}, not string "10.0.0.0/24".');
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', subnets: [[1]] }), 'field "subnets[0]" must be a JSON object, not an array.');
    assert.equal(refusal(CreateNetworkRequestSchema, { name: 'n', subnets: [] }), 'field "subnets" must not be empty: omit it to get a default subnet.');
    assert.equal(refusal(HeartbeatRequestSchema, { reconciledRevision: '5' }), 'field "reconciledRevision" must be an integer, not string "5".');
    assert.equal(refusal(HeartbeatRequestSchema, { reconciledRevision: -1 }), 'field "reconciledRevision" must not be negative.');
    assert.equal(refusal(EndpointStatusRequestSchema, { status: 'done' }), 'field "status" must be "pending", "ready" or "error", not string "done".');
    assert.equal(refusal(JoinRequestSchema, { name: 'n', publicKey: 'k', role: 'root' }), 'field "role" must be "worker" or "admin", not string "root".');
  });

  test('the body itself, missing and unknown fields', () => {
    assert.equal(refusal(CreateNetworkRequestSchema, [1, 2]), 'the network request body must be a JSON object, not an array.');
    assert.equal(refusal(CreateNetworkRequestSchema, 'x'), 'the network request body must be a JSON object, not string "x".');
    assert.equal(refusal(CreateNetworkRequestSchema, { vni: 5 }), 'field "name" is required in the network request.');
    assert.equal(
      refusal(CreateNetworkRequestSchema, { name: 'n', subnet: 'x' }),
      'unknown field "subnet" in the network request (known fields: name, vni, subnets, mtu, port, internal, multicastGroup, encrypted).',
    );
    assert.match(refusal(CreateNetworkRequestSchema, { name: 'n', subnets: [{ cidr: 'c', gw: 'g' }] }), /^unknown field "subnets\[0\]\.gw" in the network request \(known fields: cidr, gateway\)\.$/);
    assert.match(refusal(CreateNetworkRequestSchema, JSON.parse('{"name":"n","__proto__":{"admin":true}}')), /^unknown field "__proto__"/);
    assert.match(refusal(CreateNetworkRequestSchema, { name: 'n', ['k'.repeat(1000)]: 1 }), /^unknown field "k{40}…" in the network request/);
  });

  test('of several issues, the wrong container first, then an unknown field, then the fields in order', () => {
    // a typo explains the missing field that follows from it
    assert.match(refusal(CreateNetworkRequestSchema, { nmae: 'n' }), /^unknown field "nmae"/);
    assert.match(refusal(CreateNetworkRequestSchema, { name: 1, colour: 'x' }), /^unknown field "colour"/);
    assert.match(refusal(CreateNetworkRequestSchema, { name: 1, vni: 'x' }), /^field "name" must be a string/);
    assert.match(refusal(CreateNetworkRequestSchema, { name: 'n', vni: 'x', subnets: [{ cidr: 'c', mask: 1 }] }), /^field "vni"/);
    assert.match(refusal(CreateNetworkRequestSchema, { name: 'n', subnets: [{ cidr: 1, mask: 1 }] }), /^unknown field "subnets\[0\]\.mask"/);
  });

  test('a body that fits comes back as it is', () => {
    const body = { name: 'n', subnets: [{ cidr: '10.0.0.0/24' }], internal: true };
    assert.equal(requireBody(CreateNetworkRequestSchema, body), body);
  });
});

describe('the compiled check', () => {
  const snapshot = { type: 'snapshot', revision: 3, nodes: [{ name: 'h1', address: '10.0.0.1', mtu: 1500, registeredAt: 'x' }], networks: [], endpoints: [endpoint] };
  const cases: [v.GenericSchema, unknown][] = [
    [WatchMessageSchema, snapshot],
    [WatchMessageSchema, { ...snapshot, endpoints: [{ ...endpoint, prefix: '24' }] }],
    [WatchMessageSchema, { ...snapshot, endpoints: [{ ...endpoint, docker: 5 }] }],
    [WatchMessageSchema, { ...snapshot, endpoints: [{ ...endpoint, reserved: true, message: 'm' }] }],
    [WatchMessageSchema, { ...snapshot, nodes: null }],
    [WatchMessageSchema, { type: 'ping', revision: 1.5 }],
    [WatchMessageSchema, { type: 'ping', revision: 1, extra: true }],
    [WatchMessageSchema, { type: 'endpoint-deleted', revision: 1, id: 'x' }],
    [WatchMessageSchema, { type: 'weather', revision: 1 }],
    [WatchMessageSchema, { type: 'network', revision: 1, network: { name: 'b', vni: 1, subnets: [{ cidr: 'c', gateway: 'g' }], mtu: 1450, port: 4789, internal: false, createdAt: 'x' } }],
    [WatchMessageSchema, { type: 'network', revision: 1, network: { name: 'b', vni: 1, subnets: [{ cidr: 'c' }], mtu: 1450, port: 4789, internal: false, createdAt: 'x' } }],
    [NodeStatusListSchema, [{ name: 'h1', address: 'a', mtu: 1500, registeredAt: 'x', state: 'up', lastSeen: null, reconciledRevision: 0 }]],
    [NodeStatusListSchema, [{ name: 'h1', address: 'a', mtu: 1500, registeredAt: 'x', state: 'gone', lastSeen: null, reconciledRevision: 0 }]],
    [NodeStatusListSchema, [{ name: 'h1', address: 'a', mtu: 1500, registeredAt: 'x', state: 'up', lastSeen: 5, reconciledRevision: 0 }]],
    [CreateNetworkRequestSchema, { name: 'n', subnets: [] }],
    [CreateNetworkRequestSchema, { name: 'n', subnets: [{ cidr: 'c', gateway: 'g' }], vni: 2 ** 60 }],
    [CreateNetworkRequestSchema, { name: 'n', extra: 1 }],
    [HeartbeatRequestSchema, { reconciledRevision: 0 }],
    [HeartbeatRequestSchema, { reconciledRevision: -1 }],
    [EndpointSchema, [endpoint]],
  ];
  test('says yes and no exactly as valibot does', () => {
    for (const [schema, value] of cases) {
      assert.equal(check(schema, value, 'value').ok, v.safeParse(schema, value).success, JSON.stringify(value));
    }
  });

  test('every watch message type is known to the client', () => {
    assert.deepEqual([...WATCH_MESSAGE_TYPES].sort(), [
      'diagnose', 'endpoint', 'endpoint-deleted', 'network', 'network-deleted', 'network-forgotten', 'node', 'node-deleted', 'ping', 'snapshot',
    ]);
  });
});

describe('Docker plugin requests', () => {
  test('a malformed call is a PluginRequestError, a coded VxnetError with status 400, worded for the call', () => {
    assert.throws(() => parseJoin({ NetworkID: 'x', EndpointID: 'y' }), (err: unknown) => {
      assert.ok(err instanceof PluginRequestError && err instanceof VxnetError);
      assert.equal(err.code, 'bad_plugin_request');
      assert.equal(err.status, 400);
      assert.equal(ERROR_STATUS.bad_plugin_request, 400);
      assert.equal(err.message, 'Join: field "NetworkID" must be a Docker id (64 hex characters).');
      return true;
    });
    assert.throws(() => parseRequestPool([]), { message: 'RequestPool must be a JSON object.' });
    assert.throws(() => parseRequestPool({ V6: 'yes' }), { message: 'RequestPool: field "V6" must be true or false.' });
    assert.throws(() => parseCreateNetwork({ NetworkID: 'a'.repeat(64), IPv4Data: [{}] }), { message: 'CreateNetwork: field "IPv4Data[0].Pool" is required.' });
  });

  test('null is absent and absent is empty, as Go means them', () => {
    const id = 'a'.repeat(64);
    assert.deepEqual(parseCreateNetwork({ NetworkID: id, Options: null, IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '', AuxAddresses: null }] }), {
      NetworkID: id,
      Options: {},
      IPv4Data: [{ AddressSpace: '', Pool: '10.1.0.0/24' }],
      IPv6Data: [],
    });
    assert.deepEqual(parseRequestPool({}), { AddressSpace: '', Pool: '', SubPool: '', Options: {}, V6: false });
  });
});
