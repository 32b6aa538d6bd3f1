/** A token refused as rotated or unknown is named so, with the token the caller should use instead (issue 17). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inject } from '../../src/manager/http.ts';
import { startManager } from '../../src/manager/main.ts';
import { temporaryDirectory } from './support/temporary.ts';

describe('rotated or unknown tokens', () => {
  test('a join points at the worker token, any other call at the admin token', async () => {
    const dir = temporaryDirectory();
    const manager = await startManager({ dataDir: join(dir, 'data'), listen: [`unix:${join(dir, 'm.sock')}`] });
    try {
      const ctx = { service: manager.service, hub: manager.hub, security: manager.security };
      const old = manager.tokens.worker;
      manager.security.tokens.rotate('worker');
      const joined = await inject(ctx, { method: 'POST', path: '/v1/join', token: old, body: { name: 'h1', publicKey: 'x' } });
      assert.equal(joined.status, 401);
      assert.equal(joined.body.error.message, 'this token was rotated or is unknown: join with the current worker token (DATA_DIR/worker.token on the manager).');
      const listed = await inject(ctx, { method: 'GET', path: '/v1/networks', token: old });
      assert.equal(listed.status, 401);
      assert.equal(listed.body.error.message, 'this token was rotated or is unknown: use the current admin token (DATA_DIR/admin.token on the manager).');
    } finally {
      await manager.close();
    }
  });
});
