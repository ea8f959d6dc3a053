import type {ChalkInstance} from 'chalk'

import type {HandlerLogger} from '../bus/handler.js'
import {printable} from '../cli/output.js'
import {stderrWriter, stdoutWriter, type OutputWriter} from '../cli/writer.js'

/** Log levels of the agent. */
export type Level = 'info' | 'warn' | 'error'

/** A log sink: NDJSON lines on stdout (`--json`), or readable lines on stderr. */
export interface AgentLog {
  write(level: Level, message: string, fields?: Record<string, unknown>): void
  /** A logger for one handler's `ctx.log`. */
  forHandler(handler: string): HandlerLogger
}

/**
 * Creates the agent's log. Lines go through an output writer: a reader that falls behind makes the
 * agent drop log lines (and say how many once it catches up), never hold them in memory or slow the
 * handlers. In readable lines every field is made safe for a terminal (no control characters).
 */
export function createLog(
  json: boolean,
  colour: ChalkInstance,
  sink: OutputWriter = json ? stdoutWriter() : stderrWriter(),
): AgentLog {
  const levelColour = {info: colour.green, warn: colour.yellow, error: colour.red}
  let dropped = 0
  const format = (level: Level, message: string, fields: Record<string, unknown>): string => {
    const time = new Date().toISOString()
    if (json) return JSON.stringify({time, level, msg: message, ...fields}) + '\n'
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(
        ([k, v]) =>
          `${colour.dim(printable(k) + '=')}${printable(typeof v === 'string' ? v : JSON.stringify(v))}`,
      )
      .join(' ')
    return `${colour.dim(time.slice(11, 23))} ${levelColour[level](level.padEnd(5))} ${printable(message)}${extra ? ' ' + extra : ''}\n`
  }
  const write = (level: Level, message: string, fields: Record<string, unknown> = {}) => {
    if (dropped > 0 && sink.offer(format('warn', `dropped ${dropped} log lines: reader too slow`, {dropped})))
      dropped = 0
    if (dropped > 0 || !sink.offer(format(level, message, fields))) dropped++
  }
  return {
    write,
    forHandler: (handler) => ({
      info: (m, f) => write('info', m, {handler, ...f}),
      warn: (m, f) => write('warn', m, {handler, ...f}),
      error: (m, f) => write('error', m, {handler, ...f}),
    }),
  }
}
