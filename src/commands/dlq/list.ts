import {BaseCommand} from '../../cli/base-command.js'
import {dlqFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import {cut, palette, table, width} from '../../cli/output.js'
import type {DlqListResult} from '../../cli/results.js'

export type {DlqListResult} from '../../cli/results.js'

/** Entries shown when --limit is not given. */
const DEFAULT_LIMIT = 100

export default class DlqList extends BaseCommand<typeof DlqList> {
  static override summary = 'List dead-lettered events.'
  static override description = `Lists the entries of the dead-letter queues (one stream per channel and reason), oldest first. Each entry has an id <channel>/<reason>/<stream id>, unique across all DLQs, which dlq requeue --id and dlq purge accept; routing errors are under the pseudo-channel sys.dlq.routing_error and match --channel by the channel they were addressed to.

Shows at most ${DEFAULT_LIMIT} entries unless --limit says otherwise.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --reason max_retries_exceeded --channel "sys.guild.*" --handler research_monitor',
    '<%= config.bin %> <%= command.id %> --reason routing_error --json',
  ]

  static override flags = {...dlqFilterFlags}

  async run(): Promise<DlqListResult> {
    const bus = await this.bus()
    const limit = this.flags.limit ?? DEFAULT_LIMIT
    const found = await bus.dlq.list({...dlqFilter(this.flags), limit: limit + 1})
    const entries = found.slice(0, limit)
    if (found.length > limit && this.flags.limit === undefined)
      this.note(`dlq list: showing the oldest ${limit} entries; use --limit to see more`)
    if (!this.jsonEnabled()) {
      if (entries.length === 0) {
        this.note('dlq list: no dead letters match')
      } else {
        const c = palette()
        const rows = entries.map((e) => {
          const ev = e.event as {id?: string; type?: string} | null
          return [
            e.id,
            e.failedAt.slice(0, 19) + 'Z',
            e.reason,
            e.originalChannel,
            e.handler ?? '-',
            ev?.type ?? '?',
            String(e.attempts),
            cut(e.error, Math.max(20, width() - 150)),
          ]
        })
        this.log(
          table(['ID', 'FAILED AT', 'REASON', 'CHANNEL', 'HANDLER', 'TYPE', 'ATTEMPTS', 'ERROR'], rows, c),
        )
      }
    }
    return {entries}
  }
}
