import chalk, {Chalk, type ChalkInstance} from 'chalk'
import Table from 'cli-table3'

import type {RaptorEvent} from '../bus/envelope.js'

/** True when stdout is a terminal: colour, tables and progress are for people only. */
export function isTty(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY)
}

/** A chalk that colours only on a TTY and never when NO_COLOR is set. */
export function palette(stream: NodeJS.WriteStream = process.stdout): ChalkInstance {
  const off = !isTty(stream) || (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '')
  return off ? new Chalk({level: 0}) : chalk
}

/** Terminal width, or a wide default when not on a terminal. */
export function width(stream: NodeJS.WriteStream = process.stdout): number {
  return stream.columns && stream.columns > 20 ? stream.columns : 160
}

/** Cuts text to a width, marking the cut with an ellipsis. */
export function cut(text: string, max: number): string {
  if (max <= 1) return ''
  return text.length > max ? text.slice(0, max - 1) + '…' : text
}

/** Characters a terminal may act on: C0 and C1 controls, DEL, line/paragraph separators, bidi overrides. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const NAMED: Record<string, string> = {'\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e'}

/**
 * Text from an event or a dead letter made safe for a terminal line: control characters are shown
 * escaped (`\e`, `\r`, `\n`, `\x07`, `\u202e`) so that no field can move the cursor, colour the
 * screen or forge a line of output. JSON output needs none of this (JSON escapes them itself).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (ch) => {
    const code = ch.charCodeAt(0)
    return (
      NAMED[ch] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`)
    )
  })
}

const PRIORITY_COLOURS = {
  low: 'gray',
  normal: 'white',
  high: 'yellow',
  critical: 'red',
} as const

/** One readable line for an event: time, priority, channel, type, source, payload cut to the width. */
export function eventLine(event: RaptorEvent, c: ChalkInstance = palette(), columns = width()): string {
  // The time of day as the producer wrote it (any RFC 3339 precision), to the millisecond.
  const time = printable(/[Tt](\d{2}:\d{2}:\d{2}(\.\d{1,3})?)/.exec(event.time)?.[1] ?? String(event.time))
  const level = event.priority ?? 'normal'
  const priority = printable(String(level)).padEnd(8)
  const colour = c[PRIORITY_COLOURS[level] ?? 'white']
  const [channel, type, source] = [event.channel, event.type, event.source].map((v) => printable(String(v)))
  const head = `${time} ${priority} ${channel} ${type} ${source} `
  const payload = printable(JSON.stringify(event.data) ?? 'null')
  const body = cut(payload, Math.max(10, columns - head.length))
  return (
    `${c.dim(time)} ${colour(priority)} ${c.cyan(channel)} ` + `${c.bold(type)} ${c.magenta(source)} ${body}`
  )
}

/** A table for a TTY, or plain aligned columns otherwise. */
export function table(head: string[], rows: (string | number)[][], c: ChalkInstance = palette()): string {
  if (!isTty()) {
    const all = [head, ...rows.map((r) => r.map(String))]
    const widths = head.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)))
    return all
      .map((r) =>
        r
          .map((cell, i) => String(cell).padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n')
  }
  const t = new Table({head: head.map((h) => c.bold(h)), style: {head: [], border: []}})
  t.push(...rows.map((r) => r.map(String)))
  return t.toString()
}
