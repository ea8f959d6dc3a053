import {Args, Flags} from '@oclif/core'

import type {DlqEntry} from '../../bus/dlq.js'
import {NotFoundError} from '../../bus/errors.js'
import {BaseCommand} from '../../cli/base-command.js'
import {resolveDlqIds} from '../../cli/dlq-flags.js'
import {isTty, palette, printable} from '../../cli/output.js'
import {displayTime} from '../../cli/records.js'

export default class DlqShow extends BaseCommand<typeof DlqShow> {
  static override summary = 'Show one dead letter whole: error, attempts, handler and the event.'
  static override description = `Takes a DLQ entry id from dlq list (<channel>/<reason>/<stream id>, or the stream id alone as the table on a terminal shows it), or an event id (evt-… or any id a producer gave: every DLQ entry holding that event). Exits 1 when nothing matches. --json: {"entries":[…]} as dlq list.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> sys.alert.warning/max_retries_exceeded/1795936715199-0',
    '<%= config.bin %> <%= command.id %> 1795936715199-0',
    '<%= config.bin %> <%= command.id %> evt-5b0c0f1e-8d5e-4c7a-9a51-3f2d7f0e9b11 -o yaml',
  ]

  static override args = {
    id: Args.string({description: 'DLQ entry id, or an event id.', required: true}),
  }

  static override flags = {
    output: Flags.option({
      char: 'o',
      options: ['json', 'yaml'] as const,
      summary: 'Output: json (as --json), yaml.',
    })(),
    utc: Flags.boolean({summary: 'Print the time in UTC (the default off a terminal).'}),
  }

  async run(): Promise<{entries: DlqEntry[]}> {
    const {id} = this.args
    const bus = await this.bus()
    // A short id (as dlq list shows it) may stand for several entries: each is shown.
    const ids = await resolveDlqIds(bus.dlq, [id], false)
    const entries = ids.length === 0 ? [] : await bus.dlq.list({ids})
    if (entries.length === 0)
      throw new NotFoundError(`no dead letter '${id}': raptor dlq list shows the ids`, {id})
    if (this.jsonEnabled()) return {entries}
    if (this.flags.output === 'json') this.log(JSON.stringify({entries}, null, 2))
    else if (this.flags.output === 'yaml') this.log((await import('yaml')).stringify({entries}).trimEnd())
    else this.log(entries.map((e) => this.render(e)).join('\n\n'))
    return {entries}
  }

  private render(e: DlqEntry): string {
    const c = palette()
    const rows: [string, string | number][] = [
      ['id', e.id],
      ['reason', e.reason],
      ['channel', e.originalChannel],
      ['handler', e.handler ?? '- (no handler ran)'],
      ['attempts', e.attempts],
      ['requeues', e.requeues],
      ['failed at', displayTime(e.failedAt, this.flags.utc || !isTty())],
      ['error', e.error],
    ]
    // Multi-line values (a stack, the pretty event) keep their lines; anything a terminal could act
    // on within a line is shown escaped.
    const safe = (text: string) => text.split('\n').map(printable).join('\n')
    const head = rows.map(([k, v]) => `${c.bold(k.padEnd(10))} ${safe(String(v))}`).join('\n')
    return `${head}\n${c.bold('event')}\n${safe(JSON.stringify(e.event, null, 2) ?? 'null')}`
  }
}
