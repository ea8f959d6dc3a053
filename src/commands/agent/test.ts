import {Flags} from '@oclif/core'

import {InvalidInputError} from '../../bus/errors.js'
import type {TestRunResult} from '../../agent/test-run.js'
import {BaseCommand} from '../../cli/base-command.js'
import {ExitCode} from '../../cli/exit-codes.js'
import {parseJson, readArgText} from '../../cli/input.js'
import {palette} from '../../cli/output.js'

export interface AgentTestResult {
  event: string
  results: TestRunResult[]
}

export default class AgentTest extends BaseCommand<typeof AgentTest> {
  static override summary = "Run a plugin's handlers once on an event from a file, without Redis."
  static override description = `For people writing handlers: loads the plugin, runs every handler whose channels and types match the event once (attempt 1, with its timeoutMs), and prints the outcome — succeeded, threw, timed out — with what it published or replied (recorded, never sent). Nothing is consumed or written. Exit 0 when every matching handler succeeded, 1 otherwise.

The event file holds a full envelope, or a short form {"channel","type","payload"}.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --plugin ./handlers/research-monitor.js --event ./fixtures/research-complete.json',
    `echo '{"channel":"sys.alert.critical","type":"fire","payload":{}}' | <%= config.bin %> <%= command.id %> -p alerts.js --event - --json`,
  ]

  static override flags = {
    plugin: Flags.string({summary: 'Handler plugin file (ES module).', required: true}),
    event: Flags.string({char: 'e', summary: 'Event JSON file (- for stdin).', required: true}),
    handler: Flags.string({summary: 'Only this handler of the plugin.'}),
  }

  async run(): Promise<AgentTestResult> {
    const {flags} = this
    const [{loadPlugin}, {runHandlersOnce, toTestEvent}] = await Promise.all([
      import('../../agent/plugins.js'),
      import('../../agent/test-run.js'),
    ])
    const {text, origin} = await readArgText(flags.event === '-' ? '@-' : `@${flags.event}`, '--event')
    const event = toTestEvent(parseJson(text, origin), origin)
    let handlers = await loadPlugin(flags.plugin)
    if (flags.handler) {
      handlers = handlers.filter((h) => h.name === flags.handler)
      if (handlers.length === 0)
        throw new InvalidInputError(`plugin ${flags.plugin} has no handler named '${flags.handler}'`)
    }
    const results = await runHandlersOnce(handlers, event)
    if (!this.jsonEnabled()) this.render(results)
    if (results.every((r) => r.outcome === 'skipped')) {
      process.stderr.write(`no handler of ${flags.plugin} takes ${event.type} on ${event.channel}\n`)
    }
    if (results.some((r) => r.outcome === 'threw' || r.outcome === 'timed out'))
      process.exitCode = ExitCode.FAILED
    return {event: event.id, results}
  }

  private render(results: TestRunResult[]): void {
    const c = palette()
    const mark = {
      succeeded: c.green('✔ succeeded'),
      threw: c.red('✖ threw'),
      'timed out': c.red('✖ timed out'),
      skipped: c.dim('- skipped'),
    }
    for (const r of results) {
      this.log(
        `${c.bold(r.handler)} ${mark[r.outcome]}${r.error ? `: ${r.error}` : ''} ${c.dim(`(${r.durationMs} ms)`)}`,
      )
      for (const l of r.logs)
        this.log(`  log ${l.level}: ${l.message}${l.fields ? ' ' + JSON.stringify(l.fields) : ''}`)
      for (const p of r.published)
        this.log(`  published ${p.type} on ${p.channel}: ${JSON.stringify(p.data)}`)
      for (const p of r.replies) this.log(`  replied ${p.type}: ${JSON.stringify(p.data)}`)
    }
  }
}
