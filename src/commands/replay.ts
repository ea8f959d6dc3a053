import {Args, Flags} from '@oclif/core'

import {formatDuration, parseDuration} from '../bus/durations.js'
import type {ReplayWindow} from '../bus/history.js'
import type {ReplayToResult} from '../bus/replay.js'
import type {PluginReplayResult} from '../agent/replay-run.js'
import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../cli/exit-codes.js'
import {eventLine, palette} from '../cli/output.js'
import {onInterrupt, progressBar} from '../cli/progress.js'
import {skippedEntries} from '../cli/skipped.js'
import {parseRate, parseTimePoint, resolveTimePoint} from '../cli/times.js'

/** Above this many events a progress bar is worth drawing. */
const LONG = 2000

export default class Replay extends BaseCommand<typeof Replay> {
  static override summary = "Replay a channel's history, in publish order."
  static override description = `Reads the channel's history stream (kept for the channel's retention) within a window and prints each event, one readable line each, or one CloudEvents envelope per line with --json (NDJSON). With --to-channel, re-publishes each event as a new event (new id) onto another channel instead, pipelined, or paced with --rate.

Times (--from, --until) are RFC 3339, epoch ms, or a duration meaning that long ago (10m). Windows are by Redis server time. When the window reaches back past the channel's retention, a warning goes to stderr: older events are gone.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> sys.alert.critical --since 1h',
    '<%= config.bin %> <%= command.id %> sys.guild.research.broadcast --from 2026-11-29T07:00:00Z --until 30m --type research_complete --json',
    '<%= config.bin %> <%= command.id %> app.orders.eu --since 24h --to-channel app.orders.replay --rate 200/s',
  ]

  static override args = {
    channel: Args.string({description: 'Channel to replay.', required: true}),
  }

  static override flags = {
    since: Flags.string({
      summary: 'Only events of the last DUR (30s, 10m, 1h, 7d).',
      exclusive: ['from'],
    }),
    from: Flags.string({summary: 'Only events at or after this time (RFC 3339, epoch ms, or 10m ago).'}),
    until: Flags.string({summary: 'Only events at or before this time (RFC 3339, epoch ms, or 10m ago).'}),
    type: Flags.string({char: 't', summary: 'Only events of this type (repeatable).', multiple: true}),
    limit: Flags.integer({char: 'n', summary: 'At most N events.', min: 1}),
    'to-channel': Flags.string({summary: 'Re-publish each event as a new event onto this channel.'}),
    rate: Flags.string({
      summary: 'With --to-channel: at most N events per second (e.g. 100/s).',
      dependsOn: ['to-channel'],
    }),
    plugin: Flags.string({
      char: 'p',
      summary: 'Run the handlers of this plugin over the history instead of printing it (repeatable).',
      multiple: true,
      exclusive: ['to-channel'],
    }),
  }

  async run(): Promise<ReplayToResult | PluginReplayResult | undefined> {
    const {flags} = this
    const {channel} = this.args
    const rate = flags.rate === undefined ? undefined : parseRate(flags.rate)
    const since = flags.since === undefined ? undefined : parseDuration(flags.since, '--since')
    const from = flags.from === undefined ? undefined : parseTimePoint(flags.from, '--from')
    const until = flags.until === undefined ? undefined : parseTimePoint(flags.until, '--until')
    const bus = await this.bus()
    const needsNow = (from && 'ago' in from) || (until && 'ago' in until)
    const now = needsNow || since !== undefined ? await bus.history.serverTime() : Date.now()
    const window: ReplayWindow = {
      since,
      from: from && resolveTimePoint(from, now),
      until: until && resolveTimePoint(until, now),
      types: flags.type,
      limit: flags.limit,
    }
    const known = bus.topology.retentionMs(channel) !== undefined
    if (!known) this.note(`replay: warning: '${channel}' is not in the topology; it has no history here`)
    else if (window.since !== undefined || window.from !== undefined) {
      const bounds = await bus.history.bounds(channel, window, now)
      if (bounds.reachesPastRetention) {
        const retention = bus.topology.retentionMs(channel)
        this.note(
          `replay: warning: the window starts before ${channel}'s retention` +
            (retention ? ` (${formatDuration(retention)})` : '') +
            '; older events have been trimmed and are not replayed',
        )
      }
    }

    const interrupt = onInterrupt()
    const length = await bus.redis.xlen(bus.keys.stream(channel))
    const total = Math.min(length, flags.limit ?? Infinity)
    try {
      if (flags.plugin)
        return await this.throughPlugins(flags.plugin, channel, window, total, interrupt.signal)
      if (flags['to-channel']) {
        const toChannel = flags['to-channel']
        const bar = progressBar(
          total,
          `replay → ${toChannel}`,
          Boolean(process.stderr.isTTY) && (total > LONG || rate !== undefined),
        )
        const result = await bus.replayTo(channel, toChannel, window, {
          rate,
          signal: interrupt.signal,
          onProgress: (n) => bar.update(n),
        })
        bar.stop()
        if (interrupt.signal.aborted) {
          this.note(`replay: interrupted after re-publishing ${result.republished} events`)
          return this.exit(ExitCode.INTERRUPTED)
        }
        this.log(`re-published ${result.republished} events from ${channel} onto ${toChannel}`)
        if (result.skipped > 0)
          this.note(`replay: skipped ${result.skipped} malformed entr${result.skipped === 1 ? 'y' : 'ies'}`)
        return result
      }
      const json = this.jsonEnabled()
      const {out} = this
      const c = palette()
      const showBar = Boolean(process.stderr.isTTY) && !process.stdout.isTTY && total > LONG
      const bar = progressBar(total, `replay ${channel}`, showBar)
      let count = 0
      const malformed = skippedEntries()
      for await (const event of bus.replay(channel, window, {onMalformed: malformed.add})) {
        if (interrupt.signal.aborted || out.closed) break
        // Back-pressure: at a slow reader's pace, with at most the writer's bound in memory.
        await out.write((json ? JSON.stringify(event) : eventLine(event, c)) + '\n')
        if (++count % 500 === 0) bar.update(count)
      }
      await out.end()
      bar.stop()
      if (interrupt.signal.aborted) return this.exit(ExitCode.INTERRUPTED)
      // A reader that went away (`| head`) is a normal end: exit 0 at once, no summary.
      if (!json && !out.closed) this.note(`replay: ${count} event${count === 1 ? '' : 's'}`)
      malformed.report((line) => this.note(`replay: ${line}`))
      return undefined
    } finally {
      interrupt.dispose()
    }
  }

  /** `--plugin`: each event once through every matching handler; exit 3 when some runs failed, 1 when all did. */
  private async throughPlugins(
    plugins: string[],
    channel: string,
    window: ReplayWindow,
    total: number,
    signal: AbortSignal,
  ): Promise<PluginReplayResult> {
    const [{loadPlugins}, {replayThroughHandlers}, {createLog}] = await Promise.all([
      import('../agent/plugins.js'),
      import('../agent/replay-run.js'),
      import('../agent/log.js'),
    ])
    const handlers = await loadPlugins(plugins)
    const bus = await this.bus()
    const log = createLog(false, palette(process.stderr))
    const bar = progressBar(
      total,
      `replay ${channel} → handlers`,
      Boolean(process.stderr.isTTY) && total > LONG,
    )
    let n = 0
    const malformed = skippedEntries()
    const events = (async function* () {
      for await (const event of bus.replay(channel, window, {onMalformed: malformed.add})) {
        if (signal.aborted) return
        yield event
      }
    })()
    const result = await replayThroughHandlers(bus, handlers, events, log.forHandler, () => bar.update(++n))
    bar.stop()
    if (signal.aborted) return this.exit(ExitCode.INTERRUPTED) as never
    this.log(
      `replayed ${result.replayed} events through ${handlers.map((h) => h.name).join(', ')}: ${result.succeeded} succeeded, ${result.failed} failed`,
    )
    for (const f of result.failures) this.note(`replay: ${f.handler} failed on ${f.eventId}: ${f.error}`)
    malformed.report((line) => this.note(`replay: ${line}`))
    if (result.failed > 0) process.exitCode = result.succeeded > 0 ? ExitCode.PARTIAL : ExitCode.FAILED
    return result
  }
}
