import {LocalCommand} from '../../cli/base-command.js'
import {contextsPath, readContexts, redactContext, type Context} from '../../cli/contexts.js'
import {table} from '../../cli/output.js'

export interface ContextListResult {
  current: string | null
  contexts: (Context & {name: string})[]
}

export default class ContextList extends LocalCommand<typeof ContextList> {
  static override summary = 'List the saved contexts (passwords shown as ***).'
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  async run(): Promise<ContextListResult> {
    const file = readContexts()
    const contexts = Object.entries(file.contexts).map(([name, c]) => ({name, ...redactContext(c)}))
    if (contexts.length === 0) {
      this.note(
        `context list: no contexts in ${contextsPath()}; add one with raptor context add NAME --redis-url …`,
      )
    } else {
      this.log(
        table(
          ['', 'NAME', 'REDIS URL', 'PREFIX', 'DESCRIPTION'],
          contexts.map((c) => [
            c.name === file.current ? '*' : '',
            c.name,
            c.redisUrl,
            c.prefix ?? '-',
            c.description ?? '',
          ]),
        ),
      )
    }
    return {current: file.current ?? null, contexts}
  }
}
