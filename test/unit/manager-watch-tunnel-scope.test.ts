/**
 * Issue 10: a node's WireGuard public key and tunnel address reach only the nodes it shares an encrypted
 * network with (and itself), in snapshots, node changes and when a node joins an encrypted network.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Node, WatchMessage } from '../../src/core/model.ts';
import type { WatchSink } from '../../src/manager/watch-hub.ts';
import { openTestManagerWithHub } from './support/manager.ts';

const KEY = (c: string) => Buffer.alloc(32, c.charCodeAt(0)).toString('base64');
const wireguard = (publicKey: string) => ({ publicKey, port: 51820, implementation: 'wireguard-go' as const });

class Sink implements WatchSink {
  messages: WatchMessage[] = [];
  bufferedBytes = 0;
  write(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.messages.push(JSON.parse(line) as WatchMessage);
  }
  close(): void {}
  /** the node records received so far, by name: the last one seen of each */
  nodes(): Map<string, Node> {
    const out = new Map<string, Node>();
    for (const m of this.messages) {
      if (m.type === 'snapshot') for (const n of m.nodes) out.set(n.name, n);
      if (m.type === 'node') out.set(m.node.name, m.node);
    }
    return out;
  }
}

const keyOf = (sink: Sink, node: string) => sink.nodes().get(node)?.wireguard?.publicKey;
const tunnelOf = (sink: Sink, node: string) => sink.nodes().get(node)?.tunnelAddress;

test('keys and tunnel addresses go to the members of an encrypted network only', async (t) => {
  const m = await openTestManagerWithHub();
  t.after(() => m.close());
  for (const [name, key] of [['a', 'A'], ['b', 'B'], ['c', 'C']] as const) {
    await m.service.registerNode({ name, address: `10.99.0.${name.charCodeAt(0) - 96}`, mtu: 1500, wireguard: wireguard(KEY(key)) });
  }
  await m.service.createNetwork({ name: 'secret', encrypted: true });
  await m.service.createNetwork({ name: 'plain' });
  await m.service.createEndpoint({ network: 'secret', node: 'a', netns: 'a1' });
  await m.service.createEndpoint({ network: 'secret', node: 'b', netns: 'b1' });
  await m.service.createEndpoint({ network: 'plain', node: 'c', netns: 'c1' });
  await m.service.createEndpoint({ network: 'plain', node: 'a', netns: 'a2' });

  const sinks = { a: new Sink(), b: new Sink(), c: new Sink() };
  for (const [node, sink] of Object.entries(sinks)) m.hub.attach(node, sink);
  // snapshots: a and b see each other's keys; c, which shares only a plain network with a, sees no one's but its own
  assert.equal(keyOf(sinks.a, 'b'), KEY('B'));
  assert.equal(keyOf(sinks.b, 'a'), KEY('A'));
  assert.equal(tunnelOf(sinks.b, 'a'), '10.201.0.1');
  assert.equal(keyOf(sinks.c, 'a'), undefined);
  assert.equal(tunnelOf(sinks.c, 'a'), undefined);
  assert.equal(keyOf(sinks.c, 'b'), undefined);
  assert.equal(keyOf(sinks.c, 'c'), KEY('C'), 'a node always sees its own record whole');
  assert.equal(sinks.c.nodes().get('a')?.address, '10.99.0.1', 'the VTEP address still reaches everyone');
  assert.equal(keyOf(sinks.a, 'c'), undefined);

  // a key rotated on a: b gets the new key, c the record without it
  await m.service.registerNode({ name: 'a', address: '10.99.0.1', mtu: 1500, wireguard: wireguard(KEY('D')) });
  assert.equal(keyOf(sinks.b, 'a'), KEY('D'));
  assert.equal(keyOf(sinks.c, 'a'), undefined);
  assert.equal(sinks.c.nodes().get('a')?.name, 'a', 'c was told a changed');

  // c joins the encrypted network: it and the members are introduced before the lines that make them peers
  await m.service.createEndpoint({ network: 'secret', node: 'c', netns: 'c2' });
  assert.equal(keyOf(sinks.c, 'a'), KEY('D'));
  assert.equal(keyOf(sinks.c, 'b'), KEY('B'));
  assert.equal(keyOf(sinks.a, 'c'), KEY('C'));
  assert.equal(keyOf(sinks.b, 'c'), KEY('C'));
  const toB = sinks.b.messages.map((msg) => (msg.type === 'node' ? `node:${msg.node.name}` : msg.type === 'endpoint' ? `endpoint:${msg.endpoint.node}` : msg.type));
  assert.ok(toB.lastIndexOf('node:c') < toB.lastIndexOf('endpoint:c'), `c's key reaches b before c's endpoint: ${toB.join(' ')}`);
});
