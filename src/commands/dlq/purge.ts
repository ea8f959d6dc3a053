import {Flags} from '@oclif/core'

import {parseDuration} from '../../bus/durations.js'
import type {PurgeResult} from '../../bus/dlq.js'
import {InvalidInputError, NotFoundError} from '../../bus/errors.js'
import {BaseCommand} from '../../cli/base-command.js'
import {changeFilter, dlqFilterFlags} from '../../cli/dlq-flags.js'
import {ExitCode} from '../../cli/exit-codes.js'
import {plural} from '../../cli/output.js'

export default class DlqPurge extends BaseCommand<typeof DlqPurge> {
  static override summary = 'Delete dead-lettered events for good.'
  static override description = `Deletes the DLQ entries matching the filters, in batches. Preview with --dry-run (counts only). On a terminal it asks for confirmation with the count; --yes skips the question. Without a terminal and without --yes it refuses (exit 2) and deletes nothing. Entries dead-lettered after the count was taken are never deleted by this run.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --reason schema_violation --older-than 7d --dry-run',
    '<%= config.bin %> <%= command.id %> --channel "app.orders.*" --yes --json',
  ]

  static override flags = {
    ...dlqFilterFlags,
    id: Flags.string({
      summary:
        'Only this entry: an id as `dlq list` shows it (full, or the stream id alone) or an event id (repeatable).',
      multiple: true,
    }),
    'older-than': Flags.string({summary: 'Only entries dead-lettered more than DUR ago (e.g. 7d).'}),
    'dry-run': Flags.boolean({summary: 'Delete nothing; count what would be deleted.'}),
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.'}),
  }

  async run(): Promise<PurgeResult> {
    const {flags} = this
    const olderThan =
      flags['older-than'] === undefined ? undefined : parseDuration(flags['older-than'], '--older-than')
    if (!flags['dry-run'] && !flags.yes && !process.stdin.isTTY) {
      throw new InvalidInputError(
        'refusing to purge without confirmation: pass --yes (or --dry-run to count)',
      )
    }
    const bus = await this.bus()
    const now = await bus.history.serverTime()
    // Pinning the window's end makes the confirmed count an upper bound of what gets deleted.
    const filter = {...(await changeFilter(bus.dlq, flags)), before: now + 1 - (olderThan ?? 0)}
    const {purged: count} = await bus.dlq.purge({...filter, dryRun: true})
    if (count === 0 && flags.id)
      throw new NotFoundError(
        `no dead letter matches --id ${flags.id.join(', ')}: raptor dlq list shows the ids`,
      )
    if (flags['dry-run'] || count === 0) {
      this.log(`${flags['dry-run'] ? 'would purge' : 'purged'} ${plural(count, 'entry')}`)
      return {purged: flags['dry-run'] ? count : 0, dryRun: flags['dry-run']}
    }
    if (!flags.yes) {
      const {confirm} = await import('@inquirer/prompts')
      const ok = await confirm(
        {message: `Delete ${plural(count, 'dead letter')} for good?`, default: false},
        {output: process.stderr},
      ).catch((error: Error) => {
        if (error.name === 'ExitPromptError') return this.exit(ExitCode.INTERRUPTED)
        throw error
      })
      if (!ok) {
        this.note('dlq purge: nothing deleted')
        return this.exit(ExitCode.FAILED)
      }
    }
    const result = await bus.dlq.purge(filter)
    this.log(`purged ${plural(result.purged, 'entry')}`)
    return result
  }
}
