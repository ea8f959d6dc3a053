import {BaseCommand} from '../../cli/base-command.js'
import {dlqFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import type {DlqEntry} from '../../bus/dlq.js'
import {cut, palette, printable, table, width} from '../../cli/output.js'
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

  /**
   * Streams: entries are read page by page in failure order and written as they come (with
   * back-pressure), so `--json --limit 100000` holds one page per DLQ stream, not the whole list.
   * An entry that cannot be shown (e.g. nested too deep to serialize) is skipped and counted.
   */
  async run(): Promise<DlqListResult | undefined> {
    const bus = await this.bus()
    const limit = this.flags.limit ?? DEFAULT_LIMIT
    const entries = bus.dlq.entries({...dlqFilter(this.flags), limit: limit + 1})
    const {out} = this
    const json = this.jsonEnabled()
    let shown = 0
    let skipped = 0
    let more = false
    const rows: string[][] = []
    if (json) void out.write('{"entries":[')
    for await (const e of entries) {
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
      } else rows.push(row(e))
      shown++
    }
    if (json) void out.write(shown === 0 ? ']}\n' : '\n]}\n')
    if (more && this.flags.limit === undefined)
      this.note(`dlq list: showing the oldest ${limit} entries; use --limit to see more`)
    if (skipped > 0)
      this.note(
        `dlq list: skipped ${skipped} entr${skipped === 1 ? 'y' : 'ies'} that cannot be shown as JSON`,
      )
    if (!json) {
      if (rows.length === 0) this.note('dlq list: no dead letters match')
      else
        this.log(
          table(
            ['ID', 'FAILED AT', 'REASON', 'CHANNEL', 'HANDLER', 'TYPE', 'ATTEMPTS', 'ERROR'],
            rows,
            palette(),
          ),
        )
    }
    return undefined
  }
}

/** One table row; every field that came from the entry is made safe for a terminal. */
function row(e: DlqEntry): string[] {
  const ev = e.event as {type?: unknown} | null
  const type = typeof ev === 'object' && ev !== null && typeof ev.type === 'string' ? ev.type : '?'
  return [
    e.id,
    e.failedAt.slice(0, 19) + 'Z',
    e.reason,
    e.originalChannel,
    e.handler ?? '-',
    type,
    String(e.attempts),
    cut(printable(e.error), Math.max(20, width() - 150)),
  ].map(printable)
}
