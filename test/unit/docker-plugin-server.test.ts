/**
 * The plugin's protocol shell over a real unix socket, spoken to as Docker's plugin client does: POSTs
 * with JSON bodies, answers in the plugin content type, refusals in `Err` / `Error`, malformed calls 400,
 * unknown calls 404.
 */
import assert from 'node:assert/strict';
import { writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VxnetError } from '../../src/core/errors.ts';
import type { IpamDriver } from '../../src/docker/ipam-driver.ts';
import type { NetworkDriver } from '../../src/docker/network-driver.ts';
import { createPluginHandler, pluginRoutes, servePlugin, type PluginServer } from '../../src/docker/plugin-server.ts';
import { temporaryDirectory } from './support/temporary.ts';

function call(socketPath: string, path: string, body?: string, method = 'POST'): Promise<{ status: number; type: string; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: { 'content-type': 'application/vnd.docker.plugins.v1.2+json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('plugin server', () => {
  const dir = temporaryDirectory('vxnet-plugin-');
  const socket = join(dir, 'plugins', 'vxnet.sock');
  const seen: unknown[] = [];
  let server: PluginServer;

  // Driver stand-ins: only what the routes call.
  const network = {
    getCapabilities: () => ({ Scope: 'local', ConnectivityScope: 'global' }),
    createNetwork: async (req: unknown) => {
      seen.push(req);
      throw new VxnetError('subnet_overlap', 'subnet 10.1.0.0/16 overlaps 10.1.0.0/24 of network blue.');
    },
    join: async () => ({ InterfaceName: { SrcName: 'vxncabcdefabcd', DstPrefix: 'eth' }, Gateway: '10.1.0.1', StaticRoutes: [], DisableGatewayService: false }),
    createEndpoint: async () => {
      throw new Error('the manager went away');
    },
  } as unknown as NetworkDriver;
  const ipam = {
    getDefaultAddressSpaces: () => ({ LocalDefaultAddressSpace: 'vxnet', GlobalDefaultAddressSpace: 'vxnet' }),
    requestAddress: async () => {
      throw new VxnetError('subnet_full', 'network blue has no free address left in 10.1.0.0/30.');
    },
  } as unknown as IpamDriver;

  before(async () => {
    server = await servePlugin(socket, createPluginHandler(pluginRoutes(network, ipam)));
  });
  after(async () => {
    await server.close();
  });

  it('activates as a network and an IPAM driver, in the plugin content type', async () => {
    const r = await call(socket, '/Plugin.Activate', '');
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/vnd.docker.plugins.v1.2+json');
    assert.deepEqual(r.json, { Implements: ['NetworkDriver', 'IpamDriver'] });
    assert.deepEqual((await call(socket, '/NetworkDriver.GetCapabilities', 'null')).json, { Scope: 'local', ConnectivityScope: 'global' });
  });

  it('a parsed request reaches the driver; its refusal is 200 with Err for the network driver, Error for IPAM', async () => {
    const id = 'f'.repeat(64);
    const create = await call(socket, '/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: id, Options: {}, IPv4Data: [{ AddressSpace: 'vxnet', Pool: '10.1.0.0/16' }] }));
    assert.deepEqual([create.status, create.json], [200, { Err: 'subnet 10.1.0.0/16 overlaps 10.1.0.0/24 of network blue.' }]);
    assert.deepEqual(seen.at(-1), { NetworkID: id, Options: {}, IPv4Data: [{ AddressSpace: 'vxnet', Pool: '10.1.0.0/16' }], IPv6Data: [] });
    const address = await call(socket, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'vxnet:10.1.0.0/30', Address: '', Options: null }));
    assert.deepEqual([address.status, address.json], [200, { Error: 'network blue has no free address left in 10.1.0.0/30.' }]);
  });

  it('an unexpected failure is still an answer, with the reason', async () => {
    const r = await call(socket, '/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: 'a'.repeat(64), EndpointID: 'b'.repeat(64), Interface: { Address: '10.1.0.5/24' } }));
    assert.deepEqual([r.status, r.json], [200, { Err: 'vxnet plugin error: the manager went away' }]);
  });

  it('malformed calls are 400 with the reason, an oversized body too; unknown calls 404', async () => {
    const notJson = await call(socket, '/NetworkDriver.Join', '{nope');
    assert.equal(notJson.status, 400);
    assert.match(notJson.json.Err, /not JSON/);
    const badId = await call(socket, '/NetworkDriver.Join', JSON.stringify({ NetworkID: 'x', EndpointID: 'y' }));
    assert.equal(badId.status, 400);
    assert.match(badId.json.Err, /Docker id/);
    const badIpam = await call(socket, '/IpamDriver.RequestPool', JSON.stringify({ V6: 'yes' }));
    assert.equal(badIpam.status, 400);
    assert.match(badIpam.json.Error, /"V6"/);
    const huge = await call(socket, '/NetworkDriver.Join', JSON.stringify({ padding: 'x'.repeat(1024 * 1024) }));
    assert.deepEqual([huge.status, huge.json], [400, { Err: 'NetworkDriver.Join: the request body is larger than 1048576 bytes.' }]);
    assert.equal((await call(socket, '/VolumeDriver.Create', '{}')).status, 404);
    assert.equal((await call(socket, '/Plugin.Activate', undefined, 'GET')).status, 404);
  });

  it('a stale socket is replaced; anything else at the path is refused', async () => {
    const stale = join(dir, 'stale.sock');
    const first = await servePlugin(stale, createPluginHandler(new Map()));
    // a killed agent leaves its socket behind: simulate by serving again without closing
    const second = await servePlugin(stale, createPluginHandler(new Map()));
    await second.close();
    assert.equal(existsSync(stale), false);
    await first.close();
    const file = join(dir, 'file.sock');
    writeFileSync(file, 'not a socket');
    await assert.rejects(servePlugin(file, createPluginHandler(new Map())), /not a socket/);
  });
});
