/**
 * Key rotation (`vxnet node rotate-key NAME`): the manager moves the node's `keyRotation`; its agent sees
 * that in its own node record, makes a new key pair, gives the new private key to its device first and only
 * then registers the new public key, which its peers take from their watch.
 *
 * Why this order loses no packet: after the switch this node can still decrypt what its peers send on the
 * old sessions (WireGuard keeps a session's receiving side when the private key changes, and only stops
 * sending on it), and what it has to send waits in the device's queue (128 packets per peer in
 * wireguard-go) while it tries a handshake its peers cannot answer yet. When a peer gets the new public key,
 * its next packet starts a handshake with the new key, which this node can now answer: the queues on both
 * sides drain and the old sessions go. The other order (register, then switch) is a race that mostly
 * ends well because the peers are slower, but a peer that has the new key before this node switched sends a
 * handshake this node cannot read, holds its packets back and tries again only after WireGuard's
 * REKEY_TIMEOUT (5 s), while this node, receiving nothing, has nothing to send.
 * A peer that takes longer than the queue lasts (about 1.3 s at 100 packets/s) loses what overflows.
 *
 * The rotation the key file stands for is kept next to it (`wireguard.rotation`), written after the key, so
 * an agent that stops in between makes the key again at its next start rather than never. A crash after
 * the key but before the registration is repaired by the registration every start makes.
 */
import { join } from 'node:path';
import { Backoff, MANAGER_RETRY, retryWithBackoff } from '../../core/backoff.ts';
import { messageOf } from '../../core/errors.ts';
import type { WireguardReport } from '../../core/model.ts';
import { readIfExists, writeFileAtomic } from '../../pki/files.ts';
import { generatePrivateKey, PRIVATE_KEY_FILE, publicKeyOf } from './keys.ts';

export const ROTATION_FILE = 'wireguard.rotation';

/** The rotation the key in `stateDir` was made for (0: the first key). */
export function appliedRotation(stateDir: string): number {
  const text = readIfExists(join(stateDir, ROTATION_FILE))?.trim() ?? '0';
  return /^\d{1,9}$/.test(text) ? Number(text) : 0;
}

export interface KeyRotationOptions {
  stateDir: string;
  /** what the node registered with (the public key changes with each rotation) */
  report: WireguardReport;
  /** registers the new public key with the manager */
  register(report: WireguardReport, signal: AbortSignal): Promise<void>;
  /** the device takes the new private key (re-reads the file) */
  rekey(): Promise<void>;
  log(line: string): void;
  signal: AbortSignal;
}

export class KeyRotation {
  readonly #o: KeyRotationOptions;
  #report: WireguardReport;
  #busy = false;
  /** read once: called for every watch message, so no file read per message */
  #applied: number;

  constructor(options: KeyRotationOptions) {
    this.#o = options;
    this.#report = options.report;
    this.#applied = appliedRotation(options.stateDir);
  }

  /** Called with the node's `keyRotation` whenever the view changes; rotates once per new value. */
  check(wanted: number | undefined): void {
    if (this.#busy || wanted === undefined || wanted <= this.#applied) return;
    this.#busy = true;
    void this.#rotate(wanted)
      .catch((err) => this.#o.log(`warning: WireGuard key rotation ${wanted} failed: ${messageOf(err)}`))
      .finally(() => (this.#busy = false));
  }

  async #rotate(rotation: number): Promise<void> {
    const { stateDir, signal } = this.#o;
    const privateKey = generatePrivateKey();
    writeFileAtomic(join(stateDir, PRIVATE_KEY_FILE), `${privateKey}\n`, 0o600);
    writeFileAtomic(join(stateDir, ROTATION_FILE), `${rotation}\n`, 0o600);
    this.#applied = rotation;
    // the device first, then the peers (the order is the point: see the top of this file)
    await this.#o.rekey();
    const report: WireguardReport = { ...this.#report, publicKey: publicKeyOf(privateKey) };
    await retryWithBackoff(() => this.#o.register(report, signal), {
      backoff: new Backoff(MANAGER_RETRY),
      signal,
      onRetry: (err, ms) => this.#o.log(`warning: registering the new WireGuard key failed: ${messageOf(err)}; retrying in ${ms} ms`),
    });
    this.#report = report;
    this.#o.log(`WireGuard key rotated (rotation ${rotation}): public key ${report.publicKey}`);
  }
}
