/**
 * A connection flood against the manager (issue 9, hole 6; docs/security.md, "Connection limits"): one
 * simulated host keeps hundreds of TCP connections open to the manager's TLS port, idle ones and half-open
 * TLS handshakes, reopening each as soon as it is closed. The manager must close every one of them within its
 * handshake timeout (5 s), refuse those over its cap per remote address at once, and meanwhile serve an
 * admin's CLI from another host and keep the agents working.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CLI_PATH } from '../../src/testkit/cluster.ts';
import { isRoot, missingTools } from '../../src/testkit/preflight.ts';
import { BLUE, clusterSuite } from './support/setup.ts';
import { pings } from './support/probes.ts';

const skip = !isRoot() ? 'needs root' : missingTools().length > 0 ? missingTools().join('; ') : false;

/** DEFAULT_CONNECTION_LIMITS.handshakeTimeoutMs (src/manager/listeners.ts), and what a loaded machine adds. */
const HANDSHAKE_TIMEOUT_MS = 5_000;
const SLACK_MS = 2_000;
const FLOOD_SECONDS = 14;
const IDLE_CONNECTIONS = 200;
const HALF_OPEN_HANDSHAKES = 50;

/**
 * The flood, run with node inside the flooding host's namespace. Each slot holds one connection and opens
 * the next half a second after the last one closed. A half-open handshake sends a TLS record header that
 * announces a 512-byte ClientHello and then only its first bytes, so the server waits for the rest. Prints
 * the longest any connection was held: the closed ones' lifetimes and, at the end, the age of those open.
 */
const FLOOD = `
import { connect } from 'node:net';
const [host, port, idle, halfOpen, seconds] = JSON.parse(process.argv[1]);
const partialHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
const open = new Map();
const lifetimes = [];
let opened = 0;
let stopping = false;
function slot(half) {
  if (stopping) return;
  const started = performance.now();
  const socket = connect(port, host, () => { if (half) socket.write(partialHello); });
  opened++;
  open.set(socket, started);
  socket.on('error', () => {});
  socket.resume();
  socket.on('close', () => {
    open.delete(socket);
    if (stopping) return;
    lifetimes.push(performance.now() - started);
    setTimeout(() => slot(half), 500);
  });
}
for (let i = 0; i < idle; i++) slot(false);
for (let i = 0; i < halfOpen; i++) slot(true);
setTimeout(() => console.log('flooding'), 1000);
setTimeout(() => {
  stopping = true;
  const now = performance.now();
  const ages = [...open.values()].map((started) => now - started);
  for (const socket of open.keys()) socket.destroy();
  const fast = lifetimes.filter((ms) => ms < 1000).length;
  console.log('result ' + JSON.stringify({ opened, closed: lifetimes.length, closedFast: fast, longestLifetime: Math.max(0, ...lifetimes), longestOpen: Math.max(0, ...ages) }));
}, seconds * 1000);
`;

interface FloodResult {
  opened: number;
  closed: number;
  closedFast: number;
  longestLifetime: number;
  longestOpen: number;
}

describe('connection flood', { skip }, () => {
  const suite = clusterSuite({
    cluster: { hosts: 3, startDaemons: false },
    agentsOn: ['host1', 'host2'],
    networks: [BLUE],
    attach: [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue']],
  });

  it('closes the flood within the handshake timeout while the admin CLI and the agents keep working', async (t) => {
    const { hostname, port } = new URL(suite.cluster.manager.url);
    const flood = suite.cluster.spawn(
      suite.host(3).netns,
      [process.execPath, '--input-type=module', '-e', FLOOD, JSON.stringify([hostname, Number(port), IDLE_CONNECTIONS, HALF_OPEN_HANDSHAKES, FLOOD_SECONDS])],
      { label: 'flood' },
    );
    await flood.waitFor(/^flooding$/, 10_000);

    // (2) an admin on another host, over TLS like a remote operator, while the flood is under way
    const listed = await suite.cluster.exec(
      suite.host(2).netns,
      [process.execPath, DEFAULT_CLI_PATH, 'network', 'ls', '--json', '--manager', suite.cluster.manager.url, '--token', suite.cluster.manager.adminToken],
      { timeoutMs: 30_000 },
    );
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { name: string }[]).map((n) => n.name), ['blue']);

    // (3) the agents: a new endpoint is set up on host1 (its watch delivered it), and reaches host2's
    await suite.attach('c3', 'host1');
    assert.ok(await pings(suite.cluster, suite.c.c3!.netns, suite.c.c2!.endpoint.ip), 'c3 on host1 reaches c2 on host2 during the flood');
    assert.ok(await pings(suite.cluster, suite.c.c2!.netns, suite.c.c1!.endpoint.ip), 'c2 reaches c1');

    // (1) every flooding connection was closed within the handshake timeout
    const line = await flood.waitFor(/^result /, (FLOOD_SECONDS + 10) * 1000);
    const result = JSON.parse(line.slice('result '.length)) as FloodResult;
    t.diagnostic(`flood: ${JSON.stringify(result)}`);
    const longest = Math.max(result.longestLifetime, result.longestOpen);
    assert.ok(longest <= HANDSHAKE_TIMEOUT_MS + SLACK_MS, `a flooding connection was held ${Math.round(longest)} ms (${JSON.stringify(result)})`);
    // the connections over the cap per address were refused at once, not after the timeout
    assert.ok(result.closedFast > IDLE_CONNECTIONS, `only ${result.closedFast} connections were refused at once (${JSON.stringify(result)})`);

    const nodes = await suite.admin.listNodes();
    assert.deepEqual(nodes.filter((n) => n.name !== 'host3').map((n) => [n.name, n.state]), [['host1', 'up'], ['host2', 'up']]);
  });
});
