/** IPv6 text forms (RFC 4291 in, RFC 5952 out), subnets and the values derived from addresses. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  contains6,
  formatCidr6,
  formatIPv6,
  ipv6Bytes,
  ipv6FromBytes,
  macForIPv6,
  overlaps6,
  parseCidr6,
  parseIPv6,
  requireCidr6,
  requireIPv6,
  solicitedNodeAddress,
  usableRange6,
} from '../../src/core/ipv6.ts';
import { macForIPv4, parseIPv4 } from '../../src/core/ipv4.ts';

const canonical = (text: string) => {
  const value = parseIPv6(text);
  assert.notEqual(value, undefined, text);
  return formatIPv6(value!);
};

describe('IPv6 addresses', () => {
  it('reads every RFC 4291 form and writes the RFC 5952 one', () => {
    assert.equal(canonical('2001:0DB8:0000:0000:0008:0800:200C:417A'), '2001:db8::8:800:200c:417a');
    assert.equal(canonical('::'), '::');
    assert.equal(canonical('::1'), '::1');
    assert.equal(canonical('fe80::'), 'fe80::');
    assert.equal(canonical('fd00:1::3'), 'fd00:1::3');
    // one zero group is not shortened; of two equal runs the first is
    assert.equal(canonical('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(canonical('2001:0:0:1:0:0:0:1'), '2001:0:0:1::1');
    assert.equal(canonical('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(canonical('::ffff:192.0.2.128'), '::ffff:c000:280');
    assert.equal(canonical('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4:5:6:102:304');
  });

  it('refuses what is not an address', () => {
    for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '12345::', 'g::1', '192.0.2.1', '::1.2.3', 'fe80::1%eth0', '1.2.3.4::', ' ::1']) {
      assert.equal(parseIPv6(bad), undefined, bad);
    }
    assert.throws(() => requireIPv6('fd00::g', 'gateway'), { message: 'gateway "fd00::g" is not a valid IPv6 address.' });
  });

  it('turns into 16 bytes and back', () => {
    const value = parseIPv6('fd00:1::abcd')!;
    const bytes = ipv6Bytes(value);
    assert.deepEqual([...bytes.subarray(0, 4)], [0xfd, 0x00, 0x00, 0x01]);
    assert.deepEqual([...bytes.subarray(14)], [0xab, 0xcd]);
    assert.equal(ipv6FromBytes(bytes), value);
  });
});

describe('IPv6 subnets', () => {
  it('parses strictly and says why not, one cause each', () => {
    assert.equal(formatCidr6(parseCidr6('fd00:1::/64')!), 'fd00:1::/64');
    assert.equal(formatCidr6(parseCidr6('::/0')!), '::/0');
    assert.equal(parseCidr6('fd00:1::1/64'), undefined);
    assert.throws(() => requireCidr6('fd00:1::1/64'), { message: 'subnet "fd00:1::1/64" is not a valid IPv6 subnet: its host bits are set, the subnet of fd00:1::1/64 is fd00:1::/64.' });
    assert.throws(() => requireCidr6('fd00:1::'), { message: 'subnet "fd00:1::" is not a valid IPv6 subnet: the prefix length is missing, as in fd00:1::/64.' });
    assert.throws(() => requireCidr6('fd00:1::/129'), { message: 'subnet "fd00:1::/129" is not a valid IPv6 subnet: the prefix length after "/" must be a number from 0 to 128, as in fd00:1::/64.' });
    assert.throws(() => requireCidr6('10.0.0.0/8'), { message: 'subnet "10.0.0.0/8" is not a valid IPv6 subnet: write it as an IPv6 address and a prefix length, such as fd00:1::/64.' });
  });

  it('contains, overlaps and hands out every address but the subnet-router anycast one', () => {
    const net = parseCidr6('fd00:1::/64')!;
    assert.equal(contains6(net, parseIPv6('fd00:1::ffff:1')!), true);
    assert.equal(contains6(net, parseIPv6('fd00:2::1')!), false);
    assert.equal(overlaps6(net, parseCidr6('fd00::/16')!), true);
    assert.equal(overlaps6(net, parseCidr6('fd00:2::/64')!), false);
    const range = usableRange6(parseCidr6('fd00:1::/126')!);
    assert.deepEqual([formatIPv6(range.first), formatIPv6(range.last)], ['fd00:1::1', 'fd00:1::3']);
    const host = usableRange6(parseCidr6('fd00:1::5/128')!);
    assert.equal(host.first, host.last);
  });
});

describe('values derived from an IPv6 address', () => {
  it('solicited-node multicast group keeps the low 24 bits', () => {
    assert.equal(formatIPv6(solicitedNodeAddress(parseIPv6('fd00:1::3')!)), 'ff02::1:ff00:3');
    assert.equal(formatIPv6(solicitedNodeAddress(parseIPv6('2001:db8::8:800:200c:417a')!)), 'ff02::1:ff0c:417a');
  });

  it('MAC: stable, locally administered unicast, never one an IPv4 address gives', () => {
    assert.equal(macForIPv6(parseIPv6('fd00:1::c0a8:103')!), '02:79:c0:a8:01:03');
    assert.notEqual(macForIPv6(parseIPv6('fd00:1::c0a8:103')!), macForIPv4(parseIPv4('192.168.1.3')!));
    const first = parseInt(macForIPv6(parseIPv6('fd00:1::1')!).slice(0, 2), 16);
    assert.equal(first & 0b11, 0b10);
  });
});
