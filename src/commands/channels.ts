import {BaseCommand} from '../cli/base-command.js'
import {table} from '../cli/output.js'
import {channelsResult, type ChannelsResult} from '../cli/results.js'

export type {ChannelRow, ChannelsResult} from '../cli/results.js'

export default class Channels extends BaseCommand<typeof Channels> {
  static override summary = 'List the channel topology with retention, stream length and last event.'
  static override description = `Lists the built-in channels, the channels and channel patterns added by the config file, and every other channel published to under this prefix, with how long each keeps history, how many events its stream holds now, and when the last one was published (Redis server time). Patterns have no stream of their own.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  async run(): Promise<ChannelsResult> {
    const bus = await this.bus()
    const {channels} = channelsResult(await bus.channels())
    this.log(
      table(
        ['CHANNEL', 'RETENTION', 'LENGTH', 'LAST EVENT'],
        channels.map((c) => [c.name, c.retention, c.pattern ? '-' : c.length, c.lastEventAt ?? '-']),
      ),
    )
    return {channels}
  }
}
