/**
 * `docker network create -d vxnet -o encrypt` (vxnet issue 10): the option as CreateNetwork carries it
 * (`-o encrypt` alone arrives as ""), the vxnet request it becomes, and the binding to an existing network,
 * which must agree on encryption when the option is given. test/integration/encrypted-docker.test.ts runs
 * it through real engines.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VxnetError } from '../../src/core/errors.ts';
import type { CreateNetworkRequest } from '../../src/docker/api.ts';
import { checkBinding, parseNetworkSpec, requestOf } from '../../src/docker/network-spec.ts';
import { networkRecord } from './support/fixtures.ts';

function create(generic: Record<string, string>): CreateNetworkRequest {
  return {
    NetworkID: '1'.repeat(64),
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': generic },
    IPv4Data: [{ AddressSpace: 'vxnet', Pool: '10.7.0.0/24' }],
    IPv6Data: [],
  };
}

function refused(pattern: RegExp) {
  return (err: unknown) => err instanceof VxnetError && err.code === 'bad_request' && pattern.test(err.message);
}

describe('docker network create -o encrypt', () => {
  test('-o encrypt alone, or =true/yes/1, asks for an encrypted network; Swarm\'s spelling "encrypted" too', () => {
    for (const [key, value] of [['encrypt', ''], ['encrypt', 'true'], ['encrypt', 'YES'], ['encrypt', '1'], ['encrypted', '']] as const) {
      assert.deepEqual(requestOf(parseNetworkSpec(create({ [key]: value }))), { subnets: [{ cidr: '10.7.0.0/24' }], encrypted: true }, `${key}=${value}`);
    }
  });

  test('=false/no/0, or no option, is a plain network (the request carries no encrypted field)', () => {
    for (const generic of [{ encrypt: 'false' }, { encrypt: 'no' }, { encrypt: '0' }, {}] as Record<string, string>[]) {
      assert.deepEqual(requestOf(parseNetworkSpec(create(generic))), { subnets: [{ cidr: '10.7.0.0/24' }] });
    }
  });

  test('another value is refused in one sentence', () => {
    assert.throws(() => parseNetworkSpec(create({ encrypt: 'maybe' })), refused(/^option "-o encrypt" takes no value or true\/false, not "maybe"\.$/));
  });

  test('binding to an existing network: -o encrypt must agree with it, leaving it out binds to either', () => {
    const plain = networkRecord('plain', ['10.7.0.0/24'], { vni: 700 });
    const secret = networkRecord('secret', ['10.7.0.0/24'], { vni: 701, encrypted: true, mtu: 1390 });
    assert.throws(() => checkBinding(plain, parseNetworkSpec(create({ encrypt: '' })), 1), refused(/it is not encrypted \(drop -o encrypt\)/));
    assert.throws(() => checkBinding(secret, parseNetworkSpec(create({ encrypt: 'false' })), 1), refused(/it is encrypted \(add -o encrypt\)/));
    checkBinding(secret, parseNetworkSpec(create({ encrypt: '' })), 1);
    checkBinding(secret, parseNetworkSpec(create({})), 1);
    checkBinding(plain, parseNetworkSpec(create({})), 1);
  });

  test('the unknown-option sentence names -o encrypt', () => {
    assert.throws(() => parseNetworkSpec(create({ color: 'red' })), refused(/-o multicast-group=\.\.\., -o encrypt\.$/));
  });
});
