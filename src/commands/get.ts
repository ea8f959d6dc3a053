import {Args} from '@oclif/core'

import type {RaptorEvent} from '../bus/envelope.js'
import {BaseCommand} from '../cli/base-command.js'
import {isTty} from '../cli/output.js'

export default class Get extends BaseCommand<typeof Get> {
  static override summary = 'Print one event from history by its id.'
  static override description = `Looks the event up in the history of every channel and prints its envelope as JSON (indented on a terminal, one line otherwise). An event is kept for its channel's retention; exits 1 when the id was never published under this prefix or has expired.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> evt-0b7e4f5c-3f0a-4c2e-9d51-6f1a2b3c4d5e',
    "<%= config.bin %> <%= command.id %> evt-0b7e4f5c-3f0a-4c2e-9d51-6f1a2b3c4d5e --json | jq '.data'",
  ]

  static override args = {
    eventId: Args.string({description: 'Event id (evt-<uuid>), as printed by publish.', required: true}),
  }

  async run(): Promise<RaptorEvent> {
    const bus = await this.bus()
    const event = await bus.getEvent(this.args.eventId)
    this.log(isTty() ? JSON.stringify(event, null, 2) : JSON.stringify(event))
    return event
  }
}
