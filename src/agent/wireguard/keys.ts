/**
 * The node's WireGuard key pair. The agent makes it once, in its state directory, and keeps it: the private
 * key never leaves the node (file `wireguard.key`, mode 0600, read only by `wg set ... private-key FILE`),
 * only the public key goes to the manager. Curve25519 from node:crypto, so no tool is needed to make it.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { VxnetError } from '../../core/errors.ts';
import { isWireguardKey } from '../../core/wireguard.ts';
import { readIfExists, writeFileAtomic } from '../../pki/files.ts';
import { readPrivateFile } from '../../pki/private-files.ts';

export const PRIVATE_KEY_FILE = 'wireguard.key';

/** PKCS#8 wrapping of a raw X25519 private key (RFC 8410): this prefix, then the 32 key bytes. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export interface WireguardKeys {
  /** the file `wg` reads the private key from */
  privateKeyFile: string;
  publicKey: string;
}

/** A new private key, base64 as `wg genkey` writes it. */
export function generatePrivateKey(): string {
  const { privateKey } = generateKeyPairSync('x25519');
  return Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('base64');
}

/** The public key of a base64 private key, as `wg pubkey` prints it. */
export function publicKeyOf(privateKey: string): string {
  if (!isWireguardKey(privateKey)) throw new VxnetError('bad_request', 'the WireGuard private key is not 32 bytes in base64.');
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKey, 'base64')]);
  const key = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}

/** Loads the key pair from `stateDir`, making it the first time. */
export function loadOrCreateKeys(stateDir: string): WireguardKeys {
  const privateKeyFile = join(stateDir, PRIVATE_KEY_FILE);
  if (readIfExists(privateKeyFile) === undefined) writeFileAtomic(privateKeyFile, `${generatePrivateKey()}\n`, 0o600);
  const privateKey = readPrivateFile(privateKeyFile, 'the WireGuard private key');
  if (!isWireguardKey(privateKey)) {
    throw new VxnetError('bad_request', `the WireGuard private key in ${privateKeyFile} is not 32 bytes in base64: delete the file to make a new key.`);
  }
  return { privateKeyFile, publicKey: publicKeyOf(privateKey) };
}
