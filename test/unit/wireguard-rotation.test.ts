/**
 * Key rotation's order (src/agent/wireguard/rotation.ts): the device takes the new private key before the
 * new public key is registered, because peers that get the new key first send handshakes this node cannot
 * read yet and stall for WireGuard's 5 s retry. The integration test measures the loss under a 10 ms ping.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadOrCreateKeys, PRIVATE_KEY_FILE, publicKeyOf } from '../../src/agent/wireguard/keys.ts';
import { appliedRotation, KeyRotation } from '../../src/agent/wireguard/rotation.ts';
import type { WireguardReport } from '../../src/core/model.ts';
import { temporaryDirectory } from './support/temporary.ts';
import { recordedTunnel } from './support/tunnel.ts';
import { until } from './support/until.ts';

function rotationIn(stateDir: string, steps: string[], register: (report: WireguardReport) => Promise<void> = async () => {}) {
  const keys = loadOrCreateKeys(stateDir);
  const report: WireguardReport = { publicKey: keys.publicKey, port: 51820, implementation: 'wireguard-go' };
  const rotation = new KeyRotation({
    stateDir,
    report,
    register: async (r) => {
      steps.push(`register ${r.publicKey}`);
      await register(r);
    },
    rekey: async () => void steps.push(`rekey ${publicKeyOf(readFileSync(join(stateDir, PRIVATE_KEY_FILE), 'utf8').trim())}`),
    log: () => {},
    signal: new AbortController().signal,
  });
  return { rotation, before: keys.publicKey };
}

describe('key rotation', () => {
  test('the device takes the new key before its public key goes to the manager (and so to the peers)', async () => {
    const stateDir = temporaryDirectory();
    const steps: string[] = [];
    const { rotation, before } = rotationIn(stateDir, steps);
    rotation.check(1);
    await until(() => steps.length === 2, 'the rekey and the registration');
    const fresh = publicKeyOf(readFileSync(join(stateDir, PRIVATE_KEY_FILE), 'utf8').trim());
    assert.notEqual(fresh, before);
    assert.deepEqual(steps, [`rekey ${fresh}`, `register ${fresh}`]);
    assert.equal(appliedRotation(stateDir), 1);
  });

  test('a rotation already applied, or one asked again while running, makes no second key', async () => {
    const stateDir = temporaryDirectory();
    const steps: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { rotation } = rotationIn(stateDir, steps, () => held);
    rotation.check(1);
    rotation.check(1);
    rotation.check(2);
    release();
    await until(() => steps.length === 2, 'the rekey and the registration');
    rotation.check(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(steps.length, 2, steps.join('\n'));
  });
});

describe('the device\'s switch to the new key', () => {
  const KEY_B = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';

  const tunnelOf = (failWgSet = false) => recordedTunnel('vxw0000000001', KEY_B, (line) => failWgSet && /^wg set \S+ private-key \S+$/.test(line));

  test('a configured device takes the new key with one wg set, nothing else (the switch lands at once)', async () => {
    const { tunnel, calls } = tunnelOf();
    await tunnel.apply({ address: '10.201.0.1/16', peers: [] });
    calls.length = 0;
    await tunnel.rekey();
    assert.deepEqual(calls, ['wg set vxw0000000001 private-key /s/wireguard.key']);
    tunnel.close();
  });

  test('a device never configured, or a failed wg set, is set up in full', async () => {
    const { tunnel, calls } = tunnelOf(true);
    await tunnel.apply({ address: '10.201.0.1/16', peers: [] });
    calls.length = 0;
    await tunnel.rekey();
    assert.equal(calls[0], 'wg set vxw0000000001 private-key /s/wireguard.key');
    assert.ok(calls.includes('ip addr replace 10.201.0.1/16 dev vxw0000000001'), calls.join('\n'));
    assert.ok(calls.some((line) => line.startsWith('wg set vxw0000000001 listen-port 51820 private-key /s/wireguard.key')), calls.join('\n'));
    tunnel.close();
  });
});
