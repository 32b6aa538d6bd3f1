/**
 * Anti-spoofing per bridge port (src/agent/kernel/antispoof.ts): the rules, the incremental element diff
 * and the parser of `nft -j list table bridge vxnet`. The real kernel and real frames:
 * test/integration/security-antispoof.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredEndpoint } from '../../src/agent/dataplane.ts';
import {
  ANTISPOOF_HASH,
  parseAntispoof,
  planAntispoof,
  portBindings,
  renderAntispoofTable,
  type AntispoofState,
} from '../../src/agent/kernel/antispoof.ts';

const a = { port: 'vxnhaaaaaaaaaa', mac: '02:78:c0:a8:01:02', ip: '192.168.1.2' };
const b = { port: 'vxnhbbbbbbbbbb', mac: '02:78:c0:a8:01:03', ip: '192.168.1.3' };
const installed = (...ports: (typeof a)[]): AntispoofState => ({
  present: true,
  hash: ANTISPOOF_HASH,
  macs: ports.map((p) => `${p.port} ${p.mac}`),
  ips: ports.map((p) => `${p.port} ${p.ip}`),
});

describe('anti-spoofing rules (table bridge vxnet)', () => {
  it('binds each endpoint’s host veth to its MAC (lower case) and address (without prefix)', () => {
    const ep = { hostVeth: 'vxnhaaaaaaaaaa', mac: '02:78:C0:A8:01:02', address: '192.168.1.2/24' } as DesiredEndpoint;
    assert.deepEqual(portBindings([ep]), [a]);
  });

  it('checks frames from host veths only: source MAC, IPv4 source, ARP sender MAC and address, IPv6 source and NDP target; drops anything else', () => {
    const table = renderAntispoofTable([`${a.port} ${a.mac}`], [`${a.port} ${a.ip}`]);
    const chain = /\tchain antispoof \{\n([\s\S]*?)\n\t\}/.exec(table)?.[1]?.split('\n').map((l) => l.trim());
    assert.deepEqual(chain, [
      'type filter hook prerouting priority -300; policy accept;',
      'iifname != "vxnh*" accept',
      'iifname . ether saddr != @endpoint_macs counter drop comment "source MAC is not the endpoint\'s"',
      'ether type ip iifname . ip saddr != @endpoint_ips counter drop comment "IPv4 source is not the endpoint\'s"',
      `ether type ip accept comment "vxnet antispoof sha256:${ANTISPOOF_HASH}"`,
      'ether type arp iifname . arp saddr ether != @endpoint_macs counter drop comment "ARP sender MAC is not the endpoint\'s"',
      'ether type arp arp saddr ip 0.0.0.0 accept comment "ARP probe (RFC 5227)"',
      'ether type arp iifname . arp saddr ip != @endpoint_ips counter drop comment "ARP sender address is not the endpoint\'s"',
      'ether type arp accept',
      // IPv6 since issue 15 (vxnet grants IPv6 addresses): no RA or redirect, NA targets and sources checked
      'icmpv6 type { nd-router-advert, nd-redirect } counter drop comment "a container sends no router advertisement or redirect"',
      'icmpv6 type nd-neighbor-advert @th,64,16 & 0xffc0 != 0xfe80 iifname . @th,64,128 != @endpoint_ips6 counter drop comment "NDP target is not the endpoint\'s"',
      'ether type ip6 iifname . @nh,64,128 @endpoint_ips6 accept comment "IPv6 from its endpoint"',
      'ether type ip6 ip6 saddr { ::, fe80::/10 } meta l4proto ipv6-icmp accept comment "neighbour discovery and MLD"',
      'ether type ip6 counter drop comment "IPv6 source is not the endpoint\'s"',
      'counter drop comment "neither IPv4, ARP nor IPv6"',
    ]);
    assert.match(table, /\tset endpoint_macs \{\n\t\ttype ifname \. ether_addr\n\t\telements = \{ "vxnhaaaaaaaaaa" \. 02:78:c0:a8:01:02 \}\n\t\}/);
    assert.match(table, /\tset endpoint_ips \{\n\t\ttype ifname \. ipv4_addr\n\t\telements = \{ "vxnhaaaaaaaaaa" \. 192\.168\.1\.2 \}\n\t\}/);
  });

  it('creates a missing, outdated or unreadable table whole, in one replacement', () => {
    for (const state of [
      { present: false, macs: [], ips: [] },
      { ...installed(a), hash: '0000000000000000' },
      { present: false, macs: [], ips: [], unreadable: 'nft: command not found' },
    ]) {
      const { lines, changes } = planAntispoof([a, b], state);
      assert.equal(changes, 1);
      assert.deepEqual(lines.slice(0, 2), ['table bridge vxnet', 'delete table bridge vxnet']);
      assert.match(lines[2]!, /elements = \{ "vxnhaaaaaaaaaa" \. 02:78:c0:a8:01:02, "vxnhbbbbbbbbbb" \. 02:78:c0:a8:01:03 \}/);
    }
  });

  it('changes only the elements that differ (the cost grows with what changed), and nothing when all match', () => {
    const plan = (...args: Parameters<typeof planAntispoof>) => {
      const { lines, changes, after } = planAntispoof(...args);
      return { lines, changes, after: { ...after, macs: [...after.macs].sort(), ips: [...after.ips].sort() } };
    };
    assert.deepEqual(plan([a, b], installed(a, b)), { lines: [], changes: 0, after: installed(a, b) });
    assert.deepEqual(plan([a, b], installed(a)), {
      lines: [
        'add element bridge vxnet endpoint_macs { "vxnhbbbbbbbbbb" . 02:78:c0:a8:01:03 }',
        'add element bridge vxnet endpoint_ips { "vxnhbbbbbbbbbb" . 192.168.1.3 }',
      ],
      changes: 2,
      after: installed(a, b),
    });
    assert.deepEqual(plan([b], installed(a, b)), {
      lines: [
        'delete element bridge vxnet endpoint_macs { "vxnhaaaaaaaaaa" . 02:78:c0:a8:01:02 }',
        'delete element bridge vxnet endpoint_ips { "vxnhaaaaaaaaaa" . 192.168.1.2 }',
      ],
      changes: 2,
      after: installed(b),
    });
    // a whole table: `after` is what it holds
    assert.deepEqual(plan([a, b], { present: false, macs: [], ips: [] }).after, installed(a, b));
  });

  it('leaves the elements of an endpoint that failed validation as they are', () => {
    const kept = planAntispoof([b], installed(a, b), new Set([a.port]));
    assert.deepEqual({ lines: kept.lines, changes: kept.changes }, { lines: [], changes: 0 });
    assert.deepEqual(kept.after.macs, installed(a, b).macs, 'the kept port stays in the state after');
    const whole = planAntispoof([b], { ...installed(a, b), hash: 'outdated' }, new Set([a.port]));
    assert.match(whole.lines[2]!, /"vxnhaaaaaaaaaa" \. 02:78:c0:a8:01:02, "vxnhbbbbbbbbbb"/);
  });

  it('reads the table back from nft -j (sets with concatenated elements, the marker in a rule comment)', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'bridge', name: 'vxnet', handle: 3 } },
        { set: { family: 'bridge', name: 'endpoint_macs', table: 'vxnet', type: ['ifname', 'ether_addr'], elem: [{ concat: [a.port, '02:78:C0:A8:01:02'] }] } },
        { set: { family: 'bridge', name: 'endpoint_ips', table: 'vxnet', type: ['ifname', 'ipv4_addr'] } },
        { table: { family: 'ip', name: 'vxnet', handle: 4 } },
        { rule: { family: 'bridge', table: 'vxnet', chain: 'antispoof', expr: [], comment: `vxnet antispoof sha256:${ANTISPOOF_HASH}` } },
      ],
    });
    assert.deepEqual(parseAntispoof(json), { present: true, macs: [`${a.port} ${a.mac}`], ips: [], hash: ANTISPOOF_HASH });
    assert.deepEqual(parseAntispoof(JSON.stringify({ nftables: [] })), { present: false, macs: [], ips: [] });
  });
});
