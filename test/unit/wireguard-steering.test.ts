/**
 * Receive steering of a wireguard-go tunnel (src/agent/wireguard/tunnel.ts): RPS on the TUN's one queue
 * over every CPU, set whenever wireguard-go (re)creates the device; a host that refuses it keeps its tunnel.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generatePrivateKey, publicKeyOf } from '../../src/agent/wireguard/keys.ts';
import { rpsMask } from '../../src/agent/wireguard/render.ts';
import { Tunnel } from '../../src/agent/wireguard/tunnel.ts';

const KEY_A = publicKeyOf(generatePrivateKey());
const KEY_B = publicKeyOf(generatePrivateKey());
const DEVICE = 'vxw00000000aa';

describe('rpsMask', () => {
  test('every CPU, in 32-bit groups most significant first', () => {
    assert.equal(rpsMask(1), '1');
    assert.equal(rpsMask(2), '3');
    assert.equal(rpsMask(8), 'ff');
    assert.equal(rpsMask(32), 'ffffffff');
    assert.equal(rpsMask(33), '1,ffffffff');
    assert.equal(rpsMask(40), 'ff,ffffffff');
    assert.equal(rpsMask(64), 'ffffffff,ffffffff');
    assert.equal(rpsMask(0), '1', 'a count that makes no sense still names one CPU');
  });
});

describe('a wireguard-go tunnel steers its receive path off wireguard-go', () => {
  /** A tunnel whose wireguard-go is a sleeping stand-in and whose device "exists" once it was started. */
  function standIn(sysfs: string) {
    const dir = mkdtempSync(join(tmpdir(), 'vxnet-steer-'));
    const program = join(dir, 'wireguard-go');
    writeFileSync(program, '#!/bin/sh\nexec sleep 30\n');
    chmodSync(program, 0o755);
    const calls: string[] = [];
    const logs: string[] = [];
    let started = false;
    const run = async (argv: readonly string[]) => {
      const line = argv.join(' ');
      calls.push(line);
      let code = 0;
      if (line === `ip link show dev ${DEVICE}`) {
        code = started ? 0 : 1;
        // the stand-in was spawned after the first look: from now on the device is there
        started = true;
      }
      return { argv, code, stdout: '', stderr: '' };
    };
    const tunnel = new Tunnel({
      device: DEVICE, implementation: 'wireguard-go', keys: { privateKeyFile: '/s/wireguard.key', publicKey: KEY_A },
      port: 51820, underlayMtu: 1500, log: (line) => logs.push(line), run, wireguardGo: program, sysfs, cpus: 2,
    });
    return { tunnel, calls, logs, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  const wanted = { address: '10.201.0.1/16', peers: [{ node: 'b', publicKey: KEY_B, endpoint: '10.99.0.2:51820', tunnelAddress: '10.201.0.2' }] };

  test('RPS over every CPU on the TUN queue once wireguard-go has made the device', async () => {
    const sysfs = mkdtempSync(join(tmpdir(), 'vxnet-sysfs-'));
    const queue = join(sysfs, 'class', 'net', DEVICE, 'queues', 'rx-0');
    mkdirSync(queue, { recursive: true });
    writeFileSync(join(queue, 'rps_cpus'), '0\n');
    const { tunnel, calls, logs, cleanup } = standIn(sysfs);
    try {
      await tunnel.apply(wanted);
      assert.equal(readFileSync(join(queue, 'rps_cpus'), 'utf8'), '3\n');
      assert.ok(calls.some((c) => c.startsWith(`wg set ${DEVICE} `)), 'the tunnel is configured');
      assert.deepEqual(logs.filter((l) => l.startsWith('warning')), []);
    } finally {
      await tunnel.apply(undefined);
      tunnel.close();
      cleanup();
      rmSync(sysfs, { recursive: true, force: true });
    }
  });

  test('a host that refuses it keeps a configured tunnel and says why, once', async () => {
    const sysfs = mkdtempSync(join(tmpdir(), 'vxnet-sysfs-'));
    const { tunnel, calls, logs, cleanup } = standIn(join(sysfs, 'missing'));
    try {
      await tunnel.apply(wanted);
      assert.ok(calls.some((c) => c.startsWith(`wg set ${DEVICE} `)), 'the tunnel is configured all the same');
      const warnings = logs.filter((l) => l.includes('receive steering'));
      assert.equal(warnings.length, 1, logs.join('\n'));
      assert.match(warnings[0]!, /RPS 3 on its one queue\) could not be set: .*ENOENT/);
      assert.ok(!existsSync(join(sysfs, 'missing')), 'nothing is created in its place');
    } finally {
      await tunnel.apply(undefined);
      tunnel.close();
      cleanup();
      rmSync(sysfs, { recursive: true, force: true });
    }
  });
});
