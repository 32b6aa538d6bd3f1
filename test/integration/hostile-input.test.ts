/**
 * Hostile input against one real manager process (over its unix socket, with the admin token; no agents:
 * nodes are registered through the API). Every malformed, oversized, mistyped or over-specified body and
 * every name carrying shell metacharacters, path separators, whitespace or sheer length is refused with a
 * 4xx, a code from the catalogue and one short sentence — and leaves no trace: the revision and every
 * listing are the same before and after. Then concurrency: 100 simultaneous attaches to one network get
 * 100 different addresses with no lost update, and a /28 filling up refuses the 14th attach (13 usable
 * addresses) with subnet_full, with nothing half-created — also when 20 attaches race for it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_STATUS } from '../../src/core/errors.ts';
import type { Endpoint } from '../../src/core/model.ts';
import { createCluster, type Cluster } from '../../src/testkit/cluster.ts';
import { requestJson, type JsonResponse } from '../../src/testkit/http.ts';

const MIB = 1024 * 1024;

/** Names that must never be accepted anywhere a name goes (and so never reach a device, a key or a shell). */
const HOSTILE_NAMES: [string, string][] = [
  ['a semicolon', 'a;rm -rf /'],
  ['command substitution', '$(reboot)'],
  ['backticks', '`id`'],
  ['a pipe', 'a|cat'],
  ['an ampersand', 'a&&b'],
  ['a redirection', 'a>b'],
  ['a glob', 'a*'],
  ['quotes', `a'b"c`],
  ['a parent path', '../etc'],
  ['a slash', 'a/b'],
  ['an absolute path', '/etc/passwd'],
  ['a space', 'has space'],
  ['a newline', 'new\nline'],
  ['a tab', 'tab\tname'],
  ['a NUL byte', 'nul\u0000byte'],
  ['a leading dash', '-rf'],
  ['a dot', '.'],
  ['two dots', '..'],
  ['non-ASCII letters', 'ünïcödé'],
  ['an empty string', ''],
  ['64 characters', 'x'.repeat(64)],
  ['100,000 characters', 'y'.repeat(100_000)],
];

describe('hostile input to the manager API', () => {
  let cluster: Cluster;

  const raw = (method: string, path: string, rawBody?: string): Promise<JsonResponse<any>> =>
    requestJson({
      url: cluster.manager.socketUrl,
      token: cluster.manager.adminToken,
      method,
      path,
      ...(rawBody === undefined ? {} : { rawBody }),
    });

  /** Everything the API shows, minus liveness (which no write changes). */
  async function state(): Promise<string> {
    const [info, networks, nodes, endpoints] = await Promise.all([
      cluster.api<{ revision: number }>('GET', '/v1/info'),
      cluster.api('GET', '/v1/networks'),
      cluster.api<{ name: string; address: string; mtu: number }[]>('GET', '/v1/nodes'),
      cluster.api('GET', '/v1/endpoints'),
    ]);
    const nodeRecords = nodes.body.map(({ name, address, mtu }) => ({ name, address, mtu }));
    return JSON.stringify({ revision: info.body.revision, networks: networks.body, nodes: nodeRecords, endpoints: endpoints.body });
  }

  /** A refusal: 4xx, a catalogue code with its status, one short sentence; and nothing changed. */
  async function refused(what: string, send: () => Promise<JsonResponse<any>>, expect: { status?: number; code?: string | RegExp } = {}) {
    const before = await state();
    const answer = await send();
    assert.ok(answer.status >= 400 && answer.status < 500, `${what}: expected a 4xx, got ${answer.status} ${answer.text.slice(0, 300)}`);
    const error = answer.body?.error as { code: keyof typeof ERROR_STATUS; message: string } | undefined;
    assert.ok(error && typeof error.code === 'string' && typeof error.message === 'string', `${what}: error body ${answer.text.slice(0, 300)}`);
    assert.equal(ERROR_STATUS[error.code], answer.status, `${what}: code ${error.code} matches status ${answer.status}`);
    if (expect.status !== undefined) assert.equal(answer.status, expect.status, `${what}: ${error.message}`);
    if (typeof expect.code === 'string') assert.equal(error.code, expect.code, `${what}: ${error.message}`);
    if (expect.code instanceof RegExp) assert.match(error.code, expect.code, `${what}: ${error.message}`);
    assert.doesNotMatch(error.message, /[\u0000-\u001f]/, `${what}: the message is one line without control characters: ${JSON.stringify(error.message)}`);
    assert.ok(error.message.length <= 300, `${what}: the message is short (${error.message.length} chars): ${error.message.slice(0, 400)}`);
    assert.match(error.message, /^[a-z0-9"'`(/].*[.)]$/i, `${what}: one sentence: ${error.message}`);
    assert.doesNotMatch(error.message, /\n\s+at |TypeError|RangeError|SyntaxError: /, `${what}: no stack or internal error`);
    assert.equal(await state(), before, `${what}: nothing changed`);
    return error;
  }

  before(async () => {
    cluster = await createCluster({ hosts: 1, outside: false, startDaemons: false });
    await cluster.startManager();
    const node = await cluster.api('POST', '/v1/nodes', { name: 'n1', address: '10.99.0.100', mtu: 1500 });
    assert.equal(node.status, 200, node.text);
    for (const [name, cidr] of [['blue', '192.168.1.0/24'], ['tiny', '10.60.0.0/28'], ['wide', '10.70.0.0/22']] as const) {
      const answer = await cluster.api('POST', '/v1/networks', { name, subnets: [{ cidr }] });
      assert.equal(answer.status, 201, answer.text);
    }
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('refuses malformed JSON and bodies that are not objects', async () => {
    const bodies: [string, string][] = [
      ['truncated JSON', '{"name": "x",'],
      ['trailing garbage', '{"name": "x"} and more'],
      ['an empty body', ''],
      ['whitespace only', '   \n'],
      ['single quotes', "{'name': 'x'}"],
      ['null', 'null'],
      ['an array', '[{"name": "x"}]'],
      ['a string', '"x"'],
      ['a number', '42'],
      ['200,000 levels of nesting', '['.repeat(200_000) + ']'.repeat(200_000)],
      ['a lone surrogate', '{"name": "\\ud800"}'],
    ];
    for (const path of ['/v1/networks', '/v1/endpoints?wait=0', '/v1/nodes']) {
      for (const [what, body] of bodies) {
        await refused(`POST ${path} with ${what}`, () => raw('POST', path, body), { status: 400 });
      }
    }
    await refused('heartbeat with truncated JSON', () => raw('POST', '/v1/nodes/n1/heartbeat', '{"reconciledRevision":'), { status: 400 });
    await refused('status with an array', () => raw('PUT', '/v1/endpoints/abcdefabcdef/status', '[]'), { status: 400 });
  });

  it('refuses bodies over 1 MiB with 413, valid JSON or not', async () => {
    const padded = JSON.stringify({ name: 'big', pad: 'x'.repeat(MIB) });
    await refused('a 1 MiB + network request', () => raw('POST', '/v1/networks', padded), { status: 413, code: 'payload_too_large' });
    await refused('1 MiB + 1 byte of garbage', () => raw('POST', '/v1/endpoints', 'x'.repeat(MIB + 1)), { status: 413 });
    await refused('8 MiB of spaces', () => raw('POST', '/v1/nodes', ' '.repeat(8 * MIB)), { status: 413 });
    // Just under the limit is read and judged on its content.
    const under = JSON.stringify({ name: 'big', pad: 'x'.repeat(MIB - 100) });
    await refused('just under 1 MiB with an unknown field', () => raw('POST', '/v1/networks', under), { status: 400, code: 'bad_request' });
  });

  it('refuses wrong types and unknown fields, naming the field', async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ['network name as a number', '/v1/networks', { name: 1 }, /"name".*string/],
      ['VNI as a string', '/v1/networks', { name: 'n', vni: '1000' }, /"vni".*integer/],
      ['VNI as a fraction', '/v1/networks', { name: 'n', vni: 1000.5 }, /"vni".*integer/],
      ['VNI beyond 2^53', '/v1/networks', { name: 'n', vni: 2 ** 60 }, /"vni".*integer/],
      ['subnets as a string', '/v1/networks', { name: 'n', subnets: '10.1.0.0/24' }, /"subnets".*array/],
      ['a subnet cidr as a number', '/v1/networks', { name: 'n', subnets: [{ cidr: 10 }] }, /"subnets\[0\]\.cidr".*string/],
      ['internal as "yes"', '/v1/networks', { name: 'n', internal: 'yes' }, /"internal".*true or false/],
      ['mtu as null', '/v1/networks', { name: 'n', mtu: null }, /"mtu".*integer/],
      ['an unknown field', '/v1/networks', { name: 'n', colour: 'blue' }, /unknown field "colour"/],
      ['an unknown nested field', '/v1/networks', { name: 'n', subnets: [{ cidr: '10.1.0.0/24', mask: 24 }] }, /unknown field "subnets\[0\]\.mask"/],
      ['an unknown field with a newline', '/v1/networks', { name: 'n', ['x\ny']: 1 }, /unknown field/],
      ['an unknown field of 100,000 characters', '/v1/networks', { name: 'n', ['k'.repeat(100_000)]: 1 }, /unknown field/],
      ['a missing name', '/v1/networks', { vni: 5000 }, /"name" is required/],
      ['netns as a number', '/v1/endpoints?wait=0', { network: 'blue', node: 'n1', netns: 5 }, /"netns".*string/],
      ['network as an array', '/v1/endpoints?wait=0', { network: ['blue'], node: 'n1', netns: 'c1' }, /"network".*string/],
      ['ip as a number', '/v1/endpoints?wait=0', { network: 'blue', node: 'n1', netns: 'c1', ip: 3232235787 }, /"ip".*string/],
      // a chosen MAC is part of the API since the CNI plugin's MAC= (podman --mac-address): its type is checked
      ['a MAC as a number', '/v1/endpoints?wait=0', { network: 'blue', node: 'n1', netns: 'c1', mac: 2 }, /"mac".*string/],
      ['a node address as a number', '/v1/nodes', { name: 'n9', address: 1, mtu: 1500 }, /"address".*string/],
      ['a node MTU as a string', '/v1/nodes', { name: 'n9', address: '10.99.0.109', mtu: '1500' }, /"mtu".*integer/],
      ['a node claiming a role', '/v1/nodes', { name: 'n9', address: '10.99.0.109', mtu: 1500, role: 'admin' }, /unknown field "role"/],
      ['a heartbeat revision as a string', '/v1/nodes/n1/heartbeat', { reconciledRevision: '5' }, /"reconciledRevision".*integer/],
      ['a negative heartbeat revision', '/v1/nodes/n1/heartbeat', { reconciledRevision: -1 }, /reconciledRevision/],
    ];
    for (const [what, path, body, message] of cases) {
      const error = await refused(what, () => raw('POST', path, JSON.stringify(body)), { status: 400, code: 'bad_request' });
      assert.match(error.message, message, what);
    }
    // and its meaning: a multicast MAC, or one in vxnet's own derived range, is never an endpoint's
    for (const [mac, message] of [['03:00:00:00:00:01', /multicast/], ['02:78:c0:a8:01:09', /vxnet's own range/]] as const) {
      const error = await refused(`MAC ${mac}`, () => raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: 'blue', node: 'n1', netns: 'c1', mac })), { status: 400 });
      assert.match(error.message, message);
    }
    // A "__proto__" key is an own property after JSON.parse: refused as unknown, never merged into anything.
    const proto = await refused('a __proto__ field', () => raw('POST', '/v1/networks', '{"name": "n", "__proto__": {"admin": true}}'), {
      status: 400,
    });
    assert.match(proto.message, /unknown field "__proto__"/);
    assert.equal(({} as { admin?: unknown }).admin, undefined);
    const status = await refused('an unknown endpoint status', () => raw('PUT', '/v1/endpoints/abcdefabcdef/status', '{"status": "done"}'), {
      status: 400,
    });
    assert.match(status.message, /"status"/);
  });

  it('refuses names with shell metacharacters, path separators, whitespace or too many characters, everywhere a name goes', async () => {
    for (const [what, name] of HOSTILE_NAMES) {
      await refused(`a network named with ${what}`, () => raw('POST', '/v1/networks', JSON.stringify({ name })), {
        status: 400,
        code: /^(invalid_name|bad_request)$/,
      });
      await refused(`a node named with ${what}`, () => raw('POST', '/v1/nodes', JSON.stringify({ name, address: '10.99.0.109', mtu: 1500 })), {
        status: 400,
        code: /^(invalid_name|bad_request)$/,
      });
      await refused(`an interface named with ${what}`, () =>
        raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: 'blue', node: 'n1', netns: 'c1', ifname: name })),
      { status: 400, code: /^(invalid_name|bad_request)$/ });
      // An absolute path is a valid netns by design (/proc/PID/ns/net, a runtime's bind mount): the agent
      // only ever enters it as a network namespace (nsenter --net), so a clean path is not hostile here.
      if (!/^\/[A-Za-z0-9_.\/-]+$/.test(name) || name.includes('..')) {
        await refused(`a netns named with ${what}`, () =>
          raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: 'blue', node: 'n1', netns: name })),
        { status: 400, code: /^(invalid_name|bad_request)$/ });
      }
      await refused(`an attach to a network named with ${what}`, () =>
        raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: name, node: 'n1', netns: 'c1' })),
      { status: 400, code: /^(invalid_name|bad_request)$/ });
      await refused(`an attach on a node named with ${what}`, () =>
        raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: 'blue', node: name, netns: 'c1' })),
      { status: 400, code: /^(invalid_name|bad_request)$/ });
      if (name.length < 1000) {
        const segment = encodeURIComponent(name);
        // "", "." and ".." in a URL are path syntax (GET /v1/networks/. is GET /v1/networks), not names.
        if (!['', '.', '..'].includes(name)) {
          await refused(`GET a network named with ${what}`, () => raw('GET', `/v1/networks/${segment}`), { code: /not_found|invalid_name/ });
          await refused(`DELETE a network named with ${what}`, () => raw('DELETE', `/v1/networks/${segment}?force=true`), {
            code: /not_found|invalid_name/,
          });
          await refused(`DELETE a node named with ${what}`, () => raw('DELETE', `/v1/nodes/${segment}?drain=true`), {
            code: /not_found|invalid_name/,
          });
        }
        await refused(`a watch for a node named with ${what}`, () => raw('GET', `/v1/agent/watch?node=${segment}`), {
          code: /not_found|invalid_name|bad_request/,
        });
        await refused(`endpoints filtered by a network named with ${what}`, () => raw('GET', `/v1/endpoints?network=${segment}`), {
          code: /not_found|invalid_name/,
        });
      }
    }
    // Paths that try to climb out of a namespace directory, or smuggle something after a valid one.
    for (const netns of ['/run/netns/../../etc/passwd', '/run/netns/c1;reboot', '/run/netns/c 1', '/run/netns/$(id)', '/proc/1/ns/net\n']) {
      await refused(`netns path ${JSON.stringify(netns)}`, () =>
        raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: 'blue', node: 'n1', netns })),
      { status: 400, code: 'invalid_name' });
    }
    // Query parameters get the same treatment.
    await refused('a wait of "$(id)"', () => raw('POST', '/v1/endpoints?wait=%24(id)', JSON.stringify({ network: 'blue', node: 'n1', netns: 'c1' })), {
      status: 400,
    });
    await refused('a force flag with a newline', () => raw('DELETE', '/v1/networks/blue?force=yes%0Aplease'), { status: 400 });
    await refused('a drain flag with a newline', () => raw('DELETE', '/v1/nodes/n1?drain=1%0A2'), { status: 400 });
    await refused('a static ip with a newline', () =>
      raw('POST', '/v1/endpoints?wait=0', JSON.stringify({ network: 'blue', node: 'n1', netns: 'c1', ip: '192.168.1.9\nx' })),
    { status: 400 });
    await refused('a subnet of 100,000 characters', () =>
      raw('POST', '/v1/networks', JSON.stringify({ name: 'n', subnets: [{ cidr: '1'.repeat(100_000) }] })),
    { status: 400 });
  });

  it('gives 100 concurrent attaches to one network 100 different addresses, with no lost update', async (t) => {
    const before = (await cluster.api<{ revision: number }>('GET', '/v1/info')).body.revision;
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        cluster.api<Endpoint>('POST', '/v1/endpoints?wait=0', { network: 'wide', node: 'n1', netns: `race${i}` }),
      ),
    );
    const ms = performance.now() - started;
    assert.deepEqual(answers.filter((a) => a.status !== 201).map((a) => a.text), [], 'every attach succeeded');
    const ips = answers.map((a) => a.body.ip);
    assert.equal(new Set(ips).size, 100, 'no address handed out twice');
    const listed = (await cluster.api<Endpoint[]>('GET', '/v1/endpoints?network=wide')).body;
    assert.deepEqual(listed.map((e) => e.id).sort(), answers.map((a) => a.body.id).sort(), 'every acknowledged attach is stored');
    const after = (await cluster.api<{ revision: number }>('GET', '/v1/info')).body.revision;
    assert.equal(after - before, 100, 'exactly one committed write per attach');
    // Lowest free first: the 100 addresses are exactly .2 .. .101 of 10.70.0.0/22.
    const expected = Array.from({ length: 100 }, (_, i) => `10.70.0.${i + 2}`);
    assert.deepEqual(ips.sort(byAddress), expected);
    t.diagnostic(`100 concurrent attaches (wait=0) answered in ${ms.toFixed(0)} ms`);
  });

  it('refuses the 14th attach to a /28 (13 usable addresses) with subnet_full, half-creating nothing', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 13; i++) {
      const answer = await cluster.api<Endpoint>('POST', '/v1/endpoints?wait=0', { network: 'tiny', node: 'n1', netns: `fill${i}` });
      assert.equal(answer.status, 201, answer.text);
      ids.push(answer.body.id);
    }
    const full = await refused('the 14th attach to a /28', () =>
      cluster.api('POST', '/v1/endpoints?wait=0', { network: 'tiny', node: 'n1', netns: 'fill13' }),
    { status: 409, code: 'subnet_full' });
    assert.equal(full.message, 'network tiny has no free address left in 10.60.0.0/28.');
    // The refused attach left no claim behind: its interface is still free, and so is every address once released.
    for (const id of ids) assert.equal((await cluster.api('DELETE', `/v1/endpoints/${id}?wait=0`)).status, 204);
    const retry = await cluster.api<Endpoint>('POST', '/v1/endpoints?wait=0', { network: 'tiny', node: 'n1', netns: 'fill13' });
    assert.equal(retry.status, 201, retry.text);
    assert.equal(retry.body.ip, '10.60.0.2');
    assert.equal((await cluster.api('DELETE', `/v1/endpoints/${retry.body.id}?wait=0`)).status, 204);

    // 20 attaches racing for 13 addresses: 13 win (all different), 7 are told the subnet is full.
    const before = (await cluster.api<{ revision: number }>('GET', '/v1/info')).body.revision;
    const race = await Promise.all(
      Array.from({ length: 20 }, (_, i) => cluster.api<any>('POST', '/v1/endpoints?wait=0', { network: 'tiny', node: 'n1', netns: `burst${i}` })),
    );
    const won = race.filter((a) => a.status === 201);
    const lost = race.filter((a) => a.status !== 201);
    assert.equal(won.length, 13);
    assert.equal(new Set(won.map((a) => a.body.ip)).size, 13);
    assert.deepEqual([...new Set(lost.map((a) => `${a.status} ${a.body.error.code}`))], ['409 subnet_full']);
    assert.equal((await cluster.api<{ revision: number }>('GET', '/v1/info')).body.revision - before, 13, 'only the winners wrote');
    assert.equal((await cluster.api<Endpoint[]>('GET', '/v1/endpoints?network=tiny')).body.length, 13);
  });
});

function byAddress(a: string, b: string): number {
  const n = (ip: string) => ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
  return n(a) - n(b);
}
