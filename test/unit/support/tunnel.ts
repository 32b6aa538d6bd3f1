/**
 * A kernel WireGuard tunnel (src/agent/wireguard/tunnel.ts) on recorded host tools: every command line is
 * kept in `calls`, `ip link add`/`del` keep a set of devices that `ip link show dev` answers from, and a
 * line `fail` picks exits 1 (a `wg set` the kernel refused, say). Everything else succeeds with no output.
 */
import { Tunnel } from '../../../src/agent/wireguard/tunnel.ts';

export function recordedTunnel(device: string, publicKey: string, fail: (line: string) => boolean = () => false): { tunnel: Tunnel; calls: string[] } {
  const calls: string[] = [];
  const devices = new Set<string>();
  const run = async (argv: readonly string[]) => {
    const line = argv.join(' ');
    calls.push(line);
    let code = 0;
    if (line.startsWith('ip link show dev ')) code = devices.has(argv[4]!) ? 0 : 1;
    if (line.startsWith('ip link add ')) devices.add(argv[3]!);
    if (line.startsWith('ip link del ')) devices.delete(argv[3]!);
    if (fail(line)) code = 1;
    return { argv, code, stdout: '', stderr: '' };
  };
  const tunnel = new Tunnel({
    device, implementation: 'kernel', keys: { privateKeyFile: '/s/wireguard.key', publicKey },
    port: 51820, underlayMtu: 1500, log: () => {}, run,
  });
  return { tunnel, calls };
}
