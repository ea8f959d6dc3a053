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

const PRIORITY_COLOURS = {
  low: 'gray',
  normal: 'white',
  high: 'yellow',
  critical: 'red',
} as const

/** One readable line for an event: time, priority, channel, type, source, payload cut to the width. */
export function eventLine(event: RaptorEvent, c: ChalkInstance = palette(), columns = width()): string {
  // The time of day as the producer wrote it (any RFC 3339 precision), to the millisecond.
  const time = /[Tt](\d{2}:\d{2}:\d{2}(\.\d{1,3})?)/.exec(event.time)?.[1] ?? event.time
  const level = event.priority ?? 'normal'
  const priority = level.padEnd(8)
  const head = `${time} ${priority} ${event.channel} ${event.type} ${event.source} `
  const payload = JSON.stringify(event.data)
  const body = cut(payload, Math.max(10, columns - head.length))
  return (
    `${c.dim(time)} ${c[PRIORITY_COLOURS[level]](priority)} ${c.cyan(event.channel)} ` +
    `${c.bold(event.type)} ${c.magenta(event.source)} ${body}`
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

/** Writes one NDJSON line to stdout. */
export function writeJsonLine(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n')
}
