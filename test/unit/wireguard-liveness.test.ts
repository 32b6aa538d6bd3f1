/**
 * When a tunnel shows down (src/agent/wireguard/render.ts): a peer that sends nothing for SILENT_SECONDS
 * (75 s: three of its 25 s persistent keepalives) is down although its last handshake is younger
 * than WireGuard's 180 s session, so `vxnet network inspect` says so within about a minute.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { receivedBytes, Silence, SILENT_SECONDS, tunnelStatus } from '../../src/agent/wireguard/render.ts';

const KEY_A = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';
const KEY_B = 'mHi6BE8B9A7RXVSUeTQq8gUfdoTLRZHnGIz13WmExUs=';

describe('tunnel liveness', () => {
  test('the received bytes of each peer come from the sixth field of wg show dump', () => {
    const dump = `PRIV\t${KEY_A}\t51820\toff\n${KEY_B}\t(none)\t10.99.0.2:51820\t10.201.0.2/32\t1733370000\t4242\t200\t25\n`;
    assert.deepEqual([...receivedBytes(dump)], [[KEY_B, 4242]]);
    assert.deepEqual([...receivedBytes('')], []);
  });

  test('silence grows while the counter stands still and starts again when it moves', () => {
    const silence = new Silence();
    assert.equal(silence.observe(new Map([[KEY_B, 100]]), 0).get(KEY_B), 0, 'first seen: just now');
    assert.equal(silence.observe(new Map([[KEY_B, 100]]), 30_000).get(KEY_B), 30);
    assert.equal(silence.observe(new Map([[KEY_B, 132]]), 35_000).get(KEY_B), 0, 'a keepalive came');
    assert.equal(silence.observe(new Map([[KEY_B, 132]]), 115_000).get(KEY_B), 80);
    assert.equal(silence.observe(new Map(), 120_000).size, 0, 'a peer gone is forgotten');
    assert.equal(silence.observe(new Map([[KEY_B, 132]]), 125_000).get(KEY_B), 0, 'and counts from its return');
  });

  test(`a peer silent for ${SILENT_SECONDS} s is down although its handshake is younger than 180 s`, () => {
    const peers = [{ node: 'b', publicKey: KEY_B, endpoint: '10.99.0.2:51820', tunnelAddress: '10.201.0.2' }];
    const status = (silentSeconds: number) => tunnelStatus(peers, [{ publicKey: KEY_B, latestHandshake: 1000, silentSeconds }], 1100)[0]!.up;
    assert.equal(status(0), true);
    assert.equal(status(SILENT_SECONDS - 1), true);
    assert.equal(status(SILENT_SECONDS), false);
    assert.equal(SILENT_SECONDS, 75);
  });
});
