import {Flags} from '@oclif/core'

import {NotFoundError} from '../../bus/errors.js'
import {BaseCommand} from '../../cli/base-command.js'
import {changeFilter, dlqFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import {ExitCode} from '../../cli/exit-codes.js'
import {plural} from '../../cli/output.js'
import {progressBar} from '../../cli/progress.js'
import {requeueResult, type DlqRequeueResult} from '../../cli/results.js'

export type {DlqRequeueResult} from '../../cli/results.js'

export default class DlqRequeue extends BaseCommand<typeof DlqRequeue> {
  static override summary = 'Redeliver dead-lettered events.'
  static override description = `Each entry goes back to the handler that failed it, and only to that handler (the handlers that succeeded do not see it again), keeping its event id: it moves to the handler's requeue stream. Entries with no handler (routing_error) are published onto their original channel once it is in the topology (add it to the config file), and are skipped and reported otherwise. --to-channel instead publishes every entry anew (new event id) onto that channel.

Atomic in batches: an interrupted requeue neither loses nor duplicates an entry; run it again to finish. Exits 3 when some entries were skipped, 1 when --id matches nothing. With no filter at all it asks first on a terminal (--yes skips the question).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --reason max_retries_exceeded --handler research_monitor --dry-run',
    '<%= config.bin %> <%= command.id %> --id sys.alert.critical/processing_timeout/1732867200000-0',
    '<%= config.bin %> <%= command.id %> --id evt-5b0c0f1e-8d5e-4c7a-9a51-3f2d7f0e9b11',
    '<%= config.bin %> <%= command.id %> --reason routing_error --to-channel sys.alert.warning --json',
  ]

  static override flags = {
    ...dlqFilterFlags,
    id: Flags.string({
      summary:
        'Only this entry: an id as `dlq list` shows it (full, or the stream id alone) or an event id (repeatable).',
      multiple: true,
    }),
    'to-channel': Flags.string({
      summary: 'Publish each entry anew (new event id) onto this channel instead.',
    }),
    'dry-run': Flags.boolean({summary: 'Change nothing; show what would move.'}),
    yes: Flags.boolean({
      char: 'y',
      summary: 'Do not ask before requeueing every dead letter (no filter given).',
    }),
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
    dlqFilter(flags) // bad filters are exit 2 before Redis is touched
    const bus = await this.bus()
    const filter = await changeFilter(bus.dlq, flags)
    const unfiltered = !flags.reason && !flags.channel && !flags.handler && !flags.id && !flags.limit
    if (unfiltered && !flags.yes && !flags['dry-run'] && process.stdin.isTTY) {
      // Everything at once is worth a question on a terminal (scripts and pipes are never asked).
      const count = (await bus.dlq.depths()).reduce((n, d) => n + d.depth, 0)
      if (count > 0 && !(await this.confirm(`Requeue all ${plural(count, 'dead letter')}?`))) {
        this.note('dlq requeue: nothing requeued')
        return this.exit(ExitCode.FAILED)
      }
    }
    let total = 0
    if (process.stderr.isTTY && !flags['dry-run'])
      total = Math.min(
        (await bus.dlq.depths()).reduce((n, d) => n + d.depth, 0),
        flags.limit ?? Infinity,
      )
    const bar = progressBar(total, 'requeue', total > 2000)
    const result = await bus.dlq.requeue({
      ...filter,
      toChannel: flags['to-channel'],
      dryRun: flags['dry-run'],
      batchSize: flags['batch-size'],
      onProgress: (n) => bar.update(n),
    })
    bar.stop()
    const output: DlqRequeueResult = requeueResult(result)
    if (flags.id && result.requeued === 0 && result.skipped.length === 0)
      throw new NotFoundError(
        `no dead letter matches --id ${flags.id.join(', ')}: raptor dlq list shows the ids`,
      )
    const verb = result.dryRun ? 'would requeue' : 'requeued'
    this.log(`${verb} ${plural(result.requeued, 'entry')}`)
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

  /** Asks on the terminal (stderr); Ctrl-C exits 130. */
  private async confirm(message: string): Promise<boolean> {
    const {confirm} = await import('@inquirer/prompts')
    return confirm({message, default: false}, {output: process.stderr}).catch((error: Error) => {
      if (error.name === 'ExitPromptError') return this.exit(ExitCode.INTERRUPTED) as never
      throw error
    })
  }
}
