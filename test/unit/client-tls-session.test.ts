/**
 * The CLI's kept TLS session (src/client/tls-session.ts) against real https managers: the next client
 * resumes it, a session is only ever offered to the manager and pin it was made for, a corrupt file is
 * ignored, and a session planted by someone without the token does not let another cluster's manager pass
 * for ours (the attack, performed, succeeds against a bare session and fails against the sealed file).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { ManagerClient } from '../../src/client/client.ts';
import { TlsSessionStore } from '../../src/client/tls-session.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { RunningManager } from '../../src/manager/main.ts';
import { parseToken } from '../../src/pki/token.ts';
import { startTlsManager } from './support/manager.ts';

/** One `network ls` with a fresh client on `cache` (as one CLI call); whether its connection resumed a session. */
async function listWith(url: string, token: string, cache: string): Promise<boolean | undefined> {
  const client = new ManagerClient({ url, token, caCacheDir: cache, sessionCacheDir: cache });
  try {
    await client.listNetworks();
    return client.tlsSessionResumed;
  } finally {
    client.close();
  }
}

/** A TLS session of the manager at `url`, obtained by connecting with `ca` (as anyone trusting that CA can). */
function sessionOf(url: string, ca: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: [ca], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    socket.once('session', (session: Buffer) => {
      socket.destroy();
      resolve(session);
    });
    socket.once('error', reject);
  });
}

/** Whether a bare TLS client trusting only `ca` completes a handshake with the manager at `url` when it offers `session`. */
function handshakes(url: string, ca: string, session: Buffer): Promise<{ ok: boolean; resumed: boolean }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: [ca], session, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => {
      resolve({ ok: true, resumed: socket.isSessionReused() });
      socket.destroy();
    });
    socket.once('error', () => resolve({ ok: false, resumed: false }));
  });
}

describe('the kept TLS session of the CLI', () => {
  let dir: string;
  let ours: RunningManager;
  let url: string;
  let theirs: RunningManager;
  let theirUrl: string;
  let token: string;
  let pin: string;

  before(async () => {
    ({ dir, manager: ours, url } = await startTlsManager('vxnet-tls-session-'));
    ({ manager: theirs, url: theirUrl } = await startTlsManager('vxnet-tls-session-other-'));
    token = ours.tokens.admin;
    pin = parseToken(token)!.caDigest;
  });
  after(async () => {
    await theirs.close();
    await ours.close();
  });

  test('the next client resumes the session the last one kept, and the file is private', async () => {
    const cache = join(dir, 'cache-resume');
    assert.equal(await listWith(url, token, cache), false, 'the first call makes a full handshake');
    const file = new TlsSessionStore(cache, { url, pin, token }).file;
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(await listWith(url, token, cache), true, 'the second call resumes');
    assert.equal(await listWith(url, token, cache), true, 'and so does the third, with the session the second kept');
  });

  test('a session is offered only to the manager, pin and token it was kept for', async () => {
    const cache = join(dir, 'cache-keyed');
    await listWith(url, token, cache);
    const kept = new TlsSessionStore(cache, { url, pin, token });
    assert.ok(kept.offer(), 'the store that kept it opens it');
    const otherPin = parseToken(theirs.tokens.admin)!.caDigest;
    const rotated = ours.tokens.worker; // another token of the same cluster
    for (const target of [{ url: theirUrl, pin, token }, { url, pin: otherPin, token }, { url, pin, token: rotated }]) {
      const store = new TlsSessionStore(cache, target);
      // even under the name that store reads, the file does not open for it
      copyFileSync(kept.file, store.file);
      assert.equal(store.offer(), undefined, JSON.stringify({ ...target, token: '…' }));
    }
    // A client of the other manager finds our session under its own name and makes a full handshake.
    copyFileSync(kept.file, new TlsSessionStore(cache, { url: theirUrl, pin: otherPin, token: theirs.tokens.admin }).file);
    assert.equal(await listWith(theirUrl, theirs.tokens.admin, cache), false);
  });

  test('a corrupt session file is ignored and replaced', async () => {
    const cache = join(dir, 'cache-corrupt');
    await listWith(url, token, cache);
    const file = new TlsSessionStore(cache, { url, pin, token }).file;
    for (const junk of ['', 'not base64 at all ###', Buffer.alloc(2000, 7).toString('base64')]) {
      writeFileSync(file, junk);
      assert.equal(await listWith(url, token, cache), false, `a full handshake after ${JSON.stringify(junk.slice(0, 12))}`);
      assert.equal(await listWith(url, token, cache), true, 'and the file it kept then resumes');
    }
    // one bit flipped in the sealed session: the tag no longer matches
    const sealed = Buffer.from(readFileSync(file, 'utf8'), 'base64');
    sealed[sealed.length - 1]! ^= 1;
    writeFileSync(file, sealed.toString('base64'));
    assert.equal(await listWith(url, token, cache), false);
  });

  test("a session planted without the token does not let another cluster's manager pass for ours", async () => {
    // The attacker runs a manager of their own cluster where the CLI connects (here: the CLI is pointed at its
    // address), can write the CLI's cache folder, but does not hold our token.
    const cache = join(dir, 'cache-planted');
    await listWith(url, token, cache); // our CA is cached, as after any earlier call
    const planted = await sessionOf(theirUrl, theirs.caCertificate);
    // The attack works against a bare session: a client trusting only our CA resumes it, no certificate checked.
    assert.deepEqual(await handshakes(theirUrl, ours.caCertificate, planted), { ok: true, resumed: true });
    const file = new TlsSessionStore(cache, { url: theirUrl, pin, token }).file;
    mkdirSync(cache, { recursive: true });
    for (const content of [planted.toString('base64'), Buffer.concat([Buffer.alloc(28), planted]).toString('base64')]) {
      writeFileSync(file, content);
      const client = new ManagerClient({ url: theirUrl, token, caCacheDir: cache, sessionCacheDir: cache });
      try {
        await assert.rejects(client.listNetworks(), (err: unknown) => err instanceof VxnetError && err.code === 'untrusted_manager');
        assert.notEqual(client.tlsSessionResumed, true);
      } finally {
        client.close();
      }
    }
    assert.equal(existsSync(file) && readFileSync(file, 'utf8') === Buffer.concat([Buffer.alloc(28), planted]).toString('base64'), true, 'nothing kept from a refused manager');
  });
});
