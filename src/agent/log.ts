import type {ChalkInstance} from 'chalk'

import type {HandlerLogger} from '../bus/handler.js'

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
 * by commas (`channels=a.b,c.d`).
 */
export function logfmtValue(value: unknown): string {
  const list = Array.isArray(value) && value.every((v) => typeof v === 'string')
  const text =
    typeof value === 'string' ? value : list ? (value as string[]).join(',') : JSON.stringify(value)
  return /^[^\s"=\\\p{Cc}]+$/u.test(text) ? text : JSON.stringify(text)
}

/** Creates the agent's log; lines below `minLevel` are not written. */
export function createLog(json: boolean, colour: ChalkInstance, minLevel: Level = 'info'): AgentLog {
  const levelColour = {debug: colour.gray, info: colour.green, warn: colour.yellow, error: colour.red}
  const floor = LEVELS.indexOf(minLevel)
  const write = (level: Level, message: string, fields: Record<string, unknown> = {}) => {
    if (LEVELS.indexOf(level) < floor) return
    const time = new Date().toISOString()
    if (json) {
      process.stdout.write(JSON.stringify({time, level, msg: message, ...fields}) + '\n')
      return
    }
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${colour.dim(k + '=')}${logfmtValue(v)}`)
      .join(' ')
    process.stderr.write(
      `${colour.dim(time.slice(11, 23))} ${levelColour[level](level.padEnd(5))} ${message}${extra ? ' ' + extra : ''}\n`,
    )
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
