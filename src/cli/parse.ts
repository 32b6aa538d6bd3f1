/**
 * Command-line parsing: argv and the environment in, a typed Command (and the runner that takes it) out, or
 * a UsageError with one sentence. Pure (no I/O), so every rule is tested in-process.
 *
 * Conventions: `--flag value` or `--flag=value`; global flags (--manager, --token, --ca, --json, --help) may
 * come before or after the command words; a flag given twice is an error unless it is repeatable; numbers
 * are whole decimal numbers, nothing else; `--` ends the flags.
 *
 * The words and flags themselves are read by flags.ts; this module adds the list of commands: help, and
 * "did you mean" for a mistyped command.
 */
import { UsageError, type Env } from './command.ts';
import { didYouMean, invoke, isHelpToken, parseFlags, splitCommandWords, untilDoubleDash, type Invocation } from './flags.ts';
import { commandHelp, groupHelp, helpFor, isGroup, subcommands, topHelp } from './help.ts';
import { COMMANDS, findCommand, GROUPS, type Command } from './registry.ts';
import { closest } from './suggest.ts';

export type { Invocation } from './flags.ts';

/** Turns argv (without the node and script paths) into a Command, or throws a UsageError. */
export function parseCommandLine(argv: readonly string[], env: Env): Command {
  return resolveCommandLine(argv, env).command;
}

/** As parseCommandLine, with the runner of the command's module. */
export function resolveCommandLine(argv: readonly string[], env: Env): Invocation {
  const { words, leading, rest } = splitCommandWords(argv, isGroup);
  const first = words[0];
  if (first === undefined) {
    if (leading.some(isHelpToken)) return help(topHelp());
    if (leading.some((t) => t === '--version')) return resolveCommandLine(['version'], env);
    throw new UsageError('no command given; run "vxnet --help" for the list of commands.');
  }
  if (first === 'help') return help(helpFor(rest.filter((t) => !t.startsWith('-'))));

  if (isGroup(first) && words[1] === undefined) {
    if ([...leading, ...rest].some(isHelpToken)) return help(groupHelp(first));
    throw new UsageError(`"vxnet ${first}" needs a subcommand: ${subcommands(first).join(', ')}; run "vxnet ${first} --help" for more.`);
  }
  const path = words.join(' ');
  const spec = findCommand(path);
  if (!spec) {
    let near = closestCommand(words);
    // "netwrok ls": the group's word was mistyped, so "ls" is still in the rest of the line
    if (near !== undefined && isGroup(near) && rest[0] !== undefined && findCommand(`${near} ${rest[0]}`)) near = `${near} ${rest[0]}`;
    throw new UsageError(`unknown command "${path}"${didYouMean(near, (w) => `"${w}"`)}; run "vxnet --help" for the list of commands.`);
  }
  // Help wins over every other mistake on the line, so `vxnet attach --help` works without its flags.
  if ([...leading, ...untilDoubleDash(rest)].some(isHelpToken)) return help(commandHelp(spec));

  return invoke(spec, parseFlags(spec, [...leading, ...rest], env));
}

function help(text: string): Invocation {
  return {
    command: { kind: 'help', text },
    run: async (ctx) => {
      ctx.stdout(text);
      return 0;
    },
  };
}

/** The command (or group) a mistyped command line most likely meant. */
function closestCommand(words: readonly string[]): string | undefined {
  const paths = COMMANDS.map((c) => c.path);
  const whole = closest(words.join(' '), paths);
  if (whole !== undefined || words.length > 1) return whole;
  return closest(words[0]!, [...Object.keys(GROUPS), ...paths.filter((p) => !p.includes(' '))]);
}
