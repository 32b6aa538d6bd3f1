/**
 * The node's WireGuard device: which implementation carries it, keeping it alive, and making its peers the
 * ones the encrypted networks need.
 *
 * Implementation, chosen per host at agent start: the kernel module when `ip link add ... type wireguard`
 * works, otherwise `wireguard-go` (userspace, over TUN). Never from wireguard-go's banner, which claims
 * kernel support from the kernel version alone. wireguard-go runs in the foreground (`-f`) as the agent's
 * child, so the agent sees it die and starts it again; its TUN, with the address and the route on it, dies
 * with it, and the device is then set up again from the last desired tunnel. An agent that restarts finds
 * the wireguard-go of its predecessor by its command line and adopts it, so encrypted traffic goes on.
 *
 * Fail closed: a blackhole route for the whole tunnel range, behind the device's own route, exists before
 * any encrypted VXLAN device does and is never removed. While the device is missing (wireguard-go killed,
 * not yet started, kernel device deleted) an encrypted network's VXLAN datagram, addressed to a peer's
 * tunnel address, meets the blackhole instead of the default route: it is dropped, never sent in clear.
 *
 * Receive steering (wireguard-go only): wireguard-go hands each decrypted packet to its TUN with a write(),
 * and the kernel runs the whole receive path of that packet inside the write — for an encrypted network the
 * VXLAN decapsulation, the network's bridge, the veth and the container's TCP — in wireguard-go's thread,
 * which meanwhile decrypts nothing (measured here: VXLAN inside wireguard-go cost wireguard-go 1.14× the CPU
 * per Gbit of plain TCP through it, and its UDP socket overflowed). The TUN has one queue, so the agent turns
 * on RPS for it (`queues/rx-0/rps_cpus`, every CPU): the write only queues the packet, and the receive path
 * runs in the softirq of the CPU the flow hashes to, next to wireguard-go instead of inside it. The kernel
 * module decrypts in per-CPU workers and hands packets over through NAPI itself, so its device is left alone.
 * What else was measured against this setting (RPS off or on one CPU, the VXLAN inside the tunnel untracked,
 * wireguard-go at a higher priority) is in bench/encrypt-variants.ts, with the figures in docs/security.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Backoff } from '../../core/backoff.ts';
import { messageOf } from '../../core/errors.ts';
import { TUNNEL_POOL, tunnelMtu, type WireguardImplementation } from '../../core/wireguard.ts';
import { execute, type RunResult } from '../kernel/exec.ts';
import type { WireguardKeys } from './keys.ts';
import type { TunnelStatus } from '../../core/model.ts';
import { BLACKHOLE_METRIC, type DesiredTunnel, parseWgDump, receivedBytes, rpsMask, Silence, tunnelStatus, wgSetArgs } from './render.ts';

/** How often the peers' handshakes are read for the heartbeat (which goes every 5 s). */
const STATUS_INTERVAL_MS = 5_000;

export type Run = (argv: readonly string[], options?: { allowFailure?: boolean; signal?: AbortSignal }) => Promise<RunResult>;

const defaultRun: Run = (argv, options) => execute(argv, { ...options, timeoutMs: 10_000 });

/**
 * The implementation this host offers, or why none: one sentence naming the missing Debian packages. The
 * kernel is asked by creating a throwaway device (`probe`, deleted at once).
 */
export async function detectImplementation(probe: string, run: Run = defaultRun): Promise<{ implementation?: WireguardImplementation; reason?: string }> {
  const wg = await run(['wg', '--version'], { allowFailure: true });
  if (wg.code !== 0) return { reason: 'wg is not installed (Debian package wireguard-tools)' };
  const kernel = await run(['ip', 'link', 'add', probe, 'type', 'wireguard'], { allowFailure: true });
  if (kernel.code === 0) {
    await run(['ip', 'link', 'del', probe], { allowFailure: true });
    return { implementation: 'kernel' };
  }
  const go = await run(['wireguard-go', '--version'], { allowFailure: true });
  if (go.code === 0) return { implementation: 'wireguard-go' };
  return { reason: 'the kernel has no WireGuard module and wireguard-go is not installed (Debian package wireguard-go)' };
}

export interface TunnelOptions {
  device: string;
  implementation: WireguardImplementation;
  keys: WireguardKeys;
  port: number;
  underlayMtu: number;
  /** the underlay is IPv6: WireGuard's outer header is 20 bytes longer (core/wireguard.ts) */
  ipv6Underlay?: boolean;
  log: (line: string) => void;
  run?: Run;
  /** the wireguard-go program (tests may pass another path) */
  wireguardGo?: string;
  /** sysfs (default /sys; tests pass a folder, and nothing else is tried) */
  sysfs?: string;
  /** how many CPUs the receive steering spreads over (default: the host's) */
  cpus?: number;
}

/** How often an adopted wireguard-go (not our child, so no exit event) is checked. */
const ADOPTED_POLL_MS = 200;

/**
 * The wireguard-go serving `device`, found by its command line (`wireguard-go -f DEVICE`); device names are
 * unique on the machine, so this one is ours.
 */
export function findWireguardGo(device: string, proc = '/proc'): number | undefined {
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`${proc}/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv[0]?.endsWith('wireguard-go') && argv.includes(device)) return Number(entry);
  }
  return undefined;
}

/** How long a new wireguard-go may take to create its TUN device. */
const DEVICE_WAIT_MS = 5_000;

export class Tunnel {
  readonly device: string;
  readonly implementation: WireguardImplementation;
  readonly #options: TunnelOptions;
  readonly #run: Run;
  #child: ChildProcess | undefined;
  #blackholed = false;
  /** the desired tunnel last asked for: a restarted wireguard-go is configured from it */
  #wanted: DesiredTunnel | undefined;
  /** what the device was last configured with, and for which device generation */
  #applied: string | undefined;
  #generation = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #restarts = new Backoff({ minMs: 100, maxMs: 5_000 });
  #closed = false;
  /** no device of ours exists (checked since the tunnel was last wanted) */
  #clean = false;
  #queue: Promise<void> = Promise.resolve();
  #status: TunnelStatus[] | undefined;
  /** how long each peer has sent nothing: a dead peer shows down in a minute, not when its session ends */
  readonly #silence = new Silence();
  /** the pid of a wireguard-go started by an agent before this one, which this one took over */
  #adopted: number | undefined;
  #adoptTimer: NodeJS.Timeout | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  /** the device generation whose receive steering failed and was reported */
  #steerWarned: number | undefined;

  constructor(options: TunnelOptions) {
    this.device = options.device;
    this.implementation = options.implementation;
    this.#options = options;
    this.#run = options.run ?? defaultRun;
  }

  /** The blackhole route is in place (the encrypted networks may have devices). */
  get blackholed(): boolean {
    return this.#blackholed;
  }

  /**
   * The key file changed (rotation): the device is given it again. One `wg set` on a configured device, so
   * that the switch lands as soon as possible (its peers' packets wait in wireguard-go's queue meanwhile);
   * otherwise, or if that fails, the device is set up again in full.
   */
  async rekey(): Promise<void> {
    const next = this.#queue.then(async () => {
      if (this.#applied !== undefined) {
        const set = await this.#run(['wg', 'set', this.device, 'private-key', this.#options.keys.privateKeyFile], { allowFailure: true });
        if (set.code === 0) return;
      }
      this.#applied = undefined;
      await this.#apply();
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** The peers as last read (absent: no tunnel wanted), for the heartbeat. */
  status(): TunnelStatus[] | undefined {
    return this.#wanted === undefined ? undefined : this.#status;
  }

  async #readStatus(): Promise<void> {
    const wanted = this.#wanted;
    if (wanted === undefined || this.#closed) return;
    const dump = await this.#run(['wg', 'show', this.device, 'dump'], { allowFailure: true });
    // a missing device (wireguard-go restarting) shows every peer down
    const peers = dump.code === 0 ? parseWgDump(dump.stdout) : [];
    const silent = this.#silence.observe(dump.code === 0 ? receivedBytes(dump.stdout) : new Map(), Date.now());
    const withSilence = peers.map((p) => ({ ...p, silentSeconds: silent.get(p.publicKey) ?? 0 }));
    this.#status = tunnelStatus(wanted.peers, withSilence, Date.now() / 1000);
  }

  /** Makes the device match `wanted` (absent: no device). One change at a time. */
  apply(wanted: DesiredTunnel | undefined, signal?: AbortSignal): Promise<void> {
    this.#wanted = wanted;
    const next = this.#queue.then(() => this.#apply(signal));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #apply(signal?: AbortSignal): Promise<void> {
    const wanted = this.#wanted;
    if (wanted === undefined) {
      // a node without encrypted networks pays nothing per pass: one look for a leftover device, then none
      if (this.#clean) return;
      await this.#remove(signal);
      this.#clean = true;
      return;
    }
    this.#clean = false;
    this.#statusTimer ??= setInterval(() => void this.#readStatus().catch(() => {}), STATUS_INTERVAL_MS).unref();
    await this.#ensureBlackhole(signal);
    await this.#ensureDevice(signal);
    const key = JSON.stringify([this.#generation, wanted]);
    if (this.#applied === key && (await this.#intact(wanted, signal))) return;
    const run = (argv: readonly string[]) => this.#run(argv, { signal });
    await run(['ip', 'link', 'set', this.device, 'mtu', String(tunnelMtu(this.#options.underlayMtu, this.#options.ipv6Underlay === true)), 'up']);
    if (this.implementation === 'wireguard-go') await this.#steerReceive();
    await run(['ip', 'addr', 'replace', wanted.address, 'dev', this.device]);
    const present = (await run(['wg', 'show', this.device, 'peers'])).stdout.split('\n').filter((line) => line.trim() !== '');
    await run(wgSetArgs(this.device, this.#options.keys.privateKeyFile, this.#options.port, wanted.peers, present));
    this.#applied = key;
    await this.#readStatus();
    this.#options.log(`WireGuard ${this.device} (${this.implementation}): ${wanted.address}, ${wanted.peers.length} peer(s)`);
  }

  /**
   * RPS on the TUN's one receive queue (see the top of this file). sysfs shows the devices of the network
   * namespace that mounted it, so an agent entered into a named namespace with `nsenter --net` (simulated
   * hosts) does not find its device there: it then copies the mask in through `ip netns exec`, which mounts
   * that namespace's own sysfs for the copy. Speed only: a host that refuses (no RPS in its kernel, a
   * read-only sysfs) keeps a working, slower tunnel, and says so once per device.
   */
  async #steerReceive(): Promise<void> {
    const relative = join('class', 'net', this.device, 'queues', 'rx-0', 'rps_cpus');
    const mask = rpsMask(this.#options.cpus ?? cpus().length);
    try {
      await writeFile(join(this.#options.sysfs ?? '/sys', relative), `${mask}\n`);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || this.#options.sysfs !== undefined) return this.#steerFailed(mask, messageOf(err));
    }
    const named = await this.#run(['ip', 'netns', 'identify', String(process.pid)], { allowFailure: true });
    const netns = named.stdout.split('\n')[0]?.trim();
    if (!netns) return this.#steerFailed(mask, `${this.device} is not in this process's sysfs, and its network namespace has no name to enter it by`);
    const dir = await mkdtemp(join(tmpdir(), 'vxnet-rps-'));
    try {
      await writeFile(join(dir, 'mask'), `${mask}\n`);
      const copied = await this.#run(['ip', 'netns', 'exec', netns, 'cp', join(dir, 'mask'), join('/sys', relative)], { allowFailure: true });
      if (copied.code !== 0) this.#steerFailed(mask, copied.stderr.trim() || `exit ${copied.code}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  #steerFailed(mask: string, why: string): void {
    if (this.#steerWarned === this.#generation) return;
    this.#steerWarned = this.#generation;
    this.#options.log(`warning: WireGuard ${this.device}: receive steering (RPS ${mask} on its one queue) could not be set: ${why}; decryption shares its thread with the receive path`);
  }

  /** The device is up and holds its address (someone may have set it down or flushed it). */
  async #intact(wanted: DesiredTunnel, signal?: AbortSignal): Promise<boolean> {
    const shown = await this.#run(['ip', '-j', 'addr', 'show', 'dev', this.device], { allowFailure: true, signal });
    if (shown.code !== 0) return false;
    try {
      const [link] = JSON.parse(shown.stdout) as { flags?: string[]; addr_info?: { local?: string; prefixlen?: number }[] }[];
      const up = link?.flags?.includes('UP') === true;
      return up && (link?.addr_info ?? []).some((a) => `${a.local}/${a.prefixlen}` === wanted.address);
    } catch {
      return false;
    }
  }

  /** Restated at every pass (`replace` is idempotent), so a route deleted behind vxnet's back comes back. */
  async #ensureBlackhole(signal?: AbortSignal): Promise<void> {
    await this.#run(['ip', 'route', 'replace', 'blackhole', TUNNEL_POOL, 'metric', String(BLACKHOLE_METRIC)], { signal });
    this.#blackholed = true;
  }

  async #deviceExists(signal?: AbortSignal): Promise<boolean> {
    return (await this.#run(['ip', 'link', 'show', 'dev', this.device], { allowFailure: true, signal })).code === 0;
  }

  async #ensureDevice(signal?: AbortSignal): Promise<void> {
    if (this.implementation === 'kernel') {
      if (!(await this.#deviceExists(signal))) {
        await this.#run(['ip', 'link', 'add', this.device, 'type', 'wireguard'], { signal });
        this.#generation++;
      }
      return;
    }
    if (this.#child || this.#adopted !== undefined) return;
    if (await this.#deviceExists(signal)) {
      // the wireguard-go of an agent before this one (a restart): kept, watched, and its sessions with it
      const pid = findWireguardGo(this.device);
      if (pid !== undefined) {
        this.#adopt(pid);
        return;
      }
      await this.#run(['ip', 'link', 'del', this.device], { allowFailure: true, signal });
    }
    this.#start();
    const deadline = Date.now() + DEVICE_WAIT_MS;
    while (!(await this.#deviceExists(signal))) {
      if (!this.#child) throw new Error(`wireguard-go exited before it created ${this.device}`);
      if (Date.now() > deadline) throw new Error(`wireguard-go did not create ${this.device} within ${DEVICE_WAIT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Watches a wireguard-go that is not our child (no exit event): polled, and restarted like ours when it dies. */
  #adopt(pid: number): void {
    this.#adopted = pid;
    this.#generation++;
    this.#options.log(`WireGuard ${this.device}: adopted the running wireguard-go (pid ${pid})`);
    const timer = setInterval(() => {
      try {
        process.kill(pid, 0);
        return;
      } catch {
        // gone
      }
      clearInterval(timer);
      if (this.#adopted !== pid) return;
      this.#adopted = undefined;
      this.#died(`(pid ${pid}) is gone`, '');
    }, ADOPTED_POLL_MS);
    timer.unref();
    this.#adoptTimer = timer;
  }

  #start(): void {
    const child = spawn(this.#options.wireguardGo ?? 'wireguard-go', ['-f', this.device], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'error' },
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-500)));
    this.#child = child;
    this.#generation++;
    child.on('error', (err) => this.#options.log(`warning: wireguard-go for ${this.device} could not start: ${messageOf(err)}`));
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = undefined;
      this.#died(signal ? `was killed (${signal})` : `exited with code ${code}`, stderr);
    });
  }

  #died(how: string, stderr: string): void {
    if (this.#closed) return;
    const delay = this.#restarts.next();
    this.#options.log(
      `warning: wireguard-go for ${this.device} ${how}${stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : ''}; ` +
        `encrypted traffic is dropped until it runs again, in ${delay} ms`,
    );
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => void this.#restart(), delay);
  }

  async #restart(): Promise<void> {
    if (this.#closed || this.#wanted === undefined) return;
    try {
      await this.apply(this.#wanted);
      this.#restarts.reset();
      this.#options.log(`wireguard-go for ${this.device} runs again`);
    } catch (err) {
      const delay = this.#restarts.next();
      this.#options.log(`warning: restarting wireguard-go for ${this.device} failed: ${messageOf(err)}; again in ${delay} ms`);
      this.#restartTimer = setTimeout(() => void this.#restart(), delay);
    }
  }

  async #remove(signal?: AbortSignal): Promise<void> {
    this.#applied = undefined;
    const child = this.#child;
    if (child) {
      this.#child = undefined;
      child.kill('SIGTERM');
    }
    // an adopted one goes with its device
    this.#adopted = undefined;
    clearInterval(this.#adoptTimer);
    if (await this.#deviceExists(signal)) await this.#run(['ip', 'link', 'del', this.device], { allowFailure: true, signal });
  }

  /**
   * Stops watching. The device and wireguard-go stay (fail-static, like the rest of the kernel state); an
   * agent started again adopts them (#adopt), sessions and all.
   */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#statusTimer);
    clearInterval(this.#adoptTimer);
    this.#child?.unref();
  }
}
