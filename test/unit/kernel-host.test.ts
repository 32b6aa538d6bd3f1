/** Host facts for the agent: preflight sentences and underlay detection, against a fake runner. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RunOptions, RunResult, Runner } from '../../src/agent/kernel/exec.ts';
import { detectUnderlay, preflight } from '../../src/agent/kernel/host.ts';

function fakeRunner(reply: (argv: readonly string[]) => Partial<RunResult>): Runner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async run(argv: readonly string[], options: RunOptions = {}) {
      calls.push(argv.join(' '));
      const r = { argv, code: 0, stdout: '', stderr: '', ...reply(argv) };
      if (r.code !== 0 && !options.allowFailure) throw new Error(`${argv.join(' ')}: exit ${r.code}`);
      return r;
    },
    async readFile() {
      return undefined;
    },
    async writeFile() {},
    async exists() {
      return true;
    },
  };
}

describe('preflight', () => {
  it('is empty when tools and kernel features are there, and cleans up its probe device', async () => {
    const run = fakeRunner(() => ({}));
    assert.deepEqual(await preflight(run), []);
    const probe = `vxnprobe${process.pid}`.slice(0, 15);
    assert.ok(run.calls.includes(`ip link add ${probe} type vxlan id 16777215 dstport 4789 nolearning`));
    assert.ok(run.calls.includes(`ip link del ${probe}`));
  });

  it('names each missing tool with its Debian package, in a stable order', async () => {
    const run = fakeRunner((argv) => (['bridge', 'nsenter'].includes(argv[0]!) ? { code: 127, stderr: `${argv[0]}: command not found` } : {}));
    assert.deepEqual(await preflight(run), [
      'bridge is missing: install the Debian package iproute2.',
      'nsenter is missing: install the Debian package util-linux.',
    ]);
  });

  it('says when the kernel cannot make VXLAN devices or nftables does not work', async () => {
    const run = fakeRunner((argv) =>
      argv.includes('vxlan')
        ? { code: 2, stderr: 'Error: Unknown device type.\n' }
        : argv[0] === 'nft' && argv[1] === 'list'
          ? { code: 1, stderr: 'Error: Could not process rule: Operation not supported\n' }
          : {},
    );
    assert.deepEqual(await preflight(run), [
      'the kernel cannot create VXLAN devices: load the vxlan module (CONFIG_VXLAN).',
      'nftables is not usable: Error: Could not process rule: Operation not supported (kernel needs CONFIG_NF_TABLES).',
    ]);
    assert.ok(!run.calls.includes(`ip link del ${`vxnprobe${process.pid}`.slice(0, 15)}`), 'no VXLAN probe to delete');
  });

  it('names each missing kernel feature (bridge, veth, nf_tables filter and nat) in one sentence, and setpriv', async () => {
    const inputs: string[] = [];
    const run = fakeRunner((argv) => {
      if (argv[0] === 'setpriv') return { code: 127, stderr: 'setpriv: command not found' };
      if (argv.includes('bridge') && argv[0] === 'ip') return { code: 2, stderr: 'Error: Unknown device type.\n' };
      if (argv.includes('veth')) return { code: 2, stderr: 'Error: Unknown device type.\n' };
      return {};
    });
    const original = run.run.bind(run);
    run.run = async (argv, options) => {
      if (argv.join(' ') === 'nft -f -') {
        inputs.push(options?.input ?? '');
        const nat = options?.input?.includes('type nat');
        const result = await original(argv, { ...options, allowFailure: true });
        return {
          ...result,
          code: 1,
          stderr: nat
            ? '/dev/stdin:2:8-8: Error: Could not process rule: No such file or directory\n\tchain postrouting { ... }\n'
            : '/dev/stdin:4:8-8: Error: Could not process rule: Operation not supported\n',
        };
      }
      return original(argv, options);
    };
    assert.deepEqual(await preflight(run), [
      'setpriv is missing: install the Debian package util-linux.',
      'the kernel cannot create bridges: load the bridge module (CONFIG_BRIDGE).',
      'the kernel cannot create veth pairs: load the veth module (CONFIG_VETH).',
      'nftables cannot hold the VXLAN peer filter (kernel needs nf_tables with sets and counters): Error: Could not process rule: Operation not supported.',
      'nftables cannot hold the anti-spoofing rules (kernel needs nf_tables for bridges, CONFIG_NF_TABLES_BRIDGE): Error: Could not process rule: Operation not supported.',
      'nftables cannot masquerade (kernel needs CONFIG_NFT_NAT and CONFIG_NFT_MASQ): Error: Could not process rule: No such file or directory.',
    ]);
    // every probe adds a throwaway table and deletes it in the same transaction: nothing is left behind
    assert.equal(inputs.length, 3);
    for (const input of inputs) assert.match(input, new RegExp(`^table (ip|bridge) vxnprobe${process.pid} \\{\n[^]*\n\\}\ndelete table \\1 vxnprobe${process.pid}\n$`));
  });
});

describe('detectUnderlay', () => {
  const dump = readFileSync(join(import.meta.dirname, '../fixtures/kernel/ip-addr.json'), 'utf8');

  it('finds the interface and MTU holding the advertise address', async () => {
    assert.deepEqual(await detectUnderlay('10.99.0.1', fakeRunner(() => ({ stdout: dump }))), { device: 'u0', mtu: 1500 });
  });

  it('fails with the addresses that are there', async () => {
    await assert.rejects(detectUnderlay('10.99.0.50', fakeRunner(() => ({ stdout: dump }))), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'invalid_address');
      assert.match(err.message, /no interface in this network namespace holds 10\.99\.0\.50; addresses here: 10\.99\.0\.1 \(u0\), 192\.168\.1\.1 \(vxnb42\), 192\.168\.2\.1 \(vxnb42\)\./);
      return true;
    });
  });
});
