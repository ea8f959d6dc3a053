import {DLQ_REASONS, ROUTING_DLQ_CHANNEL, type DlqReason, type Topology} from './channels.js'
import {allNodes, anySlotPipeline, isCluster, masters, type RedisClient} from './cluster.js'
import {readAgents} from './health.js'
import type {History} from './history.js'
import type {Keys} from './keys.js'

/** The counters kept in every `stats` and `hstats:<handler>` hash (docs/design.md). */
export const COUNTERS = [
  'published',
  'liveDelivered',
  'delivered',
  'acked',
  'failed',
  'retried',
  'deadLettered',
  'duplicates',
  'requeued',
  'trimmedWhilePending',
] as const
/** One counter name. */
export type CounterName = (typeof COUNTERS)[number]
/** Counter values (0 when never incremented). */
export type Counters = Record<CounterName, number>

/** One handler (consumer group) on one channel. */
export interface HandlerMetrics {
  handler: string
  /** The handler's counters on this channel (`hstats:<handler>`). */
  counters: Counters
  /**
   * Entries not yet delivered to the group: on the channel stream plus on the handler's requeue
   * stream. Null when Redis cannot tell (`XINFO GROUPS` lag is nil).
   */
  lag: number | null
  /** Entries delivered but not yet acknowledged (the PEL), both streams. */
  pending: number
  /** Consumers of the group on the channel stream. */
  consumers: number
  /** Entries in the handler's requeue stream `rq:<handler>`. */
  requeueLength: number
}

/** Metrics of one channel. */
export interface ChannelMetrics {
  channel: string
  /** History retention in ms; null for a channel outside the topology. */
  retentionMs: number | null
  /** Entries in the history stream. */
  streamLength: number
  counters: Counters
  /** Entries in each DLQ stream of this channel. */
  dlqDepth: Record<DlqReason, number>
  handlers: HandlerMetrics[]
}

/** Bus-wide metrics: the sums over channels, each channel, live subscribers and agents. */
export interface BusMetrics {
  /** Redis server time of the snapshot (RFC 3339). */
  time: string
  prefix: string
  /** Where the figures come from: one server, or every master of a Redis Cluster. */
  redis: {deployment: 'standalone' | 'cluster'; masters: number}
  global: {
    counters: Counters
    streamLength: number
    dlqDepth: Record<DlqReason, number>
    /** Sum of every DLQ depth. */
    dlqTotal: number
    /** Sum of the handler lags that are known. */
    lag: number
    pending: number
  }
  channels: ChannelMetrics[]
  /** Live subscriber connections (`tail`, `bus.subscribe`) under this prefix. */
  subscribers: number
  agents: {live: number; stale: number}
}

function zeroCounters(): Counters {
  return Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counters
}

function zeroDepths(): Record<DlqReason, number> {
  return Object.fromEntries(DLQ_REASONS.map((r) => [r, 0])) as Record<DlqReason, number>
}

function toCounters(hash: Record<string, string> | undefined): Counters {
  const counters = zeroCounters()
  for (const c of COUNTERS) counters[c] = Number(hash?.[c] ?? 0) || 0
  return counters
}

/** Parses `XINFO GROUPS` (an array of flat field/value arrays). */
function parseGroups(
  reply: unknown,
): {name: string; lag: number | null; pending: number; consumers: number; last: string}[] {
  if (!Array.isArray(reply)) return []
  return reply.map((flat: unknown[]) => {
    const f: Record<string, unknown> = {}
    for (let i = 0; i + 1 < flat.length; i += 2) f[String(flat[i])] = flat[i + 1]
    return {
      name: String(f.name),
      lag: f.lag === null || f.lag === undefined ? null : Number(f.lag),
      pending: Number(f.pending ?? 0),
      consumers: Number(f.consumers ?? 0),
      last: String(f['last-delivered-id'] ?? '0-0'),
    }
  })
}

/** Lag ceiling counted by hand when Redis reports it as nil. */
const LAG_SCAN_CAP = 10_000

/** Reads the counters and stream state of channels from Redis. Reached through `bus.metrics()`. */
export class MetricsReader {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly topology: Topology,
    private readonly history: History,
  ) {}

  /** Metrics of every known channel (and the routing-error pseudo-channel), summed globally. */
  async all(): Promise<BusMetrics> {
    const channels = [...new Set([...(await this.history.knownChannels()), ROUTING_DLQ_CHANNEL])]
    const [perChannel, subscribers, now] = await Promise.all([
      this.channels(channels),
      this.subscribers(),
      this.history.serverTime(),
    ])
    const agents = await readAgents(this.redis, this.keys, now)
    const global = {
      counters: zeroCounters(),
      streamLength: 0,
      dlqDepth: zeroDepths(),
      dlqTotal: 0,
      lag: 0,
      pending: 0,
    }
    for (const m of perChannel) {
      for (const c of COUNTERS) global.counters[c] += m.counters[c]
      global.streamLength += m.streamLength
      for (const r of DLQ_REASONS) {
        global.dlqDepth[r] += m.dlqDepth[r]
        global.dlqTotal += m.dlqDepth[r]
      }
      for (const h of m.handlers) {
        global.lag += h.lag ?? 0
        global.pending += h.pending
      }
    }
    // Channels that never saw anything are noise: keep those with a stream, counters, DLQ or groups.
    const active = perChannel.filter(
      (m) =>
        m.streamLength > 0 ||
        m.handlers.length > 0 ||
        COUNTERS.some((c) => m.counters[c] > 0) ||
        DLQ_REASONS.some((r) => m.dlqDepth[r] > 0),
    )
    return {
      time: new Date(now).toISOString(),
      prefix: this.keys.prefix,
      redis: {
        deployment: isCluster(this.redis) ? 'cluster' : 'standalone',
        masters: masters(this.redis).length,
      },
      global,
      channels: active,
      subscribers,
      agents: {live: agents.filter((a) => !a.stale).length, stale: agents.filter((a) => a.stale).length},
    }
  }

  /** Metrics of one channel. */
  async channel(channel: string): Promise<ChannelMetrics> {
    const [m] = await this.channels([channel])
    return m
  }

  private async channels(names: string[]): Promise<ChannelMetrics[]> {
    const {keys} = this
    const pipeline = anySlotPipeline(this.redis)
    for (const c of names) {
      pipeline.hgetall(keys.stats(c))
      pipeline.xlen(keys.stream(c))
      pipeline.xinfo('GROUPS', keys.stream(c))
      for (const r of DLQ_REASONS) pipeline.xlen(keys.dlq(c, r))
    }
    const replies = (await pipeline.exec()) ?? []
    const stride = 3 + DLQ_REASONS.length
    const metrics: ChannelMetrics[] = names.map((channel, i) => {
      const at = (k: number) => replies[i * stride + k] ?? [null, null]
      const dlqDepth = zeroDepths()
      DLQ_REASONS.forEach((r, k) => (dlqDepth[r] = Number(at(3 + k)[1] ?? 0)))
      const groups = at(2)[0] ? [] : parseGroups(at(2)[1])
      return {
        channel,
        retentionMs: this.topology.retentionMs(channel) ?? null,
        streamLength: Number(at(1)[1] ?? 0),
        counters: toCounters(at(0)[1] as Record<string, string>),
        dlqDepth,
        handlers: groups.map((g) => ({
          handler: g.name,
          counters: zeroCounters(),
          lag: g.lag,
          pending: g.pending,
          consumers: g.consumers,
          requeueLength: 0,
          last: g.last,
        })),
      }
    })
    await this.fillHandlers(metrics)
    return metrics
  }

  /** Adds each handler's counters and its requeue stream's length, lag and pending. */
  private async fillHandlers(metrics: ChannelMetrics[]): Promise<void> {
    const handlers = metrics.flatMap((m) => m.handlers.map((h) => ({channel: m.channel, h})))
    if (handlers.length === 0) return
    const pipeline = anySlotPipeline(this.redis)
    for (const {channel, h} of handlers) {
      pipeline.hgetall(this.keys.handlerStats(channel, h.handler))
      pipeline.xlen(this.keys.requeue(channel, h.handler))
      pipeline.xinfo('GROUPS', this.keys.requeue(channel, h.handler))
    }
    const replies = (await pipeline.exec()) ?? []
    for (let i = 0; i < handlers.length; i++) {
      const {channel, h} = handlers[i]
      h.counters = toCounters(replies[3 * i]?.[1] as Record<string, string>)
      h.requeueLength = Number(replies[3 * i + 1]?.[1] ?? 0)
      const rq = replies[3 * i + 2]?.[0] ? [] : parseGroups(replies[3 * i + 2]?.[1])
      const group = rq.find((g) => g.name === h.handler)
      const last = (h as HandlerMetrics & {last?: string}).last
      delete (h as HandlerMetrics & {last?: string}).last
      if (h.lag === null && last !== undefined) h.lag = await this.countAfter(this.keys.stream(channel), last)
      // No group on the requeue stream yet: it is created at 0, so everything there is still to deliver.
      const rqLag = group
        ? (group.lag ?? (await this.countAfter(this.keys.requeue(channel, h.handler), group.last)))
        : h.requeueLength
      h.lag = h.lag === null || rqLag === null ? null : h.lag + rqLag
      h.pending += group?.pending ?? 0
    }
  }

  /** Counts entries after an id when Redis cannot compute a group's lag (capped). */
  private async countAfter(stream: string, after: string): Promise<number | null> {
    const page = await this.redis.xrange(stream, `(${after}`, '+', 'COUNT', LAG_SCAN_CAP + 1)
    return page.length > LAG_SCAN_CAP ? null : page.length
  }

  /**
   * Live subscriber connections: CLIENT LIST entries named after this prefix's subscriber name, on
   * every node of a cluster (a subscriber may be connected to any of them).
   */
  async subscribers(): Promise<number> {
    const name = this.keys.subscriberClientName()
    const lists = await Promise.all(
      allNodes(this.redis).map((node) => node.client('LIST') as Promise<string>),
    )
    let n = 0
    for (const line of lists.join('\n').split('\n')) {
      const match = / name=(\S*)/.exec(line)
      if (match && match[1] === name) n++
    }
    return n
  }
}
