import {Flags} from '@oclif/core'

import {parseDuration} from '../bus/durations.js'
import {InvalidInputError} from '../bus/errors.js'
import {BaseCommand} from '../cli/base-command.js'
import type {BenchResult} from '../cli/bench.js'
import {table} from '../cli/output.js'

/** `10000`, `10000/s`, `10k/s`. */
function parseRate(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(k)?(?:\/s)?$/i.exec(text.trim())
  if (!match)
    throw new InvalidInputError(`invalid --rate '${text}': use events per second, e.g. 1000/s or 10k/s`)
  return Number(match[1]) * (match[2] ? 1000 : 1)
}

export default class Bench extends BaseCommand<typeof Bench> {
  static override summary = 'Measure publish throughput and delivery latency on this Redis.'
  static override description = `In the manner of \`nats bench\`: publishers, live subscribers and durable consumers on one channel, each with its own connection. Every event carries its send time; latency is measured from it on receipt (p50, p90, p99, p99.9, max). Runs under a fresh random prefix (<prefix>:bench-<random>) whose keys are deleted afterwards, on a fresh channel bench.<random> with 5 minutes retention unless --channel is given.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --count 100000',
    '<%= config.bin %> <%= command.id %> --publishers 2 --subscribers 2 --rate 10k/s --duration 10s --size 500',
    '<%= config.bin %> <%= command.id %> --count 1000 --json',
  ]

  static override flags = {
    publishers: Flags.integer({summary: 'Publishing clients.', default: 1, min: 0}),
    subscribers: Flags.integer({summary: 'Live subscribers (each gets every event).', default: 1, min: 0}),
    consumers: Flags.integer({
      summary: 'Durable consumers sharing one handler group (together they get every event once).',
      default: 0,
      min: 0,
    }),
    size: Flags.integer({summary: 'Payload size in bytes.', default: 128, min: 0}),
    count: Flags.integer({
      char: 'n',
      summary: 'Events to publish in all (default 10000).',
      min: 1,
      exclusive: ['duration'],
    }),
    duration: Flags.string({summary: 'Publish for this long instead, e.g. 10s.', exclusive: ['count']}),
    rate: Flags.string({summary: 'Total publish rate, e.g. 1000/s; 0 = flat out.', default: '0'}),
    window: Flags.integer({summary: 'Publishes in flight per publisher.', default: 100, min: 1}),
    channel: Flags.string({char: 'c', summary: 'Channel (default: a fresh bench.<random> channel).'}),
  }

  async run(): Promise<BenchResult> {
    const {flags} = this
    const rate = parseRate(flags.rate)
    const durationMs = flags.duration === undefined ? undefined : parseDuration(flags.duration, '--duration')
    const {runBench} = await import('../cli/bench.js')
    if (flags.publishers === 0) throw new InvalidInputError('--publishers must be at least 1')
    const result = await runBench({
      bus: this.busOptions(),
      publishers: flags.publishers,
      subscribers: flags.subscribers,
      consumers: flags.consumers,
      size: flags.size,
      count: durationMs === undefined ? (flags.count ?? 10_000) : undefined,
      durationMs,
      rate,
      window: flags.window,
      channel: flags.channel,
      log: (line) => this.note(line),
    })
    if (!this.jsonEnabled()) this.render(result)
    return result
  }

  private render(result: BenchResult): void {
    const rows: (string | number)[][] = []
    const add = (name: string, r: BenchResult['publishers'] | undefined, lost?: number) => {
      if (r) rows.push([name, r.clients, r.events, r.eventsPerSec, lost ?? ''])
    }
    add('publishers', result.publishers)
    add('subscribers', result.subscribers, result.subscribers?.lost)
    add('consumers', result.consumers, result.consumers?.lost)
    this.log(table(['role', 'clients', 'events', 'events/s', 'lost'], rows))
    const lat: (string | number)[][] = []
    for (const [name, r] of [
      ['live', result.subscribers],
      ['durable', result.consumers],
    ] as const) {
      if (r)
        lat.push([name, r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99, r.latencyMs.p999, r.latencyMs.max])
    }
    if (lat.length > 0) {
      this.log('')
      this.log(table(['latency (ms)', 'p50', 'p90', 'p99', 'p99.9', 'max'], lat))
    }
  }
}
