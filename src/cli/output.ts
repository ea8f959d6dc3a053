import chalk, {Chalk, type ChalkInstance} from 'chalk'

import {renderTable, type Column} from './table.js'

/** True when stdout is a terminal: colour, tables and progress are for people only. */
export function isTty(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY)
}

/** A chalk that colours only on a TTY and never when NO_COLOR is set. */
export function palette(stream: NodeJS.WriteStream = process.stdout): ChalkInstance {
  const off = !isTty(stream) || (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '')
  return off ? new Chalk({level: 0}) : chalk
}

/** Terminal width (80 when a terminal does not say), or a wide default when not on a terminal. */
export function width(stream: NodeJS.WriteStream = process.stdout): number {
  if (!stream.isTTY) return 160
  return stream.columns && stream.columns > 0 ? stream.columns : 80
}

/** How long ago, in the largest whole unit: `45s`, `12min`, `3h`, `2d` (never `m`: minute or month?). */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.floor(s / 60)}min`
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86400)}d`
}

/** `1 event`, `2 events`; `1 entry`, `2 entries` with the plural given. */
export function plural(
  n: number,
  one: string,
  many = one.endsWith('y') ? one.slice(0, -1) + 'ies' : one + 's',
): string {
  return `${n} ${n === 1 ? one : many}`
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

/**
 * A compact table (see `renderTable`): on a terminal it fits the width, off one nothing is cut.
 * Columns are header strings or full column specs.
 */
export function table(
  head: (string | Column)[],
  rows: (string | number | null | undefined)[][],
  c: ChalkInstance = palette(),
  stream: NodeJS.WriteStream = process.stdout,
): string {
  const columns = head.map((h) => (typeof h === 'string' ? {header: h} : h))
  return renderTable(columns, rows, {width: isTty(stream) ? width(stream) : undefined, bold: c.bold})
}
