import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { DnsResponder } from '../../src/agent/dns/responder.ts';
import { queryDns } from '../../src/agent/dns/query.ts';
import { NetworkZone, type ZoneDecision } from '../../src/agent/dns/zone.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { dnsZones } from '../../src/agent/desired.ts';
import type { Endpoint, Network } from '../../src/core/model.ts';
import { decodeDns, dnsQuery, DnsRcode, DnsType, encodeDns } from '../../src/packet/dns.ts';
import { blueEndpoint, blueNetwork, twoNodes } from './support/fixtures.ts';

const blue = blueNetwork('');
const ep = (id: string, host: number, extra: Partial<Endpoint> = {}): Endpoint => ({
  ...blueEndpoint({ id, node: host % 2 ? 'host1' : 'host2', netns: `/run/netns/ns${host}`, host, createdAt: '' }),
  ...extra,
});

function ask(zone: NetworkZone, name: string, type: number = DnsType.A): ZoneDecision {
  return zone.decide(decodeDns(encodeDns(dnsQuery(9, name, type))));
}
const addresses = (d: ZoneDecision): string[] => (d === 'forward' ? ['forward'] : d.answer.answers.map((r) => r.address ?? r.target!));
const rcode = (d: ZoneDecision): number | 'forward' => (d === 'forward' ? 'forward' : d.answer.rcode);

test('NAME and NAME.NETWORK resolve, in any case; an alias shared by several gives all of them', () => {
  const zone = new NetworkZone(blue);
  zone.put(ep('a', 2, { name: 'web', aliases: ['api'] }));
  zone.put(ep('b', 3, { name: 'db', aliases: ['api'] }));
  assert.deepEqual(addresses(ask(zone, 'web')), ['192.168.1.2']);
  assert.deepEqual(addresses(ask(zone, 'WEB.Blue')), ['192.168.1.2']);
  assert.deepEqual(addresses(ask(zone, 'web.blue.')), ['192.168.1.2']);
  assert.deepEqual(addresses(ask(zone, 'api')), ['192.168.1.2', '192.168.1.3']);
  const answer = ask(zone, 'web');
  assert.ok(answer !== 'forward');
  assert.equal(answer.answer.authoritative, true);
  assert.equal(answer.answer.answers[0]!.ttl, 0);
  assert.equal(answer.answer.id, 9);
});

test('a known name of another type is an empty answer; an unknown name inside the network is NXDOMAIN without SOA; the rest is forwarded', () => {
  const zone = new NetworkZone(blue);
  zone.put(ep('a', 2, { name: 'web' }));
  const aaaa = ask(zone, 'web', DnsType.AAAA);
  assert.equal(rcode(aaaa), DnsRcode.NOERROR);
  assert.deepEqual(addresses(aaaa), []);
  const missing = ask(zone, 'nope.blue');
  assert.equal(rcode(missing), DnsRcode.NXDOMAIN);
  assert.ok(missing !== 'forward' && missing.answer.authorities.length === 0);
  assert.equal(ask(zone, 'nope'), 'forward');
  assert.equal(ask(zone, 'example.org'), 'forward');
  // a name of network red is none of blue's business
  assert.equal(ask(zone, 'web.red'), 'forward');
});

test('reverse lookups answer for the network subnets only', () => {
  const zone = new NetworkZone(blue);
  zone.put(ep('a', 2, { name: 'web' }));
  zone.put(ep('b', 4));
  assert.deepEqual(addresses(ask(zone, '2.1.168.192.in-addr.arpa', DnsType.PTR)), ['web.blue']);
  // no name given: the namespace name
  assert.deepEqual(addresses(ask(zone, '4.1.168.192.in-addr.arpa', DnsType.PTR)), ['ns4.blue']);
  assert.equal(rcode(ask(zone, '9.1.168.192.in-addr.arpa', DnsType.PTR)), DnsRcode.NXDOMAIN);
  assert.equal(ask(zone, '1.0.0.10.in-addr.arpa', DnsType.PTR), 'forward');
});

test("a namespace's name gives way to an endpoint that carries it as its name or alias", () => {
  const zone = new NetworkZone(blue);
  zone.put(ep('a', 2, { netns: '/run/netns/web' }));
  assert.deepEqual(addresses(ask(zone, 'web')), ['192.168.1.2']);
  zone.put(ep('b', 3, { aliases: ['web'] }));
  assert.deepEqual(addresses(ask(zone, 'web')), ['192.168.1.3']);
  zone.remove('b');
  assert.deepEqual(addresses(ask(zone, 'web')), ['192.168.1.2']);
});

test('a removed or failed endpoint answers nothing, at once', () => {
  const zone = new NetworkZone(blue);
  zone.put(ep('a', 2, { name: 'web' }));
  zone.remove('a');
  assert.equal(rcode(ask(zone, 'web.blue')), DnsRcode.NXDOMAIN);
  assert.equal(rcode(ask(zone, '2.1.168.192.in-addr.arpa', DnsType.PTR)), DnsRcode.NXDOMAIN);
  zone.put(ep('a', 2, { name: 'web', status: 'error' }));
  assert.equal(ask(zone, 'web'), 'forward');
  assert.equal(zone.size, 0);
});

test('queries that are not plain questions get an error code', () => {
  const zone = new NetworkZone(blue);
  assert.equal(rcode(zone.decide({ ...dnsQuery(1, 'x', DnsType.A), opcode: 2 })), DnsRcode.NOTIMP);
  assert.equal(rcode(zone.decide({ ...dnsQuery(1, 'x', DnsType.A), questions: [] })), DnsRcode.FORMERR);
});

test("the renderer keeps each network's zone up to date from the view, one endpoint at a time", () => {
  const view = new ClusterView();
  const self = { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' };
  view.apply({ type: 'snapshot', revision: 1, nodes: twoNodes, networks: [blue], endpoints: [ep('a', 1, { name: 'local' }), ep('b', 2, { name: 'remote' })] });
  const zone = dnsZones(view, self).get('blue')!;
  assert.deepEqual(addresses(ask(zone, 'remote')), ['192.168.1.2']);
  view.apply({ type: 'endpoint-deleted', revision: 2, id: 'b', network: 'blue' });
  view.apply({ type: 'endpoint', revision: 3, endpoint: ep('c', 4, { name: 'remote' }) });
  const again = dnsZones(view, self).get('blue')!;
  assert.equal(again, zone, 'the same zone object, updated in place');
  assert.deepEqual(addresses(ask(zone, 'remote')), ['192.168.1.4']);
  // no local endpoint left: no zone (its gateway is gone from this node)
  view.apply({ type: 'endpoint-deleted', revision: 4, id: 'a', network: 'blue' });
  assert.equal(dnsZones(view, self).has('blue'), false);
});

test('the responder answers on its gateway over UDP and TCP, forwards the rest unchanged, and ignores sources outside the network', async (t) => {
  // an upstream resolver on loopback (127.0.0.2: the gateway's own address in resolv.conf is skipped, it would loop) that answers every question with 203.0.113.9
  const upstream = createSocket('udp4');
  const forwarded: string[] = [];
  upstream.on('message', (message, from) => {
    const q = decodeDns(new Uint8Array(message));
    // what the responder cannot answer itself (even a name of non-ASCII bytes) reaches it unchanged; it ignores those
    if (!/^[\x21-\x7e]*$/.test(q.questions[0]!.name)) return;
    forwarded.push(q.questions[0]!.name);
    const answer = { ...q, response: true, answers: [{ name: q.questions[0]!.name, type: DnsType.A, class: 1, ttl: 300, address: '203.0.113.9' }] };
    upstream.send(encodeDns(answer), from.port, from.address);
  });
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.2', r));
  t.after(() => upstream.close());
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/vxnet-dns-');
  writeFileSync(`${dir}/resolv.conf`, '# test\nnameserver 127.0.0.1\nnameserver 127.0.0.2\n');

  const loopback: Network = { ...blue, subnets: [{ cidr: '127.0.0.0/8', gateway: '127.0.0.1' }] };
  const zone = new NetworkZone(loopback);
  zone.put(ep('a', 2, { name: 'web' }));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const responder = new DnsResponder({ resolvConf: `${dir}/resolv.conf`, port, upstreamPort: (upstream.address() as AddressInfo).port });
  t.after(() => responder.close());
  responder.sync(new Map([['blue', zone]]));
  for (let i = 0; i < 200 && responder.serving.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(responder.serving, ['blue 127.0.0.1']);

  const udp = await queryDns('127.0.0.1', 'web.blue', DnsType.A, { port });
  assert.deepEqual(udp?.answers.map((r) => r.address), ['192.168.1.2']);
  const tcp = await queryDns('127.0.0.1', 'web', DnsType.A, { port, tcp: true });
  assert.deepEqual(tcp?.answers.map((r) => r.address), ['192.168.1.2']);
  const outside = await queryDns('127.0.0.1', 'example.org', DnsType.A, { port });
  assert.deepEqual(outside?.answers.map((r) => [r.address, r.ttl]), [['203.0.113.9', 300]], 'the upstream answer, unchanged');
  assert.deepEqual(forwarded, ['example.org']);

  // what a container sends cannot end the responder: a label of non-ASCII bytes, a truncated header, garbage
  const raw = createSocket('udp4');
  for (const bytes of [
    // "\xff\xfe.blue": inside the network, so the responder answers it itself and cannot write the name back
    Uint8Array.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xfe, 4, 0x62, 0x6c, 0x75, 0x65, 0, 0, 1, 0, 1]),
    Uint8Array.from([0, 1, 1]),
    Uint8Array.from([7]),
  ]) {
    raw.send(bytes, port, '127.0.0.1');
  }
  await new Promise((r) => setTimeout(r, 100));
  raw.close();
  assert.deepEqual((await queryDns('127.0.0.1', 'web', DnsType.A, { port }))?.answers.map((r) => r.address), ['192.168.1.2'], 'still answering');

  // the same gateway serving a network whose subnets do not hold the asker stays silent
  const other = new NetworkZone({ ...blue, subnets: [{ cidr: '10.0.0.0/8', gateway: '127.0.0.1' }] });
  other.put(ep('a', 2, { name: 'web' }));
  responder.sync(new Map([['blue', other]]));
  assert.equal(await queryDns('127.0.0.1', 'web', DnsType.A, { port, timeoutMs: 300 }), undefined);

  // a network that leaves closes its sockets
  responder.sync(new Map());
  assert.deepEqual(responder.serving, []);
  assert.equal(await queryDns('127.0.0.1', 'web', DnsType.A, { port, tcp: true, timeoutMs: 300 }), undefined);
});

test('a name shared by several endpoints and then left by them resolves to exactly those that still carry it', () => {
  const zone = new NetworkZone(blue);
  for (const [id, host] of [['a', 2], ['b', 3], ['c', 4]] as const) zone.put(ep(id, host, { aliases: ['api'] }));
  // put again unchanged: replaced, not counted twice
  zone.put(ep('b', 3, { aliases: ['api'] }));
  assert.deepEqual(addresses(ask(zone, 'api')), ['192.168.1.2', '192.168.1.3', '192.168.1.4']);
  zone.remove('a');
  zone.remove('c');
  assert.deepEqual(addresses(ask(zone, 'api')), ['192.168.1.3']);
  zone.put(ep('d', 5, { aliases: ['api'] }));
  assert.deepEqual(addresses(ask(zone, 'api')), ['192.168.1.3', '192.168.1.5']);
  zone.remove('b');
  zone.remove('d');
  assert.equal(ask(zone, 'api'), 'forward');
  // an endpoint without any name is not kept, and answers nothing
  zone.put(ep('e', 6, { netns: '/proc/42/ns/net' }));
  assert.equal(zone.size, 0);
  assert.equal(rcode(ask(zone, '6.1.168.192.in-addr.arpa', DnsType.PTR)), DnsRcode.NXDOMAIN);
});

test('a gateway the node does not hold yet is not served: the failed bind is said once, and closing stops the retries', async (t) => {
  const lines: string[] = [];
  // 192.0.2.1 (TEST-NET-1) is on no interface here, as a gateway is before its bridge exists
  const zone = new NetworkZone({ ...blue, subnets: [{ cidr: '192.0.2.0/24', gateway: '192.0.2.1' }] });
  const responder = new DnsResponder({ port: 20000 + Math.floor(Math.random() * 20000), log: (line) => lines.push(line) });
  t.after(() => responder.close());
  responder.sync(new Map([['blue', zone]]));
  for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(responder.serving, []);
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, /^warning: DNS: cannot answer on 192\.0\.2\.1:\d+ for network blue yet: .*EADDRNOTAVAIL/);
});
