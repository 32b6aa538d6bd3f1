/** Friction a new user met (issue 17): subnet mistakes named one by one, "did you mean", flags named in API errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { cliWording } from '../../src/cli/format.ts';
import { requireCidr } from '../../src/core/ipv4.ts';
import { closest, editDistance } from '../../src/cli/suggest.ts';

const env = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 't' };
const usage = (line: string) => {
  try {
    parseCommandLine(line.split(' '), env);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`"${line}" was accepted`);
};

describe('subnet mistakes, each with its own sentence', () => {
  test('on the command line', () => {
    // IPv6 subnets are accepted since issue 15; a bad one is worded for its family
    assert.equal(
      usage('network create n --subnet fd00::1/64'),
      '--subnet "fd00::1/64" is not a valid IPv6 subnet: its host bits are set, the subnet of fd00::1/64 is fd00::/64.',
    );
    assert.equal(usage('network create n --subnet 10.0.0.0/33'), '--subnet "10.0.0.0/33" is not a valid IPv4 subnet: prefix /33 is out of range, an IPv4 prefix is /0 to /32.');
    assert.equal(usage('network create n --subnet 10.1.0.0'), '--subnet "10.1.0.0" is not a valid IPv4 subnet: the prefix length is missing, as in 10.1.0.0/24.');
    assert.equal(
      usage('network create n --subnet 10.1.0.1/24'),
      '--subnet "10.1.0.1/24" is not a valid IPv4 subnet: its host bits are set, the subnet of 10.1.0.1/24 is 10.1.0.0/24.',
    );
  });

  test('in the API', () => {
    assert.throws(() => requireCidr('fd00::/64'), { code: 'invalid_cidr', message: 'subnet "fd00::/64" is not a valid IPv4 CIDR: IPv6 is not supported yet, only IPv4 subnets such as 192.168.1.0/24.' });
    assert.throws(() => requireCidr('banana'), { code: 'invalid_cidr', message: 'subnet "banana" is not a valid IPv4 CIDR: write it as an IPv4 address and a prefix length, such as 192.168.1.0/24.' });
  });
});

describe('did you mean', () => {
  test('a mistyped command, group or flag gets the closest within two edits', () => {
    assert.match(usage('netwrok ls'), /^unknown command "netwrok" \(did you mean "network ls"\?\); run "vxnet --help"/);
    assert.match(usage('network craete n'), /^unknown command "network craete" \(did you mean "network create"\?\)/);
    assert.match(usage('agnet'), /\(did you mean "agent"\?\)/);
    assert.match(usage('network rm n --froce'), /^unknown flag --froce for "vxnet network rm" \(did you mean --force\?\); run "vxnet network rm --help"/);
    assert.match(usage('network ls --jsno'), /\(did you mean --json\?\)/);
  });

  test('nothing far away is suggested', () => {
    assert.equal(usage('frobnicate'), 'unknown command "frobnicate"; run "vxnet --help" for the list of commands.');
    assert.doesNotMatch(usage('network ls --bogus'), /did you mean/);
    assert.equal(closest('ls', ['rm']), undefined);
    assert.equal(editDistance('netwrok', 'network'), 1);
  });
});

describe('API wording at the CLI', () => {
  test('names the flag where the API names its field or parameter', () => {
    assert.equal(
      cliWording('multicastGroup 10.0.0.1 is not a multicast address (224.0.0.0/4).'),
      '--multicast-group 10.0.0.1 is not a multicast address (224.0.0.0/4).',
    );
    assert.equal(cliWording('network blue still has 2 endpoints: delete them first or use force.'), 'network blue still has 2 endpoints: delete them first or pass --force.');
    assert.equal(cliWording('network blue is in use.'), 'network blue is in use.');
  });
});
