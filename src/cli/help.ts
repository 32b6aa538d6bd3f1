/** The help texts: of all commands, of a group ("vxnet network --help"), and of one command. */
import { GLOBAL_FLAGS, GLOBAL_HELP, globalFlagsOf, UsageError, type CommandModule, type FlagSpec } from './command.ts';
import { COMMANDS, findCommand, GROUPS } from './registry.ts';

export function isGroup(word: string): boolean {
  return Object.hasOwn(GROUPS, word);
}

export function subcommands(group: string): string[] {
  return COMMANDS.filter((c) => c.path.startsWith(`${group} `)).map((c) => c.path.slice(group.length + 1));
}

export function commandHelp(spec: CommandModule): string {
  const lines = [`Usage: vxnet ${spec.path} ${spec.synopsis}`.trimEnd(), '', `${capitalise(spec.summary)}.`];
  if (spec.flags.length > 0) lines.push('', 'Flags:', ...flagLines(spec.flags));
  lines.push('', 'Global flags:', ...flagLines([...globalFlagsOf(spec), GLOBAL_HELP]));
  return `${lines.join('\n')}\n`;
}

export function groupHelp(group: string): string {
  const specs = COMMANDS.filter((c) => c.path.startsWith(`${group} `));
  const width = Math.max(...specs.map((c) => c.path.length));
  return [
    `Usage: vxnet ${group} COMMAND`,
    '',
    `${capitalise(GROUPS[group] ?? group)}.`,
    '',
    'Commands:',
    ...specs.map((c) => `  ${c.path.padEnd(width)}   ${c.summary}`),
    '',
    `Run "vxnet ${group} COMMAND --help" for the flags of a command.`,
    '',
  ].join('\n');
}

export function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.length));
  return [
    'Usage: vxnet COMMAND [flags]',
    '',
    'Multi-host container overlay networks over VXLAN.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.path.padEnd(width)}   ${c.summary}`),
    '',
    'Global flags:',
    ...flagLines(GLOBAL_FLAGS),
    '',
    'Run "vxnet COMMAND --help" for the flags of a command.',
    '',
  ].join('\n');
}

/** `vxnet help [WORDS...]`: the help of the deepest command or group named. */
export function helpFor(words: readonly string[]): string {
  if (words.length === 0) return topHelp();
  const path = words.join(' ');
  const spec = findCommand(path);
  if (spec) return commandHelp(spec);
  if (words.length === 1 && isGroup(path)) return groupHelp(path);
  throw new UsageError(`unknown command "${path}"; run "vxnet --help" for the list of commands.`);
}

function flagLines(flags: readonly FlagSpec[]): string[] {
  const left = flags.map((f) => (f.name === 'help' ? '-h, --help' : `--${f.name}${f.value ? ` ${f.value}` : ''}`));
  const width = Math.max(...left.map((l) => l.length));
  return flags.map((f, i) => `  ${left[i]!.padEnd(width)}   ${f.help}`);
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
