import type {ChalkInstance} from 'chalk'

import type {HandlerLogger} from '../bus/handler.js'

/** Log levels of the agent. */
export type Level = 'info' | 'warn' | 'error'

/** A log sink: NDJSON lines on stdout (`--json`), or readable lines on stderr. */
export interface AgentLog {
  write(level: Level, message: string, fields?: Record<string, unknown>): void
  /** A logger for one handler's `ctx.log`. */
  forHandler(handler: string): HandlerLogger
}

/** Creates the agent's log. */
export function createLog(json: boolean, colour: ChalkInstance): AgentLog {
  const levelColour = {info: colour.green, warn: colour.yellow, error: colour.red}
  const write = (level: Level, message: string, fields: Record<string, unknown> = {}) => {
    const time = new Date().toISOString()
    if (json) {
      process.stdout.write(JSON.stringify({time, level, msg: message, ...fields}) + '\n')
      return
    }
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${colour.dim(k + '=')}${typeof v === 'string' ? v : JSON.stringify(v)}`)
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
