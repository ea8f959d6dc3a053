import {Flags} from '@oclif/core'

import {DLQ_REASONS} from '../bus/channels.js'
import {formatDuration} from '../bus/durations.js'
import type {BusMetrics, ChannelMetrics} from '../bus/metrics.js'
import {sleepLong} from '../bus/timers.js'
import {BaseCommand} from '../cli/base-command.js'
import {assertKnownChannel} from '../cli/channels.js'
import {ExitCode} from '../cli/exit-codes.js'
import {isTty, palette, width} from '../cli/output.js'
import {flow, renderTable, type Column} from '../cli/table.js'
import {onInterrupt} from '../cli/progress.js'

const FORMATS = ['table', 'wide', 'json', 'yaml', 'prometheus'] as const
type Format = (typeof FORMATS)[number]
/** Seconds between redraws when --watch is given without a value. */
const DEFAULT_WATCH = 2

export default class Metrics extends BaseCommand<typeof Metrics> {
  static override summary = 'Show bus metrics: counters, streams, consumer lag, DLQ depth, subscribers.'
  static override description = `Counters (published, liveDelivered, delivered, acked, failed, retried, deadLettered, duplicates, requeued, trimmedWhilePending) globally (the sum over channels), per channel and per handler; stream length and retention; consumer-group lag and pending per handler (the channel stream plus the handler's requeue stream); DLQ depth by reason; live subscriber connections and agents. Everything is read from Redis, so any process sees the same figures.

--format prometheus prints the Prometheus text exposition (labels channel, handler, reason). --watch [SECONDS] redraws every SECONDS (default ${DEFAULT_WATCH}) until Ctrl-C.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --channel sys.guild.research.broadcast --json',
    '<%= config.bin %> <%= command.id %> --format prometheus > raptor.prom',
    '<%= config.bin %> <%= command.id %> --watch 5',
  ]

  static override flags = {
    channel: Flags.string({char: 'c', summary: 'Only this channel.'}),
    format: Flags.option({
      char: 'o',
      options: FORMATS,
      summary: 'Output: table (fits the terminal), wide (every column), json, yaml, prometheus.',
      default: 'table' as Format,
    })(),
    watch: Flags.integer({
      summary: `Redraw every SECONDS (default ${DEFAULT_WATCH}) until interrupted.`,
      helpValue: '[SECONDS]',
      min: 1,
    }),
  }

  public override async init(): Promise<void> {
    // oclif flags always take a value; make `--watch` alone mean the default interval.
    const i = this.argv.indexOf('--watch')
    if (i >= 0 && (i + 1 >= this.argv.length || !/^\d+$/.test(this.argv[i + 1])))
      this.argv.splice(i + 1, 0, String(DEFAULT_WATCH))
    await super.init()
  }

  async run(): Promise<BusMetrics | ChannelMetrics | undefined> {
    const {flags} = this
    const format = this.jsonEnabled() ? 'json' : flags.format
    const bus = await this.bus()
    if (flags.channel !== undefined) await assertKnownChannel(bus, flags.channel)
    const read = () => (flags.channel ? bus.channelMetrics(flags.channel) : bus.metrics())
    if (flags.watch === undefined) {
      const m = await read()
      if (format === 'json') {
        if (this.jsonEnabled()) return m
        this.log(JSON.stringify(m, null, 2))
      } else this.log(await this.render(m, format))
      return undefined
    }
    const interrupt = onInterrupt()
    // On a terminal: the alternate screen (as top and watch do), redrawn in place, so nothing scrolls
    // and nothing is left in the scrollback; the screen is restored on exit.
    const redraw = isTty() && format !== 'json'
    const {out} = this
    // A reader that goes away (`metrics --watch | head`) ends the watch at once, with exit 0.
    const stop = new AbortController()
    interrupt.signal.addEventListener('abort', () => stop.abort(), {once: true})
    out.onClose(() => stop.abort())
    if (redraw) void out.write(ALT_SCREEN_ON)
    try {
      while (!stop.signal.aborted) {
        const m = await read()
        const text = format === 'json' ? JSON.stringify(m) : await this.render(m, format)
        await out.write(redraw ? frame(text) : text + (format === 'yaml' ? '\n---\n' : '\n'))
        await sleepLong(flags.watch! * 1000, stop.signal)
      }
    } finally {
      if (redraw) {
        void out.write(ALT_SCREEN_OFF)
        out.flush()
      }
      interrupt.dispose()
    }
    if (out.closed) return undefined
    return this.exit(ExitCode.INTERRUPTED)
  }

  private async render(m: BusMetrics | ChannelMetrics, format: Exclude<Format, 'json'>): Promise<string> {
    if (format === 'prometheus') {
      const {toPrometheus} = await import('../bus/prometheus.js')
      return toPrometheus('global' in m ? m : {channels: [m]})
    }
    if (format === 'yaml') return (await import('yaml')).stringify(m).trimEnd()
    const c = palette()
    const wide = format === 'wide'
    // Wide shows every column and cuts nothing; the default fits the terminal.
    const fit = wide || !isTty() ? undefined : width()
    const channels = 'global' in m ? m.channels : [m]
    const out: string[] = []
    if ('global' in m) {
      const g = m.global
      const reasons = DLQ_REASONS.filter((r) => g.dlqDepth[r] > 0).map((r) => `${r} ${g.dlqDepth[r]}`)
      out.push(
        c.bold(
          `raptor metrics · prefix ${m.prefix} · ${m.redis.deployment === 'cluster' ? `cluster of ${m.redis.masters} masters · ` : ''}${m.time}`,
        ),
        flow(
          [
            `published ${g.counters.published}`,
            `delivered ${g.counters.delivered}`,
            `acked ${g.counters.acked}`,
            `failed ${g.counters.failed}`,
            `retried ${g.counters.retried}`,
            `dead-lettered ${g.counters.deadLettered}`,
            `requeued ${g.counters.requeued}`,
            `duplicates ${g.counters.duplicates}`,
            `live-delivered ${g.counters.liveDelivered}`,
            `trimmed-while-pending ${g.counters.trimmedWhilePending}`,
          ],
          fit,
        ),
        flow(
          [
            `stream entries ${g.streamLength}`,
            `lag ${g.lag}`,
            `pending ${g.pending}`,
            `DLQ ${g.dlqTotal}${reasons.length > 0 ? ` (${reasons.join(', ')})` : ''}`,
            `subscribers ${m.subscribers}`,
            `agents ${m.agents.live} live, ${m.agents.stale} stale`,
          ],
          fit,
        ),
        '',
      )
    }
    // Optional columns show when the terminal has room for them (always with wide).
    const channelCols: Column[] = [
      {header: 'CHANNEL', priority: 9},
      {header: 'RETENTION', priority: 2},
      {header: 'LENGTH', priority: 3},
      {header: 'PUBLISHED', priority: 6},
      {header: 'DELIVERED', priority: 4, optional: true},
      {header: 'ACKED', priority: 5},
      {header: 'FAILED', priority: 5},
      {header: 'RETRIED', priority: 3, optional: true},
      {header: 'DEAD', priority: 5, optional: true},
      {header: 'REQUEUED', priority: 1, optional: true},
      {header: 'LIVE', priority: 2, optional: true},
      {header: 'DLQ', priority: 6},
    ]
    const channelRow = (ch: ChannelMetrics): Record<string, string | number> => ({
      CHANNEL: ch.channel,
      RETENTION: ch.retentionMs === null ? '-' : formatDuration(ch.retentionMs),
      LENGTH: ch.streamLength,
      PUBLISHED: ch.counters.published,
      DELIVERED: ch.counters.delivered,
      ACKED: ch.counters.acked,
      FAILED: ch.counters.failed,
      RETRIED: ch.counters.retried,
      DEAD: ch.counters.deadLettered,
      REQUEUED: ch.counters.requeued,
      LIVE: ch.counters.liveDelivered,
      DLQ: DLQ_REASONS.reduce((n, r) => n + ch.dlqDepth[r], 0),
    })
    out.push(
      renderTable(
        channelCols,
        channels.map((ch) => pick(channelRow(ch), channelCols)),
        {width: fit, bold: c.bold},
      ),
    )
    const handlers = channels.flatMap((ch) => ch.handlers.map((h) => ({ch: ch.channel, h})))
    if (handlers.length > 0) {
      const handlerCols: Column[] = [
        {header: 'HANDLER', priority: 9},
        {header: 'CHANNEL', priority: 8},
        {header: 'LAG', priority: 7},
        {header: 'PENDING', priority: 7},
        {header: 'CONSUMERS', priority: 3},
        {header: 'DELIVERED', priority: 2, optional: true},
        {header: 'ACKED', priority: 5},
        {header: 'FAILED', priority: 5},
        {header: 'DEAD', priority: 4, optional: true},
        {header: 'REQUEUED', priority: 1, optional: true},
      ]
      out.push(
        '',
        renderTable(
          handlerCols,
          handlers.map(({ch, h}) =>
            pick(
              {
                HANDLER: h.handler,
                CHANNEL: ch,
                LAG: h.lag ?? '?',
                PENDING: h.pending,
                CONSUMERS: h.consumers,
                DELIVERED: h.counters.delivered,
                ACKED: h.counters.acked,
                FAILED: h.counters.failed,
                DEAD: h.counters.deadLettered,
                REQUEUED: h.counters.requeued,
              },
              handlerCols,
            ),
          ),
          {width: fit, bold: c.bold},
        ),
      )
    }
    return out.join('\n')
  }
}

/** Switch to the alternate screen and hide the cursor; and back. */
const ALT_SCREEN_ON = '\x1b[?1049h\x1b[?25l'
const ALT_SCREEN_OFF = '\x1b[?25h\x1b[?1049l'

/** One redraw: home, each line cleared to its end, everything below cleared. */
function frame(text: string): string {
  return '\x1b[H' + text.split('\n').join('\x1b[K\n') + '\x1b[K\n\x1b[J'
}

function pick(row: Record<string, string | number>, columns: readonly Column[]): (string | number)[] {
  return columns.map((col) => row[col.header])
}
