import {Flags} from '@oclif/core'

import type {DlqEntry} from '../../bus/dlq.js'
import {BaseCommand} from '../../cli/base-command.js'
import {dlqFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import {formatAge, isTty, palette, width} from '../../cli/output.js'
import {displayTime} from '../../cli/records.js'
import {renderTable, type Column} from '../../cli/table.js'
import type {DlqListResult} from '../../cli/results.js'

export type {DlqListResult} from '../../cli/results.js'

/** Entries shown when --limit is not given. */
const DEFAULT_LIMIT = 100

export default class DlqList extends BaseCommand<typeof DlqList> {
  static override summary = 'List dead-lettered events.'
  static override description = `Lists the entries of the dead-letter queues (one stream per channel and reason), oldest first. Each entry has an id <channel>/<reason>/<stream id>, unique across all DLQs, which dlq show, dlq requeue --id and dlq purge --id accept; routing errors are under the pseudo-channel sys.dlq.routing_error and match --channel by the channel they were addressed to.

On a terminal the table fits its width (the error is cut first; dlq show ID prints one entry whole); -o wide shows every column and cuts nothing. Shows at most ${DEFAULT_LIMIT} entries unless --limit says otherwise.`

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
      summary: 'Output: wide (every column, nothing cut), json (as --json), yaml.',
    })(),
  }

  async run(): Promise<DlqListResult> {
    const {flags} = this
    const filter = dlqFilter(flags)
    const bus = await this.bus()
    const limit = flags.limit ?? DEFAULT_LIMIT
    const found = await bus.dlq.list({...filter, limit: limit + 1})
    const entries = found.slice(0, limit)
    if (found.length > limit && flags.limit === undefined)
      this.note(`dlq list: showing the oldest ${limit} entries; use --limit to see more`)
    if (this.jsonEnabled()) return {entries}
    if (flags.output === 'json') this.log(JSON.stringify({entries}, null, 2))
    else if (flags.output === 'yaml') this.log((await import('yaml')).stringify({entries}).trimEnd())
    else if (entries.length === 0) this.note('dlq list: no dead letters match')
    else this.log(dlqTable(entries, flags.output === 'wide'))
    return {entries}
  }
}

/** The entries as a table: on a terminal fitted to its width, unless wide. */
export function dlqTable(entries: readonly DlqEntry[], wide: boolean): string {
  const c = palette()
  const tty = isTty()
  const now = Date.now()
  const columns: Column[] = wide
    ? [
        {header: 'ID'},
        {header: 'FAILED AT'},
        {header: 'REASON'},
        {header: 'CHANNEL'},
        {header: 'HANDLER'},
        {header: 'TYPE'},
        {header: 'EVENT ID'},
        {header: 'ATTEMPTS'},
        {header: 'REQUEUES'},
        {header: 'ERROR'},
      ]
    : [
        // The id is what dlq show/requeue/purge take: never cut, and the last column to go.
        {header: 'ID', shrink: false, priority: 10},
        {header: 'AGE', priority: 6},
        {header: 'HANDLER', priority: 5},
        {header: 'TYPE', priority: 3},
        {header: 'ATTEMPTS', priority: 4},
        {header: 'ERROR', priority: 7},
      ]
  const rows = entries.map((e) => {
    const ev = e.event as {id?: unknown; type?: unknown} | null
    const type = typeof ev?.type === 'string' ? ev.type : '?'
    const error = e.error.replace(/\s+/g, ' ')
    return wide
      ? [
          e.id,
          displayTime(e.failedAt, !tty),
          e.reason,
          e.originalChannel,
          e.handler ?? '-',
          type,
          typeof ev?.id === 'string' ? ev.id : '?',
          e.attempts,
          e.requeues,
          error,
        ]
      : [e.id, formatAge(now - Date.parse(e.failedAt)), e.handler ?? '-', type, e.attempts, error]
  })
  return renderTable(columns, rows, {width: tty && !wide ? width() : undefined, bold: c.bold})
}
