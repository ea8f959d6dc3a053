import {Args} from '@oclif/core'

import {InvalidInputError} from '../../bus/errors.js'
import {LocalCommand} from '../../cli/base-command.js'
import {contextsPath, redactContext, selectContext, type Context} from '../../cli/contexts.js'

export default class ContextShow extends LocalCommand<typeof ContextShow> {
  static override summary = 'Show one context (default: the one in force), password shown as ***.'
  static override description =
    'Without NAME, shows the context that commands use now: the one named by RAPTOR_CONTEXT, else the current one.'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> prod --json',
  ]

  static override args = {
    name: Args.string({description: 'Context name (default: the one in force).'}),
  }

  async run(): Promise<Context & {name: string; file: string}> {
    const chosen = selectContext(this.args.name ?? (process.env.RAPTOR_CONTEXT || undefined))
    if (!chosen)
      throw new InvalidInputError(
        'no context in force: pick one with raptor context use NAME (raptor context list shows them)',
      )
    const shown = {name: chosen.name, ...redactContext(chosen.context), file: contextsPath()}
    const rows: [string, string | undefined][] = [
      ['name', shown.name],
      ['redis url', shown.redisUrl],
      ['prefix', shown.prefix],
      ['tls ca', shown.tlsCa],
      ['tls cert', shown.tlsCert],
      ['tls key', shown.tlsKey],
      ['tls servername', shown.tlsServername],
      ['description', shown.description],
      ['file', shown.file],
    ]
    for (const [k, v] of rows) if (v !== undefined) this.log(`${k.padEnd(15)} ${v}`)
    return shown
  }
}
