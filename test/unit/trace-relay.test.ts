/**
 * The manager's diagnose relay (`vxnet trace`; src/manager/watch-stream.ts, routes.ts): an admin's request
 * goes down the node's watch stream as one `diagnose` line and comes back with that node's certificate.
 * Only admins ask; only the node asked answers, and only the request it was sent; a node without a stream
 * is `unavailable` at once, a silent agent `timeout`; a report that does not fit the schema is refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DiagnoseReport } from '../../src/core/schema/diagnose.ts';
import { inject, type ApiContext } from '../../src/manager/http.ts';
import { type RunningManager, startManager } from '../../src/manager/main.ts';
import type { WatchSink } from '../../src/manager/watch-hub.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { temporaryDirectory } from './support/temporary.ts';
import { join } from 'node:path';

const publicKey = () => generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) as string;

const report = (node: string): DiagnoseReport => ({
  node,
  reconciledRevision: 3,
  underlay: { device: 'eth0', address: '192.0.2.1', mtu: 1500 },
  links: [],
  neighbours: [],
  fdb: [],
  firewall: { present: true, peers: [], ports: [4789] },
  antispoof: { macs: [], ips: [] },
  foreignDrops: [],
  errors: [],
});

describe('diagnose relay', () => {
  let manager: RunningManager;
  let ctx: ApiContext;
  let host1: string;
  let host2: string;
  const lines: string[] = [];
  const call = (req: Parameters<typeof inject>[1]) => inject(ctx, req);
  const ask = (node: string, query = '') =>
    call({ method: 'POST', path: `/v1/nodes/${node}/diagnose${query}`, token: manager.tokens.admin, body: { network: 'blue', macs: [], ips: [] } });
  /** the id of the last diagnose line host1's stream got */
  const lastId = async (): Promise<string> => {
    for (let i = 0; i < 100; i++) {
      const line = lines.findLast((l) => l.includes('"diagnose"'));
      if (line) return (JSON.parse(line) as { id: string }).id;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('no diagnose line arrived');
  };

  before(async () => {
    const dir = temporaryDirectory('vxnet-relay-');
    manager = await startManager({ dataDir: join(dir, 'data'), listen: [`unix:${join(dir, 'm.sock')}`], log: () => {} });
    ctx = { service: manager.service, hub: manager.hub, security: manager.security };
    const joinAs = async (name: string, address: string) => {
      const r = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name, publicKey: publicKey() } });
      const certificate = r.body.certificate as string;
      assert.equal((await call({ method: 'POST', path: '/v1/nodes', certificate, body: { name, address, mtu: 1500 } })).status, 200);
      return certificate;
    };
    host1 = await joinAs('host1', '192.0.2.1');
    host2 = await joinAs('host2', '192.0.2.2');
    const sink: WatchSink = { write: (line) => void lines.push(...line.split('\n').filter(Boolean)), bufferedBytes: 0, close: () => {} };
    manager.hub.attach('host1', sink);
  });

  after(async () => {
    await manager?.close();
  });

  it('carries the request down the node\'s stream and the node\'s answer back', async () => {
    const asked = ask('host1');
    const id = await lastId();
    const line = JSON.parse(lines.findLast((l) => l.includes(id))!) as { type: string; revision: number; request: unknown };
    assert.deepEqual(line, { type: 'diagnose', revision: 0, id, request: { network: 'blue', macs: [], ips: [] } });
    const answered = await call({ method: 'PUT', path: `/v1/nodes/host1/diagnose/${id}`, certificate: host1, body: report('host1') });
    assert.equal(answered.status, 204);
    const result = await asked;
    assert.equal(result.status, 200);
    assert.deepEqual(result.body, report('host1'));
    // answered once: a second answer finds nothing waiting
    assert.equal((await call({ method: 'PUT', path: `/v1/nodes/host1/diagnose/${id}`, certificate: host1, body: report('host1') })).body.error.code, 'not_found');
  });

  it('only admins ask', async () => {
    const refused = await call({ method: 'POST', path: '/v1/nodes/host1/diagnose', certificate: host1, body: { network: 'blue', macs: [], ips: [] } });
    assert.equal(refused.status, 403);
    assert.equal((await call({ method: 'POST', path: '/v1/nodes/host1/diagnose', token: manager.tokens.worker, body: { network: 'blue', macs: [], ips: [] } })).status, 403);
  });

  it('another node can neither answer in its name nor answer a request sent elsewhere; a malformed report is refused', async () => {
    const asked = ask('host1', '?timeout=2');
    const id = await lastId();
    const forged = await call({ method: 'PUT', path: `/v1/nodes/host1/diagnose/${id}`, certificate: host2, body: report('host1') });
    assert.equal(forged.status, 403);
    const elsewhere = await call({ method: 'PUT', path: `/v1/nodes/host2/diagnose/${id}`, certificate: host2, body: report('host2') });
    assert.equal(elsewhere.body.error.code, 'not_found');
    const malformed = await call({ method: 'PUT', path: `/v1/nodes/host1/diagnose/${id}`, certificate: host1, body: { node: 'host1' } });
    assert.equal(malformed.status, 400);
    const wrongNode = await call({ method: 'PUT', path: `/v1/nodes/host1/diagnose/${id}`, certificate: host1, body: report('host2') });
    assert.equal(wrongNode.body.error.code, 'not_found');
    assert.equal((await call({ method: 'PUT', path: `/v1/nodes/host1/diagnose/${id}`, certificate: host1, body: report('host1') })).status, 204);
    assert.equal((await asked).status, 200);
  });

  it('a node without a stream is unavailable at once; a silent agent times out; a bad timeout is one sentence', async () => {
    const none = await ask('host2');
    assert.equal(none.status, 503);
    assert.equal(none.body.error.message, 'the agent of node host2 is not connected to the manager (no open watch stream), so its kernel cannot be read.');
    const silent = await ask('host1', '?timeout=0.1');
    assert.equal(silent.status, 504);
    assert.equal(silent.body.error.message, 'the agent of node host1 did not answer the diagnose request within 0.1 s.');
    assert.equal((await ask('nosuch')).body.error.code, 'node_not_found');
    const bad = await ask('host1', '?timeout=abc');
    assert.equal(bad.body.error.message, 'query parameter "timeout" must be a number of seconds above 0 and at most 60, not "abc".');
    assert.equal(ctx.diagnose!.pending, 0);
  });
});
