/**
 * Join tokens, shaped like Docker Swarm's: `VXN1-<CA digest>-<secret>`.
 *
 * - `VXN1`: the format version.
 * - CA digest: 64 lower-case hex digits, the SHA-256 of the cluster CA certificate's DER. A joining agent
 *   (or the CLI) fetches the CA from the manager and refuses it unless it has exactly this digest, so the
 *   token alone is enough to authenticate the manager: no certificate file needs copying around.
 * - secret: 52 base32 characters (RFC 4648 alphabet, lower case, no padding) = 256 random bits. The manager
 *   keeps only its SHA-256; it decides what the token admits (worker: join; admin: everything).
 *
 * Rotating a token changes the secret and keeps the digest.
 */

export const TOKEN_VERSION = 'VXN1';
const SECRET_BYTES = 32;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const FORMAT = /^VXN1-([0-9a-f]{64})-([a-z2-7]{52})$/;

export interface ParsedToken {
  caDigest: string;
  secret: string;
}

export function formatToken(caDigest: string, secret: string): string {
  const token = `${TOKEN_VERSION}-${caDigest}-${secret}`;
  if (!FORMAT.test(token)) throw new RangeError('formatToken: malformed CA digest or secret.');
  return token;
}

/** The parts of a token, or undefined when it is not a VXN1 token. */
export function parseToken(text: string): ParsedToken | undefined {
  const match = FORMAT.exec(text.trim());
  return match ? { caDigest: match[1]!, secret: match[2]! } : undefined;
}

/** A new random secret. */
export function newSecret(): string {
  return base32(randomSecret());
}

function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

/** node:crypto is taken when a token is made, not when this module loads: every CLI call reads a token. */
function randomSecret(): Buffer {
  return process.getBuiltinModule('node:crypto').randomBytes(SECRET_BYTES);
}
