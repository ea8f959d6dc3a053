import {Flags} from '@oclif/core'

import {DLQ_REASONS} from '../bus/channels.js'
import {formatDuration} from '../bus/durations.js'
import type {BusMetrics, ChannelMetrics} from '../bus/metrics.js'
import {sleepLong} from '../bus/timers.js'
import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../cli/exit-codes.js'
import {isTty, palette, table} from '../cli/output.js'
import {onInterrupt} from '../cli/progress.js'

const FORMATS = ['table', 'json', 'prometheus'] as const
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
    format: Flags.option({options: FORMATS, summary: 'Output format.', default: 'table' as const})(),
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
    const redraw = isTty() && format !== 'json'
    const {out} = this
    // A reader that goes away (`metrics --watch | head`) ends the watch at once, with exit 0.
    const stop = new AbortController()
    interrupt.signal.addEventListener('abort', () => stop.abort(), {once: true})
    out.onClose(() => stop.abort())
    try {
      while (!stop.signal.aborted) {
        const m = await read()
        const text = format === 'json' ? JSON.stringify(m) : await this.render(m, format)
        await out.write((redraw ? '\x1b[H\x1b[2J' : '') + text + '\n')
        await sleepLong(flags.watch * 1000, stop.signal)
      }
    } finally {
      interrupt.dispose()
    }
    if (out.closed) return undefined
    return this.exit(ExitCode.INTERRUPTED)
  }

  private async render(m: BusMetrics | ChannelMetrics, format: 'table' | 'prometheus'): Promise<string> {
    if (format === 'prometheus') {
      const {toPrometheus} = await import('../bus/prometheus.js')
      return toPrometheus('global' in m ? m : {channels: [m]})
    }
    const c = palette()
    const channels = 'global' in m ? m.channels : [m]
    const out: string[] = []
    if ('global' in m) {
      const g = m.global
      out.push(
        c.bold(`raptor metrics (prefix ${m.prefix}, ${m.time})`),
        `published ${g.counters.published}  delivered ${g.counters.delivered}  acked ${g.counters.acked}  ` +
          `failed ${g.counters.failed}  retried ${g.counters.retried}  deadLettered ${g.counters.deadLettered}  ` +
          `requeued ${g.counters.requeued}  liveDelivered ${g.counters.liveDelivered}  ` +
          `duplicates ${g.counters.duplicates}  trimmedWhilePending ${g.counters.trimmedWhilePending}`,
        `streams ${g.streamLength} entries  lag ${g.lag}  pending ${g.pending}  ` +
          `DLQ ${g.dlqTotal} (${DLQ_REASONS.map((r) => `${r} ${g.dlqDepth[r]}`).join(', ')})`,
        `subscribers ${m.subscribers}  agents ${m.agents.live} live, ${m.agents.stale} stale`,
        '',
      )
    }
    out.push(
      table(
        [
          'CHANNEL',
          'RETENTION',
          'LENGTH',
          'PUBLISHED',
          'DELIVERED',
          'ACKED',
          'FAILED',
          'RETRIED',
          'DEAD',
          'REQUEUED',
          'DLQ',
        ],
        channels.map((ch) => [
          ch.channel,
          ch.retentionMs === null ? '-' : formatDuration(ch.retentionMs),
          ch.streamLength,
          ch.counters.published,
          ch.counters.delivered,
          ch.counters.acked,
          ch.counters.failed,
          ch.counters.retried,
          ch.counters.deadLettered,
          ch.counters.requeued,
          DLQ_REASONS.reduce((n, r) => n + ch.dlqDepth[r], 0),
        ]),
        c,
      ),
    )
    const handlers = channels.flatMap((ch) => ch.handlers.map((h) => ({ch: ch.channel, h})))
    if (handlers.length > 0) {
      out.push(
        '',
        table(
          [
            'HANDLER',
            'CHANNEL',
            'LAG',
            'PENDING',
            'CONSUMERS',
            'DELIVERED',
            'ACKED',
            'FAILED',
            'DEAD',
            'REQUEUED',
          ],
          handlers.map(({ch, h}) => [
            h.handler,
            ch,
            h.lag ?? '?',
            h.pending,
            h.consumers,
            h.counters.delivered,
            h.counters.acked,
            h.counters.failed,
            h.counters.deadLettered,
            h.counters.requeued,
          ]),
          c,
        ),
      )
    }
    return out.join('\n')
  }
}
