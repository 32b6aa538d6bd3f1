/** The daemons' logger (src/core/log.ts) and the --log-level flag of `vxnet manager` and `vxnet agent`. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger, journaldWanted, levelOf, warnLine } from '../../src/core/log.ts';
import { resolveCommandLine } from '../../src/cli/parse.ts';

const at = () => new Date('2026-12-05T01:02:03.456Z');

function capture(options: Omit<Parameters<typeof createLogger>[0], 'write'>) {
  const out: string[] = [];
  const log = createLogger({ ...options, write: (text) => out.push(text), now: at });
  return { log, out };
}

describe('daemon logger', () => {
  test('one line per event: ISO timestamp, level, text; the level comes from the line prefix', () => {
    const { log, out } = capture({});
    log('node host1 registered');
    log(warnLine('watch failed: ECONNREFUSED'));
    log('error: certificate renewal stopped: boom');
    assert.deepEqual(out, [
      '2026-12-05T01:02:03.456Z info node host1 registered\n',
      '2026-12-05T01:02:03.456Z warn watch failed: ECONNREFUSED\n',
      '2026-12-05T01:02:03.456Z error certificate renewal stopped: boom\n',
    ]);
  });

  test('drops lines below the chosen level; debug shows everything', () => {
    const quiet = capture({ level: 'warn' });
    for (const line of ['debug: d', 'i', 'warning: w', 'error: e']) quiet.log(line);
    assert.deepEqual(quiet.out.map((l) => l.split(' ')[1]), ['warn', 'error']);
    const loud = capture({ level: 'debug' });
    for (const line of ['debug: d', 'i']) loud.log(line);
    assert.deepEqual(loud.out.map((l) => l.split(' ')[1]), ['debug', 'info']);
  });

  test('under journald: syslog priorities instead of timestamps (systemd adds its own)', () => {
    const { log, out } = capture({ journald: true, level: 'debug' });
    for (const line of ['debug: d', 'i', 'warning: w', 'error: e']) log(line);
    assert.deepEqual(out, ['<7>d\n', '<6>i\n', '<4>w\n', '<3>e\n']);
  });

  test('a stack trace stays one line', () => {
    const { log, out } = capture({ journald: true });
    log('error: internal error: Error: x\n    at f (a.ts:1)\n    at g (b.ts:2)');
    assert.deepEqual(out, ['<3>internal error: Error: x | at f (a.ts:1) | at g (b.ts:2)\n']);
  });

  test('journald form only when JOURNAL_STREAM is set and the output is not a terminal', () => {
    assert.equal(journaldWanted({ JOURNAL_STREAM: '8:1234' }, false), true);
    assert.equal(journaldWanted({ JOURNAL_STREAM: '8:1234' }, true), false);
    assert.equal(journaldWanted({}, false), false);
    assert.deepEqual(levelOf('plain'), { level: 'info', text: 'plain' });
  });
});

describe('--log-level', () => {
  const env = { VXNET_MANAGER: 'https://10.0.0.1:7946' };
  test('manager and agent take debug, info, warn or error; the default leaves the command as it was', () => {
    const manager = resolveCommandLine(['manager', '--data-dir', '/d', '--listen', '0.0.0.0:7946', '--log-level', 'debug'], env).command;
    assert.deepEqual((manager as { log?: unknown }).log, { level: 'debug' });
    const agent = resolveCommandLine(['agent', '--advertise-addr', '10.0.0.2', '--log-level', 'warn'], { ...env, JOURNAL_STREAM: '8:1' }).command;
    assert.deepEqual((agent as { log?: unknown }).log, { level: 'warn', journalStream: true });
    const plain = resolveCommandLine(['manager', '--data-dir', '/d', '--listen', '0.0.0.0:7946'], env).command;
    assert.equal('log' in plain, false);
  });

  test('any other level is a usage error that lists the four', () => {
    assert.throws(
      () => resolveCommandLine(['manager', '--data-dir', '/d', '--listen', '0.0.0.0:7946', '--log-level', 'verbose'], env),
      { code: 'usage', message: '--log-level takes debug, info, warn, error, not "verbose".' },
    );
  });
});
