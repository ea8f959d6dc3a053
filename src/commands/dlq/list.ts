import {Flags} from '@oclif/core'

import type {DlqEntry} from '../../bus/dlq.js'
import {BaseCommand} from '../../cli/base-command.js'
import {displayIds, dlqFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import {formatAge, isTty, palette, plural, printable, width} from '../../cli/output.js'
import {displayTime} from '../../cli/records.js'
import type {DlqListResult} from '../../cli/results.js'
import {renderTable, type Column} from '../../cli/table.js'

export type {DlqListResult} from '../../cli/results.js'

/** Entries shown when --limit is not given. */
const DEFAULT_LIMIT = 100

export default class DlqList extends BaseCommand<typeof DlqList> {
  static override summary = 'List dead-lettered events.'
  static override description = `Lists the entries of the dead-letter queues (one stream per channel and reason), oldest first. Each entry has an id <channel>/<reason>/<stream id>, unique across all DLQs, which dlq show, dlq requeue --id and dlq purge --id accept; routing errors are under the pseudo-channel sys.dlq.routing_error and match --channel by the channel they were addressed to.

On a terminal the table fits its width and shows each id by its stream id alone (1795936715199-0), which the same commands accept too (a short id that two entries share is refused by requeue and purge, naming both); columns of less importance are left out on a narrow terminal, long values cut with …; dlq show ID prints one entry whole. -o wide shows every column with full ids and cuts nothing, as does any output that is not a terminal. Shows at most ${DEFAULT_LIMIT} entries unless --limit says otherwise.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --reason max_retries_exceeded --channel "sys.guild.*" --handler research_monitor',
    '<%= config.bin %> <%= command.id %> -o wide',
    '<%= config.bin %> <%= command.id %> --reason routing_error --json',
  ]

  static override flags = {
    ...dlqFilterFlags,
    output: Flags.option({
      char: 'o',
      options: ['wide', 'json', 'yaml'] as const,
      summary: 'Output: wide (every column, full ids, nothing cut), json (as --json), yaml.',
    })(),
  }

  /**
   * Streams: entries are read page by page in failure order; JSON is written as it comes (with
   * back-pressure), so `--json --limit 100000` holds one page per DLQ stream, not the whole list.
   * A table or YAML holds at most --limit entries. An entry that cannot be shown as JSON (e.g.
   * nested too deep to serialize) is skipped and counted.
   */
  async run(): Promise<DlqListResult | undefined> {
    const {flags, out} = this
    const filter = dlqFilter(flags)
    const bus = await this.bus()
    const limit = flags.limit ?? DEFAULT_LIMIT
    const json = this.jsonEnabled() || flags.output === 'json'
    let shown = 0
    let skipped = 0
    let more = false
    const kept: DlqEntry[] = []
    if (json) void out.write('{"entries":[')
    for await (const e of bus.dlq.entries({...filter, limit: limit + 1})) {
      if (shown >= limit) {
        more = true
        break
      }
      if (json) {
        let text: string
        try {
          text = JSON.stringify(e)
        } catch {
          skipped++
          continue
        }
        await out.write((shown === 0 ? '\n' : ',\n') + text)
        if (out.closed) break
      } else kept.push(e)
      shown++
    }
    if (json) void out.write(shown === 0 ? ']}\n' : '\n]}\n')
    if (more && flags.limit === undefined)
      this.note(`dlq list: showing the oldest ${limit} entries; use --limit to see more`)
    if (skipped > 0) this.note(`dlq list: skipped ${plural(skipped, 'entry')} that cannot be shown as JSON`)
    if (json) return undefined
    if (kept.length === 0) this.note('dlq list: no dead letters match')
    else if (flags.output === 'yaml') this.log((await import('yaml')).stringify({entries: kept}).trimEnd())
    else this.log(dlqTable(kept, flags.output === 'wide'))
    return undefined
  }
}

/**
 * The entries as a table, every field made safe for a terminal. On a terminal (unless wide) it fits
 * the width: short ids, the error cut first, then the type and attempts, the handler and the
 * reason left out as the terminal narrows. Otherwise every column, full ids, nothing cut.
 */
export function dlqTable(entries: readonly DlqEntry[], wide: boolean): string {
  const c = palette()
  const fit = isTty() && !wide
  const now = Date.now()
  const shortIds = fit ? displayIds(entries) : undefined
  const columns: Column[] = [
    // The id is what dlq show/requeue/purge take: never cut, and the last column to go.
    {header: 'ID', shrink: false, priority: 10},
    fit ? {header: 'AGE', priority: 8} : {header: 'FAILED AT'},
    {header: 'REASON', priority: 5, minWidth: 13},
    {header: 'CHANNEL', priority: 7, minWidth: 14},
    {header: 'HANDLER', priority: 4, minWidth: 10},
    {header: 'TYPE', priority: 2, optional: true},
    ...(fit ? [] : [{header: 'EVENT ID'}]),
    {header: 'ATTEMPTS', priority: 3, optional: true},
    ...(fit ? [] : [{header: 'REQUEUES'}]),
    {header: 'ERROR', priority: 9, minWidth: 24, flex: true},
  ]
  const rows = entries.map((e) => {
    const ev = e.event as {id?: unknown; type?: unknown} | null
    const type = typeof ev?.type === 'string' ? ev.type : '?'
    const eventId = typeof ev?.id === 'string' ? ev.id : '?'
    // One line per entry: the error's own line breaks (a stack) show escaped, as \n, by printable.
    const error = e.error
    const cells = fit
      ? [
          shortIds!.get(e.id)!,
          formatAge(now - Date.parse(e.failedAt)),
          e.reason,
          e.originalChannel,
          e.handler ?? '-',
          type,
          e.attempts,
          error,
        ]
      : [
          e.id,
          displayTime(e.failedAt, !isTty()),
          e.reason,
          e.originalChannel,
          e.handler ?? '-',
          type,
          eventId,
          e.attempts,
          e.requeues,
          error,
        ]
    return cells.map((cell) => (typeof cell === 'string' ? printable(cell) : cell))
  })
  return renderTable(columns, rows, {width: fit ? width() : undefined, bold: c.bold})
}
