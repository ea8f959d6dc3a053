import {Args} from '@oclif/core'

import {LocalCommand} from '../../cli/base-command.js'
import {readContexts, selectContext, writeContexts} from '../../cli/contexts.js'

export default class ContextUse extends LocalCommand<typeof ContextUse> {
  static override summary = 'Make a context the current one (used when --context is not given).'
  static override examples = ['<%= config.bin %> <%= command.id %> prod']

  static override args = {
    name: Args.string({description: 'Context name.', required: true}),
  }

  async run(): Promise<{current: string}> {
    const {name} = this.args
    selectContext(name) // exit 2 when there is no such context
    const file = readContexts()
    file.current = name
    writeContexts(file)
    this.log(`current context: ${name}`)
    return {current: name}
  }
}
