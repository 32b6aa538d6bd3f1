import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  broadcastOf,
  contains,
  formatCidr,
  formatIPv4,
  macForIPv4,
  overlaps,
  parseCidr,
  parseIPv4,
  requireCidr,
  usableRange,
} from '../../src/core/ipv4.ts';
import { normaliseNetns, requireIfname, requireName } from '../../src/core/names.ts';
import { VxnetError } from '../../src/core/errors.ts';

describe('IPv4 arithmetic', () => {
  it('parses and formats addresses strictly', () => {
    assert.equal(parseIPv4('192.168.1.2'), 0xc0a80102);
    assert.equal(formatIPv4(0xc0a80102), '192.168.1.2');
    assert.equal(formatIPv4(0xffffffff), '255.255.255.255');
    for (const bad of ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4 ', 'a.b.c.d', '', '1..2.3']) {
      assert.equal(parseIPv4(bad), undefined, bad);
    }
  });

  it('parses CIDRs and rejects host bits', () => {
    assert.deepEqual(parseCidr('192.168.1.0/24'), { network: 0xc0a80100, prefix: 24 });
    assert.equal(parseCidr('192.168.1.1/24'), undefined);
    assert.equal(parseCidr('192.168.1.0/33'), undefined);
    assert.equal(parseCidr('192.168.1.0'), undefined);
    assert.throws(() => requireCidr('10.0.0.0/8x'), (err: unknown) => err instanceof VxnetError && err.code === 'invalid_cidr');
    assert.equal(formatCidr(requireCidr('10.0.0.0/8')), '10.0.0.0/8');
  });

  it('computes broadcast, containment, overlap and usable ranges', () => {
    const net = requireCidr('192.168.1.0/24');
    assert.equal(formatIPv4(broadcastOf(net)), '192.168.1.255');
    assert.ok(contains(net, parseIPv4('192.168.1.77')!));
    assert.ok(!contains(net, parseIPv4('192.168.2.1')!));
    assert.ok(overlaps(net, requireCidr('192.168.0.0/16')));
    assert.ok(overlaps(requireCidr('192.168.1.128/25'), net));
    assert.ok(!overlaps(net, requireCidr('192.168.2.0/24')));
    const range = usableRange(requireCidr('10.0.0.0/30'));
    assert.deepEqual([formatIPv4(range.first), formatIPv4(range.last)], ['10.0.0.1', '10.0.0.2']);
  });

  it('derives a stable, locally administered unicast MAC from the address', () => {
    assert.equal(macForIPv4(parseIPv4('192.168.1.2')!), '02:78:c0:a8:01:02');
    const firstOctet = parseInt(macForIPv4(parseIPv4('10.0.0.1')!).slice(0, 2), 16);
    assert.equal(firstOctet & 0x01, 0, 'unicast');
    assert.equal(firstOctet & 0x02, 0x02, 'locally administered');
  });
});

describe('names', () => {
  it('accepts conservative names and rejects shell metacharacters and separators', () => {
    assert.equal(requireName('blue-net_1.a', 'network'), 'blue-net_1.a');
    for (const bad of ['', '-x', 'a b', 'a;rm -rf /', 'a/b', '../x', '$(id)', 'x'.repeat(64), 7]) {
      assert.throws(() => requireName(bad, 'network'), (err: unknown) => err instanceof VxnetError && err.code === 'invalid_name');
    }
  });

  it('bounds interface names to IFNAMSIZ', () => {
    assert.equal(requireIfname('eth0'), 'eth0');
    assert.throws(() => requireIfname('x'.repeat(16)));
    assert.throws(() => requireIfname('a/b'));
  });

  it('normalises namespace names to /run/netns paths and keeps safe absolute paths', () => {
    assert.equal(normaliseNetns('c1'), '/run/netns/c1');
    assert.equal(normaliseNetns('/proc/123/ns/net'), '/proc/123/ns/net');
    assert.throws(() => normaliseNetns('/run/netns/../../etc/passwd'));
    assert.throws(() => normaliseNetns('c1;reboot'));
    assert.throws(() => normaliseNetns(''));
  });
});
