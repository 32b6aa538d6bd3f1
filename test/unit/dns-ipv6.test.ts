/** Names on IPv6 networks (issue 15): AAAA for each endpoint's IPv6 address, ip6.arpa names back. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressOfReverseName6, NetworkZone, type ZoneDecision } from '../../src/agent/dns/zone.ts';
import type { Endpoint, Network } from '../../src/core/model.ts';
import { decodeDns, dnsQuery, DnsRcode, DnsType, encodeDns } from '../../src/packet/dns.ts';

const dual: Network = {
  name: 'dual', vni: 3100, mtu: 1450, port: 4789, internal: false, createdAt: '',
  subnets: [{ cidr: '192.168.31.0/24', gateway: '192.168.31.1' }, { cidr: 'fd00:61::/64', gateway: 'fd00:61::1' }],
};
const endpoint = (id: string, n: number, name: string, v6only = false): Endpoint => ({
  id, network: 'dual', node: 'host1', netns: `/run/netns/${id}`, ifname: 'eth0', mac: '02:78:00:00:00:01', status: 'ready', createdAt: '', name,
  ...(v6only
    ? { ip: `fd00:61::${n}`, prefix: 64, gateway: 'fd00:61::1' }
    : {
        ip: `192.168.31.${n}`, prefix: 24, gateway: '192.168.31.1',
        addresses: [{ ip: `192.168.31.${n}`, prefix: 24, gateway: '192.168.31.1' }, { ip: `fd00:61::${n}`, prefix: 64, gateway: 'fd00:61::1' }],
      }),
});
const ask = (zone: NetworkZone, name: string, type: number): ZoneDecision => zone.decide(decodeDns(encodeDns(dnsQuery(7, name, type))));
const answers = (d: ZoneDecision) => (d === 'forward' ? ['forward'] : d.answer.answers.map((r) => `${r.type} ${r.address ?? r.target}`));

test('A answers the IPv4 address, AAAA the IPv6 one, ANY both; the name exists for either', () => {
  const zone = new NetworkZone(dual);
  zone.put(endpoint('a', 2, 'web'));
  zone.put(endpoint('b', 3, 'six', true));
  assert.deepEqual(answers(ask(zone, 'web', DnsType.A)), [`${DnsType.A} 192.168.31.2`]);
  assert.deepEqual(answers(ask(zone, 'web.dual', DnsType.AAAA)), [`${DnsType.AAAA} fd00:61::2`]);
  assert.deepEqual(answers(ask(zone, 'web', DnsType.ANY)), [`${DnsType.A} 192.168.31.2`, `${DnsType.AAAA} fd00:61::2`]);
  const noA = ask(zone, 'six', DnsType.A);
  assert.ok(noA !== 'forward' && noA.answer.rcode === DnsRcode.NOERROR && noA.answer.answers.length === 0, 'an IPv6-only name has no A, and is no NXDOMAIN');
  assert.ok(zone.covers('fd00:61::99') && !zone.covers('fd00:62::1'));
});

test('ip6.arpa names of the network\'s addresses answer the endpoint\'s name; other ones are forwarded', () => {
  const zone = new NetworkZone(dual);
  zone.put(endpoint('a', 2, 'web'));
  const nibbles = (ip: string) => `${[...ip.replace(/:/g, '')].reverse().join('.')}.ip6.arpa`;
  const name = nibbles('fd000061000000000000000000000002');
  assert.equal(addressOfReverseName6(name), 'fd00:61::2');
  assert.deepEqual(answers(ask(zone, name, DnsType.PTR)), [`${DnsType.PTR} web.dual`]);
  assert.deepEqual(answers(ask(zone, nibbles('fd000062000000000000000000000002'), DnsType.PTR)), ['forward']);
  assert.equal(addressOfReverseName6('2.0.ip6.arpa'), undefined);
});
