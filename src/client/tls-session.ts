/**
 * TLS session resumption across CLI calls: the session of one `vxnet` call's connection to an https manager
 * is kept in the CLI's cache folder (beside the pinned CA, ca-cache.ts), and the next call offers it, so its
 * handshake resumes (a TLS 1.3 PSK with a fresh (EC)DHE exchange, RFC 8446 §2.2) instead of the manager
 * signing and the client verifying a certificate chain again. The manager issues the tickets (Node's
 * default: stateless tickets under per-process keys, valid 300 s), so a restarted manager or an older ticket
 * only costs the full handshake.
 *
 * What a kept session is worth to a thief: its resumption secret lets its holder finish a handshake *as the
 * manager* towards a client that offers the session, without the manager's key. So the file is sealed with
 * AES-256-GCM under a key derived (HKDF-SHA256) from the bearer token, which the client sends the manager
 * on every request anyway, with the manager's URL and the pinned CA digest as associated data. Reading or
 * replacing the file without the token gains nothing; a file of another manager, pin or token, or a corrupt
 * one, does not open and is ignored. Only token clients keep sessions (the key needs the token): a resumed
 * session also stands for the client certificate of the handshake it came from, which no file should hold.
 * Best-effort like the CA cache: a folder that cannot be read or written only costs the full handshake.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { readIfExists, writeFileAtomic } from '../pki/files.ts';

/** AES-256-GCM: 96-bit nonce (NIST SP 800-38D's recommended length), 128-bit tag. */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_INFO = 'vxnet cli tls session v1';

export interface SessionTarget {
  /** the manager's URL as the client names it (`https://ADDR:PORT`) */
  url: string;
  /** hex SHA-256 of the CA the client verifies the manager against */
  pin: string;
  /** the bearer token the client authenticates with */
  token: string;
}

/** The kept session of one manager for one client: offered to each new connection, replaced by newer ones. */
export class TlsSessionStore {
  readonly #file: string;
  readonly #dir: string;
  readonly #key: Buffer;
  readonly #aad: Buffer;
  #session: Buffer | undefined;
  #loaded = false;
  #resumed: boolean | undefined;

  constructor(dir: string, target: SessionTarget) {
    // node:crypto is loaded by node:tls already on every https path, the only one that makes a store.
    const crypto = process.getBuiltinModule('node:crypto');
    const id = `${target.url}\n${target.pin}`;
    this.#dir = dir;
    this.#file = join(dir, `tls-session-${crypto.createHash('sha256').update(id).digest('hex').slice(0, 32)}`);
    this.#aad = Buffer.from(id);
    this.#key = Buffer.from(crypto.hkdfSync('sha256', target.token, target.pin, `${KEY_INFO}\n${target.url}`, 32));
  }

  /** The file this store keeps its session in. */
  get file(): string {
    return this.#file;
  }

  /** Whether the last connection watched resumed a kept session; undefined before one has connected. */
  get resumed(): boolean | undefined {
    return this.#resumed;
  }

  /** The session to offer a new connection, if one is kept and opens with this client's key. */
  offer(): Buffer | undefined {
    if (!this.#loaded) {
      this.#loaded = true;
      this.#session = this.#open();
    }
    return this.#session;
  }

  /** Follows a new connection: whether it resumed, and the first session the manager sends on it, kept. */
  watch(socket: TLSSocket): void {
    socket.once('secureConnect', () => (this.#resumed = socket.isSessionReused()));
    // TLS 1.3 managers send two tickets after a full handshake, one after a resumption: either will do.
    socket.once('session', (session: Buffer) => {
      this.#session = session;
      this.#loaded = true;
      this.#seal(session);
    });
  }

  #open(): Buffer | undefined {
    try {
      const sealed = Buffer.from(readIfExists(this.#file) ?? '', 'base64');
      if (sealed.length <= NONCE_BYTES + TAG_BYTES) return undefined;
      const crypto = process.getBuiltinModule('node:crypto');
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.#key, sealed.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(this.#aad);
      decipher.setAuthTag(sealed.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      return undefined; // unreadable, corrupt, or sealed for another manager, pin or token
    }
  }

  #seal(session: Buffer): void {
    try {
      const crypto = process.getBuiltinModule('node:crypto');
      const nonce = crypto.randomBytes(NONCE_BYTES);
      const cipher = crypto.createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
      cipher.setAAD(this.#aad);
      const sealed = Buffer.concat([cipher.update(session), cipher.final()]);
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      writeFileAtomic(this.#file, Buffer.concat([nonce, cipher.getAuthTag(), sealed]).toString('base64'), 0o600);
    } catch {
      // best-effort: the next call makes a full handshake
    }
  }
}
