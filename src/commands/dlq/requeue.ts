import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {dlqFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import {ExitCode} from '../../cli/exit-codes.js'
import {progressBar} from '../../cli/progress.js'
import {requeueResult, type DlqRequeueResult} from '../../cli/results.js'

export type {DlqRequeueResult} from '../../cli/results.js'

export default class DlqRequeue extends BaseCommand<typeof DlqRequeue> {
  static override summary = 'Redeliver dead-lettered events.'
  static override description = `Each entry goes back to the handler that failed it, and only to that handler (the handlers that succeeded do not see it again), keeping its event id: it moves to the handler's requeue stream. Entries with no handler (routing_error) are published onto their original channel once it is in the topology (add it to the config file), and are skipped and reported otherwise. --to-channel instead publishes every entry anew (new event id) onto that channel.

Atomic in batches: an interrupted requeue neither loses nor duplicates an entry; run it again to finish. Exits 3 when some entries were skipped.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --reason max_retries_exceeded --handler research_monitor --dry-run',
    '<%= config.bin %> <%= command.id %> --id sys.alert.critical/processing_timeout/1732867200000-0',
    '<%= config.bin %> <%= command.id %> --id evt-5b0c0f1e-8d5e-4c7a-9a51-3f2d7f0e9b11',
    '<%= config.bin %> <%= command.id %> --reason routing_error --to-channel sys.alert.warning --json',
  ]

  static override flags = {
    ...dlqFilterFlags,
    id: Flags.string({
      summary: 'Only this entry: a DLQ entry id from `dlq list` or an event id (repeatable).',
      multiple: true,
    }),
    'to-channel': Flags.string({
      summary: 'Publish each entry anew (new event id) onto this channel instead.',
    }),
    'dry-run': Flags.boolean({summary: 'Change nothing; show what would move.'}),
    'batch-size': Flags.integer({
      summary: 'Entries moved per atomic Lua call.',
      default: 500,
      min: 1,
      max: 1000,
      helpGroup: 'TUNING',
    }),
  }

  async run(): Promise<DlqRequeueResult> {
    const {flags} = this
    const bus = await this.bus()
    let total = 0
    if (process.stderr.isTTY && !flags['dry-run'])
      total = Math.min(
        (await bus.dlq.depths()).reduce((n, d) => n + d.depth, 0),
        flags.limit ?? Infinity,
      )
    const bar = progressBar(total, 'requeue', total > 2000)
    const result = await bus.dlq.requeue({
      ...dlqFilter(flags),
      toChannel: flags['to-channel'],
      dryRun: flags['dry-run'],
      batchSize: flags['batch-size'],
      onProgress: (n) => bar.update(n),
    })
    bar.stop()
    const output: DlqRequeueResult = requeueResult(result)
    const verb = result.dryRun ? 'would requeue' : 'requeued'
    this.log(`${verb} ${result.requeued} entr${result.requeued === 1 ? 'y' : 'ies'}`)
    for (const t of result.targets) {
      const where =
        t.handler === null ? `channel ${t.channel} (published)` : `handler ${t.handler} on ${t.channel}`
      this.log(`  ${t.count} → ${where}`)
    }
    for (const s of result.skipped.slice(0, 20)) this.note(`skipped ${s.id}: ${s.why}`)
    if (result.skipped.length > 20) this.note(`… and ${result.skipped.length - 20} more skipped`)
    if (result.skipped.length > 0 && !result.dryRun) {
      if (this.jsonEnabled()) this.logJson(output)
      return this.exit(ExitCode.PARTIAL)
    }
    return output
  }
}
