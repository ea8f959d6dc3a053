import {Args} from '@oclif/core'

import {LocalCommand} from '../../cli/base-command.js'
import {readContexts, selectContext, writeContexts} from '../../cli/contexts.js'

export default class ContextRm extends LocalCommand<typeof ContextRm> {
  static override summary = 'Delete a context.'
  static override description =
    'Removing the current context leaves none current: commands fall back to env, the config file and the defaults.'
  static override examples = ['<%= config.bin %> <%= command.id %> staging']

  static override args = {
    name: Args.string({description: 'Context name.', required: true}),
  }

  async run(): Promise<{removed: string}> {
    const {name} = this.args
    selectContext(name) // exit 2 when there is no such context
    const file = readContexts()
    delete file.contexts[name]
    if (file.current === name) file.current = undefined
    writeContexts(file)
    this.log(`removed context '${name}'`)
    return {removed: name}
  }
}
