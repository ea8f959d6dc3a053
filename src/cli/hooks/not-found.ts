import {toConfiguredId, type Hook} from '@oclif/core'
import {closest, distance} from 'fastest-levenshtein'

import {ExitCode} from '../exit-codes.js'

/**
 * `raptor dlq lst`: on a terminal, oclif's not-found plugin asks "Did you mean dlq list?" and runs it;
 * off a terminal (scripts, CI) it cannot ask, so this says the nearest command in one line and exits 2
 * (a usage error), always in the spaced form a user types, never oclif's internal `dlq:lst`.
 */
const hook: Hook.CommandNotFound = async function (options) {
  const {config, id} = options
  const typed = toConfiguredId(id, config)
  if (process.stdin.isTTY && process.stderr.isTTY) {
    const {default: pluginHook} = await import('@oclif/plugin-not-found')
    try {
      return await pluginHook.call(this, options)
    } catch (error) {
      // The plugin exits 127 ("command not found" in shells); raptor's table says 2 for usage errors.
      if ((error as {oclif?: {exit?: number}}).oclif?.exit === 127) this.exit(ExitCode.USAGE)
      throw error
    }
  }
  const ids = config.commands.filter((c) => !c.hidden).flatMap((c) => [c.id, ...c.aliases])
  const nearest = ids.length > 0 ? closest(id, ids) : undefined
  const close = nearest !== undefined && distance(id, nearest) <= Math.max(2, Math.floor(id.length / 3))
  const topic = id.split(':')[0]
  const help = config.findTopic(topic) ? `${config.bin} help ${topic}` : `${config.bin} help`
  const hint = close ? `did you mean '${config.bin} ${toConfiguredId(nearest, config)}'? ` : ''
  process.stderr.write(
    `Error: '${typed}' is not a ${config.bin} command: ${hint}Run '${help}' for the list.\n`,
  )
  this.exit(ExitCode.USAGE)
}

export default hook
