/**
 * The command line's words and flags, apart from the list of commands: splitting argv into the command words
 * and the rest, and checking a line's flags against one command module. parse.ts (every command, help,
 * "did you mean" for commands) and command-index.ts (one command, loaded alone) share these, so a line
 * means the same and fails with the same sentence on either path. Pure, no I/O.
 *
 * node:util parseArgs splits the line (`strict: false`, so that vxnet words its own errors); its tokens
 * keep the order of the flags, which pairs each --gateway with the --subnet before it. Each token's `index`
 * points back at the argument as typed, which is what an error message shows (never the value, which
 * could be a token).
 */
import { parseArgs } from 'node:util';
import { parseCidr, parseIPv4, whyNotCidr } from '../core/ipv4.ts';
import {
  GLOBAL_FLAGS,
  globalFlagsOf,
  UsageError,
  type CommandContext,
  type CommandModule,
  type Env,
  type FlagSpec,
  type FlagValue,
  type Parsed,
} from './command.ts';
import type { Command } from './registry.ts';
import { closest } from './suggest.ts';

/** A command line understood: what it asks for, and how to carry it out. */
export interface Invocation {
  command: Command;
  run(ctx: CommandContext): Promise<number>;
}

export function invoke<C extends { kind: string }>(spec: CommandModule<C>, parsed: Parsed): Invocation {
  const command = spec.build(parsed);
  // C is one member of Command: the registry derives Command from these very modules.
  return { command: command as unknown as Command, run: (ctx) => spec.run(command, ctx) };
}

/** parseArgs' view of a list of flags: only the arity matters, the values are checked here. */
function parseArgsOptions(flags: readonly FlagSpec[]): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(flags.map((f) => [f.name, { type: f.kind === 'boolean' ? ('boolean' as const) : ('string' as const) }]));
}

function tokenize(args: readonly string[], flags: readonly FlagSpec[]) {
  return parseArgs({ args: [...args], options: parseArgsOptions(flags), strict: false, allowPositionals: true, tokens: true }).tokens;
}

/** Words of the command ("network", "create"), the global flags before them, and everything after. */
export function splitCommandWords(argv: readonly string[], isGroup: (word: string) => boolean): { words: string[]; leading: string[]; rest: string[] } {
  const words: string[] = [];
  let firstWord: number | undefined;
  let end = argv.length;
  // Only global flags may precede the command; they are the only ones whose arity is known here.
  for (const token of tokenize(argv, GLOBAL_FLAGS)) {
    if (token.kind === 'option-terminator' || (token.kind === 'option' && words.length > 0)) {
      end = token.index;
      break;
    }
    if (token.kind === 'option') {
      const typed = argv[token.index]!;
      if (!GLOBAL_FLAGS.some((f) => f.name === flagName(typed)) && !isHelpToken(typed) && typed !== '--version') {
        throw new UsageError(`${displayFlag(typed)} must come after the command; run "vxnet --help" for the list of commands.`);
      }
      continue;
    }
    firstWord ??= token.index;
    words.push(token.value);
    // A group takes one more word; anything else is complete.
    if (!(words.length === 1 && isGroup(token.value))) {
      end = token.index + 1;
      break;
    }
  }
  return { words, leading: argv.slice(0, firstWord ?? end), rest: argv.slice(end) };
}

export function parseFlags(spec: CommandModule, args: readonly string[], env: Env): Parsed {
  const accepted = [...spec.flags, ...globalFlagsOf(spec)];
  const flags: FlagValue[] = [];
  const positionals: string[] = [];
  for (const token of tokenize(args, accepted)) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    const typed = args[token.index]!;
    // Short flags are not vxnet's: parseArgs splits "-abc" into three, the message shows it as typed.
    const flag = typed.startsWith('--') ? accepted.find((f) => f.name === token.name) : undefined;
    if (!flag) {
      const near = typed.startsWith('--') ? closest(flagName(typed), accepted.map((f) => f.name)) : undefined;
      throw new UsageError(
        `unknown flag ${displayFlag(typed)} for "vxnet ${spec.path}"${didYouMean(near, (n) => `--${n}`)}; run "vxnet ${spec.path} --help" for its flags.`,
      );
    }
    let value: string | true;
    if (flag.kind === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`--${flag.name} takes no value.`);
      value = true;
    } else if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      // parseArgs takes whatever follows as the value; "--vni --mtu 1400" means the value was forgotten.
      throw new UsageError(`--${flag.name} needs a value${flag.value ? ` (${flag.value})` : ''}.`);
    } else {
      value = token.value;
    }
    if (!flag.repeatable && flags.some((f) => f.name === flag.name)) {
      throw new UsageError(`--${flag.name} is given more than once.`);
    }
    if (value !== true) checkValue(flag, value);
    flags.push({ name: flag.name, value });
  }

  if (positionals.length < spec.args.length) {
    const missing = spec.args[positionals.length]!;
    throw new UsageError(`"vxnet ${spec.path}" needs ${missing}; usage: vxnet ${spec.path} ${spec.synopsis}`.trimEnd());
  }
  if (positionals.length > spec.args.length) {
    throw new UsageError(`unexpected argument "${positionals[spec.args.length]}" for "vxnet ${spec.path}".`);
  }
  return { path: spec.path, positionals, flags, env };
}

function checkValue(flag: FlagSpec, value: string): void {
  switch (flag.kind) {
    case 'integer':
      if (!/^(0|[1-9][0-9]*)$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw new UsageError(`--${flag.name} must be a whole number, not "${value}".`);
      }
      return;
    case 'ipv4':
      if (parseIPv4(value) === undefined) throw new UsageError(`--${flag.name} "${value}" is not a valid IPv4 address.`);
      return;
    case 'cidr':
      if (parseCidr(value) === undefined) throw new UsageError(`--${flag.name} "${value}" is not a valid IPv4 subnet: ${whyNotCidr(value)}.`);
      return;
    case 'string':
      if (value === '') throw new UsageError(`--${flag.name} needs a non-empty value.`);
      return;
    case 'boolean':
      return;
  }
}

export function didYouMean(candidate: string | undefined, show: (c: string) => string): string {
  return candidate === undefined ? '' : ` (did you mean ${show(candidate)}?)`;
}

function flagName(typed: string): string {
  const body = typed.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return eq === -1 ? body : body.slice(0, eq);
}

/** The flag as typed, without any value (which could be a token). */
function displayFlag(typed: string): string {
  const eq = typed.indexOf('=');
  return eq === -1 ? typed : typed.slice(0, eq);
}

export function isHelpToken(token: string): boolean {
  return token === '--help' || token === '-h';
}

export function untilDoubleDash(tokens: readonly string[]): readonly string[] {
  const end = tokens.indexOf('--');
  return end === -1 ? tokens : tokens.slice(0, end);
}
