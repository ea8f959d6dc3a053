import type {ChalkInstance} from 'chalk'

import type {HandlerLogger} from '../bus/handler.js'
import {printable} from '../cli/output.js'
import {stderrWriter, stdoutWriter, type OutputWriter} from '../cli/writer.js'

/** Log levels of the agent, least severe first. */
export const LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type Level = (typeof LEVELS)[number]

/** A log sink: NDJSON lines on stdout (`--json`), or readable lines on stderr. */
export interface AgentLog {
  write(level: Level, message: string, fields?: Record<string, unknown>): void
  /** A logger for one handler's `ctx.log`. */
  forHandler(handler: string): HandlerLogger
}

/**
 * One logfmt value: bare when it is a plain token, else double-quoted with `"`, `\` and control
 * characters escaped (JSON string rules, which logfmt parsers accept). A list of names is joined
 * by commas (`channels=a.b,c.d`). Whatever a terminal could act on (C1 controls, bidi overrides)
 * is shown escaped, as everywhere in readable output.
 */
export function logfmtValue(value: unknown): string {
  const list = Array.isArray(value) && value.every((v) => typeof v === 'string')
  const text =
    typeof value === 'string' ? value : list ? (value as string[]).join(',') : JSON.stringify(value)
  if (/^[^\s"=\\\p{Cc}]+$/u.test(text) && printable(text) === text) return text
  return printable(JSON.stringify(text))
}

/**
 * Creates the agent's log; lines below `minLevel` are not written. Lines go through an output
 * writer: a reader that falls behind makes the agent drop log lines (and say how many once it
 * catches up), never hold them in memory or slow the handlers. Readable lines are logfmt after the
 * time, level and message, every field made safe for a terminal (no control characters).
 */
export function createLog(
  json: boolean,
  colour: ChalkInstance,
  minLevel: Level = 'info',
  sink: OutputWriter = json ? stdoutWriter() : stderrWriter(),
): AgentLog {
  const levelColour = {debug: colour.gray, info: colour.green, warn: colour.yellow, error: colour.red}
  const floor = LEVELS.indexOf(minLevel)
  let dropped = 0
  const format = (level: Level, message: string, fields: Record<string, unknown>): string => {
    const time = new Date().toISOString()
    if (json) return JSON.stringify({time, level, msg: message, ...fields}) + '\n'
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${colour.dim(printable(k) + '=')}${logfmtValue(v)}`)
      .join(' ')
    return `${colour.dim(time.slice(11, 23))} ${levelColour[level](level.padEnd(5))} ${printable(message)}${extra ? ' ' + extra : ''}\n`
  }
  const write = (level: Level, message: string, fields: Record<string, unknown> = {}) => {
    if (LEVELS.indexOf(level) < floor) return
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
