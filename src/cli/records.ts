import {Flags} from '@oclif/core'
import type {ChalkInstance} from 'chalk'

import {InvalidInputError} from '../bus/errors.js'
import type {RaptorEvent} from '../bus/envelope.js'
import {printable} from './output.js'
import {cutText} from './table.js'

/** How `tail`/`replay` print events: readable lines (default, or `wide`), NDJSON, YAML, or a template. */
export type RecordOutput = 'line' | 'wide' | 'json' | 'yaml' | 'template'

/** The output flags shared by the commands that print events. */
export const recordFlags = {
  output: Flags.option({
    char: 'o',
    options: ['wide', 'json', 'yaml'] as const,
    summary: 'Output: wide (every attribute, nothing cut), json (NDJSON, as --json), yaml.',
    exclusive: ['format'],
  })(),
  format: Flags.string({
    summary: 'Print each event with a template, e.g. "{{.time}} {{.id}} {{.data.user_id}}".',
    description:
      'Fields are the envelope attributes (.id .time .channel .type .source .priority .correlationid) and .data.<path> into the payload; {{.}} is the whole event as JSON; \\n and \\t are a newline and a tab. Missing fields print as nothing.',
    helpValue: 'TEMPLATE',
  }),
  utc: Flags.boolean({summary: 'Print times in UTC (the default off a terminal); local time (TZ) on one.'}),
}

export interface RecordOptions {
  /** Colours (a no-colour chalk off a terminal). */
  c: ChalkInstance
  /** Stdout is a terminal: local time, and the payload cut to `columns`. */
  tty: boolean
  columns: number
  utc: boolean
  wide: boolean
}

const PRIORITY_COLOURS = {low: 'gray', normal: 'white', high: 'yellow', critical: 'red'} as const

const pad = (n: number, size = 2) => String(n).padStart(size, '0')

/**
 * An event's time for people: in the local zone (TZ honoured) with its offset, e.g.
 * `2026-11-29 08:00:00.000 +01:00`, or in UTC as RFC 3339 (`2026-11-29T07:00:00.000Z`) with `utc`.
 * A time that cannot be parsed is printed as it was given.
 */
export function displayTime(time: string, utc: boolean): string {
  const at = new Date(time)
  if (Number.isNaN(at.getTime())) return time
  if (utc) return at.toISOString()
  const offset = -at.getTimezoneOffset()
  const zone = `${offset >= 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`
  return (
    `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
    `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)} ${zone}`
  )
}

/** Envelope attributes shown by `wide` beyond the ones every line has. */
const CORE = new Set([
  'specversion',
  'id',
  'time',
  'channel',
  'priority',
  'type',
  'source',
  'data',
  'datacontenttype',
])

/**
 * One event for people. Off a terminal: one line with everything (time in UTC, id, priority,
 * channel, type, source, correlation id, the whole payload), so `replay ch > file` loses nothing
 * and grep finds an event by any of them. On a terminal: two lines that fit 80 columns, the
 * attributes, then the id and the payload cut to the width. `wide` adds every other attribute
 * (trace context, subject, extensions) and cuts nothing, one line per event.
 */
export function recordLine(event: RaptorEvent, o: RecordOptions): string {
  const {c} = o
  // Every field is made safe for a terminal: no control character in an event moves the cursor.
  const time = printable(displayTime(event.time, o.utc || !o.tty))
  const priority = printable(String(event.priority ?? 'normal'))
  const extra = Object.entries(event as Record<string, unknown>)
    .filter(([k, v]) => v !== undefined && (o.wide ? !CORE.has(k) : k === 'correlationid'))
    .map(([k, v]) => printable(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`))
  const payload = printable(JSON.stringify(event.data) ?? 'null')
  const colour = c[PRIORITY_COLOURS[priority as keyof typeof PRIORITY_COLOURS] ?? 'white']
  const attributes = [
    c.dim(time),
    colour(priority.padEnd(8)),
    c.cyan(printable(String(event.channel))),
    c.bold(printable(String(event.type))),
    c.magenta(printable(String(event.source))),
    ...extra.map((e) => c.dim(e)),
  ]
  const id = printable(String(event.id))
  if (o.tty && !o.wide) {
    const body = cutText(payload, Math.max(16, o.columns - id.length - 3))
    return `${attributes.join(' ')}\n  ${c.yellow(id)} ${body}`
  }
  return [attributes[0], c.yellow(id), ...attributes.slice(1), payload].join(' ')
}

/**
 * Compiles a `--format` template: `{{.path.to.field}}` is replaced by that field of the event
 * (objects as JSON; each value passed through `escape`), `{{.}}` by the whole event, `\n` and `\t`
 * by a newline and a tab.
 * @throws InvalidInputError for an unclosed `{{` or a placeholder that is not `.field`
 */
export function compileTemplate(
  template: string,
  escape: (value: string) => string = (value) => value,
): (event: RaptorEvent) => string {
  const parts: (string | string[])[] = []
  const text = template.replace(/\\n/g, '\n').replace(/\\t/g, '\t')
  let rest = text
  while (rest.length > 0) {
    const open = rest.indexOf('{{')
    if (open < 0) {
      parts.push(rest)
      break
    }
    parts.push(rest.slice(0, open))
    const close = rest.indexOf('}}', open)
    if (close < 0) throw new InvalidInputError(`invalid --format: '{{' at ${open} is not closed with '}}'`)
    const expression = rest.slice(open + 2, close).trim()
    if (!/^\.([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)?$/.test(expression)) {
      throw new InvalidInputError(
        `invalid --format placeholder '{{${expression}}}': use {{.field}} or {{.data.path}}, e.g. {{.time}} {{.id}} {{.data.user_id}}`,
      )
    }
    parts.push(expression === '.' ? [] : expression.slice(1).split('.'))
    rest = rest.slice(close + 2)
  }
  // The caller ends each record with a newline; a template's own final newline is not doubled.
  if (typeof parts.at(-1) === 'string') parts[parts.length - 1] = (parts.at(-1) as string).replace(/\n$/, '')
  return (event) =>
    parts
      .map((part) => {
        if (typeof part === 'string') return part
        let value: unknown = event
        for (const key of part) {
          value =
            typeof value === 'object' && value !== null && Object.hasOwn(value, key)
              ? (value as Record<string, unknown>)[key]
              : undefined
        }
        if (value === undefined || value === null) return ''
        return escape(typeof value === 'object' ? JSON.stringify(value) : String(value))
      })
      .join('')
}

/** The printer of events for the output flags: each call returns one record's text, without its final newline. */
export async function recordPrinter(
  flags: {output?: 'wide' | 'json' | 'yaml'; format?: string; utc?: boolean},
  json: boolean,
  options: Omit<RecordOptions, 'utc' | 'wide'>,
): Promise<{mode: RecordOutput; print: (event: RaptorEvent) => string}> {
  if (json || flags.output === 'json') return {mode: 'json', print: (e) => JSON.stringify(e)}
  if (flags.format !== undefined) {
    // Values go out as they are for scripts; on a terminal their control characters are shown escaped
    // (the template's own \n and \t stay what they are).
    return {mode: 'template', print: compileTemplate(flags.format, options.tty ? printable : undefined)}
  }
  if (flags.output === 'yaml') {
    const {stringify} = await import('yaml')
    return {mode: 'yaml', print: (e) => '---\n' + stringify(e).trimEnd()}
  }
  const wide = flags.output === 'wide'
  const o = {...options, utc: Boolean(flags.utc), wide}
  return {mode: wide ? 'wide' : 'line', print: (e) => recordLine(e, o)}
}
