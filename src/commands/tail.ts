import {Args, Flags} from '@oclif/core'

import type {ConnectionChange} from '../bus/connection.js'
import {formatDuration} from '../bus/durations.js'
import {PRIORITIES, type RaptorEvent} from '../bus/envelope.js'
import {MalformedEntryError} from '../bus/errors.js'
import type {Subscription} from '../bus/live.js'
import {setLongInterval, setLongTimeout} from '../bus/timers.js'
import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../cli/exit-codes.js'
import {durationFlag} from '../cli/flags.js'
import {eventLine} from '../cli/output.js'
import {skippedEntries} from '../cli/skipped.js'

/** Why tail stopped. */
type Ending = 'count' | 'timeout' | 'signal' | 'closed'

export default class Tail extends BaseCommand<typeof Tail> {
  static override summary = 'Print live events as they are published.'
  static override description = `Subscribes to the channels matching the patterns (default: every channel) and prints each event as it arrives: a readable line on a terminal, or with --json one envelope per line (NDJSON). Live delivery is at-most-once: a tail that falls behind drops events rather than slowing publishers.

--since DUR first prints the history of the last DUR of every matching channel, then continues live, with no gap and no duplicate at the seam.

A reader that falls behind never grows tail's memory: once about 1 MB of output waits for it, live events are dropped and counted on stderr ("tail: dropped N events: reader too slow"); the --since backfill instead waits for the reader. When Redis disconnects tail (a restart, or its output-buffer limit), tail reconnects by itself, logs "redis: connection lost" and "redis: reconnected", and says how many events it may have missed.

Once subscribed, tail writes "tail: listening on <patterns>" to stderr. It runs until interrupted (exit 130), until --count events were printed (exit 0), or until --timeout has passed since it started: exit 0, or exit 1 when --count was given and not reached.

Patterns are channel globs: * matches one dot-separated segment, ** any number (sys.alert.*, sys.**).`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    "<%= config.bin %> <%= command.id %> 'sys.alert.*' --priority critical --priority high",
    '<%= config.bin %> <%= command.id %> sys.guild.research.broadcast --since 10m --json',
    '<%= config.bin %> <%= command.id %> sys.state.update --type tick --count 1 --timeout 30s',
  ]

  // Any number of patterns.
  static override strict = false

  static override args = {
    pattern: Args.string({
      description:
        'Channel names or globs (sys.alert.*, sys.**); several may be given. Default: ** (every channel).',
    }),
  }

  static override flags = {
    type: Flags.string({char: 't', summary: 'Only events of this type (repeatable).', multiple: true}),
    source: Flags.string({char: 's', summary: 'Only events from this source (repeatable).', multiple: true}),
    priority: Flags.option({
      options: PRIORITIES,
      multiple: true,
      summary: 'Only events of this priority (repeatable).',
    })(),
    since: durationFlag({
      summary: 'First print the history of the last DUR (e.g. 10m), then live events, seamlessly.',
    }),
    count: Flags.integer({
      char: 'n',
      summary: 'Exit 0 after N events (counted after the filters).',
      min: 1,
    }),
    timeout: durationFlag({
      summary: 'Exit after DUR from start: 0, or 1 when --count was given and not reached.',
    }),
  }

  /** NDJSON: even an error document is one line, so that a reader parsing line by line never breaks. */
  override logJson(json: unknown): void {
    void this.out.write(JSON.stringify(json) + '\n')
  }

  /** Streams; prints NDJSON itself, so nothing is returned for --json. */
  async run(): Promise<void> {
    const {flags} = this
    const patterns = this.argList.length > 0 ? this.argList : ['**']
    const json = this.jsonEnabled()
    const types = flags.type ? new Set(flags.type) : undefined
    const sources = flags.source ? new Set(flags.source) : undefined
    const priorities = flags.priority ? new Set<string>(flags.priority) : undefined
    const accept = (event: RaptorEvent) =>
      (!types || types.has(event.type)) &&
      (!sources || sources.has(event.source)) &&
      (!priorities || priorities.has(event.priority ?? 'normal'))

    let finish!: (why: Ending) => void
    const ended = new Promise<Ending>((resolve) => (finish = resolve))
    let done = false
    let printed = 0
    const end = (why: Ending) => {
      done = true
      finish(why)
    }
    const onSignal = () => end('signal')
    const {out} = this
    // The reader went away (`raptor tail | head`): stop quietly.
    out.onClose(() => end('closed'))
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    const timer =
      flags.timeout === undefined ? undefined : setLongTimeout(() => end('timeout'), flags.timeout)
    let subscription: Subscription | undefined
    let reported = 0
    const reportDrops = () => {
      const dropped = subscription?.dropped ?? 0
      if (dropped > reported) this.note(`tail: dropped ${dropped - reported} events: reader too slow`)
      reported = dropped
    }
    const dropTimer = setLongInterval(reportDrops, 1000, true)

    const malformed = skippedEntries()
    try {
      const bus = await this.bus({
        reconnect: true,
        onConnectionChange: (change: ConnectionChange) =>
          this.note(
            change.state === 'lost' ? `redis: connection lost (${change.reason})` : 'redis: reconnected',
          ),
      })
      const subscribing = bus.subscribe(
        patterns,
        (event) => {
          if (done || !accept(event)) return undefined
          printed++
          // Past the writer's bound this returns a promise: the backfill waits for the reader, and
          // live events beyond the one in flight are dropped and counted (maxInFlight 1).
          const written = out.write((json ? JSON.stringify(event) : eventLine(event)) + '\n')
          if (flags.count !== undefined && printed >= flags.count) end('count')
          return written
        },
        {
          since: flags.since,
          maxInFlight: 1,
          onError: (error) => {
            if (error instanceof MalformedEntryError) malformed.add(error)
          },
          onGap: ({lost}) =>
            this.note(`tail: disconnected by Redis: missed up to ${lost} event${lost === 1 ? '' : 's'}`),
        },
      )
      // A signal or the timeout must end tail even while a long backfill (or a Redis that went away
      // mid-backfill) holds up the subscription; its late outcome no longer matters then.
      subscribing.catch(() => {})
      subscription = await Promise.race([subscribing, ended.then(() => undefined)])
      if (subscription) this.note(`tail: listening on ${patterns.join(' ')}`)
      const why = await ended
      await subscription?.unsubscribe()
      reportDrops()
      malformed.report((line) => this.note(`tail: ${line}`))
      if (why === 'signal') this.exit(ExitCode.INTERRUPTED)
      if (why === 'timeout' && flags.count !== undefined && printed < flags.count) {
        this.note(
          `tail: timed out after ${formatDuration(flags.timeout ?? 0)} with ${printed} of ${flags.count} events`,
        )
        this.exit(ExitCode.FAILED)
      }
    } finally {
      timer?.clear()
      dropTimer.clear()
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  }
}
