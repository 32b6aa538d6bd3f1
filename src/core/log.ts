/**
 * The daemons' log: one line per event, with a level, written through an injected writer.
 *
 * Libraries (agent, manager, data plane, Docker integration) keep taking a plain `log: (line) => void`, so a
 * test passes its own array push and sees the words as written. A line states its level with a prefix —
 * `debug: `, `warning: ` or `error: ` (none means info) — and the logger made here turns that prefix into
 * the level of the output line, dropping lines below the chosen level.
 *
 * Two output forms: under systemd (stderr is not a TTY and JOURNAL_STREAM is set) each line starts with its
 * syslog priority, `<6>` for info, which journald reads as the level and strips, adding its own timestamp;
 * anywhere else, `2026-12-05T01:02:03.456Z info message`.
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A library's log callback. */
export type LogLine = (line: string) => void;

/** The prefix a library line carries for each level other than info. */
const PREFIXES: readonly [string, LogLevel][] = [
  ['debug: ', 'debug'],
  ['warning: ', 'warn'],
  ['error: ', 'error'],
];

const RANK: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

/** syslog(3) priorities (RFC 5424 severities) that journald reads from a `<N>` prefix (sd-daemon(3)). */
const SYSLOG_PRIORITY: Readonly<Record<LogLevel, number>> = { debug: 7, info: 6, warn: 4, error: 3 };

/** Library-side helpers: the line with the prefix of its level. */
export const debugLine = (text: string): string => `debug: ${text}`;
export const warnLine = (text: string): string => `warning: ${text}`;
export const errorLine = (text: string): string => `error: ${text}`;

/** The level a library line states, and its text without the prefix. */
export function levelOf(line: string): { level: LogLevel; text: string } {
  for (const [prefix, level] of PREFIXES) {
    if (line.startsWith(prefix)) return { level, text: line.slice(prefix.length) };
  }
  return { level: 'info', text: line };
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** Whether to write journald's `<N>` priority prefixes instead of timestamps. */
export function journaldWanted(env: Readonly<Record<string, string | undefined>>, isTTY: boolean): boolean {
  return !isTTY && (env['JOURNAL_STREAM'] ?? '') !== '';
}

export interface LoggerOptions {
  /** receives each finished line, newline included */
  write(text: string): void;
  /** the lowest level written (default info) */
  level?: LogLevel;
  journald?: boolean;
  now?: () => Date;
}

/** A library log callback that writes leveled lines; a line of several lines is written as one per line. */
export function createLogger(options: LoggerOptions): LogLine {
  const min = RANK[options.level ?? 'info'];
  const now = options.now ?? (() => new Date());
  return (line) => {
    const { level, text } = levelOf(line);
    if (RANK[level] < min) return;
    // A stack trace stays one event: its lines are joined, so journald and grep see it whole.
    const oneLine = text.replace(/\s*\n\s*/g, ' | ');
    options.write(options.journald ? `<${SYSLOG_PRIORITY[level]}>${oneLine}\n` : `${now().toISOString()} ${level} ${oneLine}\n`);
  };
}
