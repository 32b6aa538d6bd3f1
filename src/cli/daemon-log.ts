/**
 * The log of `vxnet manager` and `vxnet agent`: the --log-level flag and the logger both runners build from
 * it (src/core/log.ts). Builders stay pure: they note the level and whether JOURNAL_STREAM is set; the
 * runner, which knows whether stderr is a terminal, picks the output form.
 */
import { isLogLevel, journaldWanted, LOG_LEVELS, createLogger, type LogLevel, type LogLine } from '../core/log.ts';
import { one, UsageError, type FlagSpec, type Parsed } from './command.ts';
import type { CommandContext } from './command.ts';

export const LOG_LEVEL_FLAG: FlagSpec = {
  name: 'log-level',
  kind: 'string',
  value: 'LEVEL',
  help: `the least important lines logged: ${LOG_LEVELS.join(', ')} (default: info)`,
};

export interface DaemonLog {
  /** --log-level; info when absent */
  level?: LogLevel;
  /** JOURNAL_STREAM is set: systemd connected stderr to the journal */
  journalStream?: true;
}

/** `{ log }` when --log-level or JOURNAL_STREAM says anything, else nothing (the defaults). */
export function daemonLogOf(p: Parsed): { log?: DaemonLog } {
  const level = one(p, 'log-level');
  if (level !== undefined && !isLogLevel(level)) throw new UsageError(`--log-level takes ${LOG_LEVELS.join(', ')}, not "${level}".`);
  const log: DaemonLog = {};
  if (level !== undefined) log.level = level;
  if (journaldWanted(p.env, false)) log.journalStream = true;
  return Object.keys(log).length === 0 ? {} : { log };
}

/** Leveled lines on stderr; stdout stays free for output. */
export function daemonLogger(log: DaemonLog | undefined, ctx: CommandContext): LogLine {
  return createLogger({
    write: ctx.stderr,
    level: log?.level ?? 'info',
    journald: log?.journalStream === true && ctx.stderrIsTTY !== true,
    now: ctx.now,
  });
}
