import type {Redis} from 'ioredis'

import {GUILDS, Topology, channelMatcher, type ChannelConfig, type ChannelSpec} from './channels.js'
import {DEFAULT_MAX_PAYLOAD_BYTES, loadConfig, type RaptorConfig} from './config.js'
import {DEFAULT_REDIS_URL, openConnection, type ConnectionOptions} from './connection.js'
import {ClosedError, InvalidInputError} from './errors.js'
import type {PayloadSchema, PublishInput, RaptorEvent} from './events.js'
import {baseHealth, overallStatus, type HealthOptions, type HealthReport} from './health.js'
import {History, type HistoryEntry, type ReplayWindow} from './history.js'
import {Keys, PREFIX_PATTERN} from './keys.js'
import {LiveHub, type LiveHandler, type LiveMeta, type SubscribeOptions, type Subscription} from './live.js'
import {Publisher} from './publisher.js'
import {defineScripts, type ScriptedRedis} from './scripts.js'
import {compareIds, idTime} from './stream-ids.js'

/** Options of `RaptorBus.connect`. */
export interface BusOptions extends ConnectionOptions {
  /** Key prefix: every key and pub/sub channel is under it. @defaultValue `'raptor'` */
  prefix?: string
  /** Channels and channel patterns added to the built-in topology. */
  channels?: ChannelConfig[]
  /** Payload schema per event type (zod schemas). */
  schemas?: Record<string, PayloadSchema>
  /** Largest payload accepted, in bytes. @defaultValue 1048576 (1 MiB) */
  maxPayloadBytes?: number
  /** Default `source` of published events. @defaultValue `'raptorbus'` */
  source?: string
  /**
   * A config file to read (`raptor.config.json|js|mjs`); its values apply where these options are
   * silent. `true` looks for one in the working directory. @defaultValue false
   */
  config?: string | boolean
}

/** One channel of the topology with its current state. */
export interface ChannelInfo extends ChannelSpec {
  /** Entries in its stream (0 for a pattern). */
  length: number
  /** Server time of the last event, or null. */
  lastEventAt: string | null
}

/** Options of `subscribe`. */
export interface LiveSubscribeOptions extends SubscribeOptions {
  /**
   * Backfill: first deliver the history of the last `since` ms of every matching channel, then live
   * events, with no gap and no duplicate at the seam.
   */
  since?: number
}

/**
 * The raptor event bus: publish, subscribe live, read history, and (in later modules) consume
 * durably, recover dead letters and read metrics. Create it with {@link RaptorBus.connect}.
 */
export class RaptorBus {
  /** Key names under this bus's prefix. */
  readonly keys: Keys
  /** The channel topology in force. */
  readonly topology: Topology
  /** History reader (streams). */
  readonly history: History
  private readonly publisher: Publisher
  private live?: Promise<LiveHub>
  private subConn?: Redis
  private closed = false

  private constructor(
    /** The command connection (with the raptor scripts defined). */
    readonly redis: ScriptedRedis,
    readonly options: Required<Pick<BusOptions, 'prefix' | 'maxPayloadBytes' | 'source' | 'redisUrl'>> &
      BusOptions,
  ) {
    this.keys = new Keys(options.prefix)
    this.topology = new Topology(options.channels)
    this.history = new History(redis, this.keys, this.topology)
    this.publisher = new Publisher({
      redis,
      keys: this.keys,
      topology: this.topology,
      schemas: options.schemas ?? {},
      maxPayloadBytes: options.maxPayloadBytes,
      defaultSource: options.source,
    })
  }

  /**
   * Connects to Redis and returns a ready bus.
   * @throws ConnectionError when Redis cannot be reached within `connectTimeoutMs`
   * @throws ConfigError when the config file is invalid
   */
  static async connect(options: BusOptions = {}): Promise<RaptorBus> {
    let fileConfig: RaptorConfig = {}
    if (options.config) fileConfig = await loadConfig(options.config === true ? undefined : options.config)
    const prefix = options.prefix ?? fileConfig.prefix ?? 'raptor'
    if (!PREFIX_PATTERN.test(prefix)) {
      throw new InvalidInputError(
        `invalid prefix '${prefix}': use letters, digits, _ and -, optionally joined by ':'`,
      )
    }
    const merged = {
      ...options,
      redisUrl: options.redisUrl ?? fileConfig.redisUrl ?? DEFAULT_REDIS_URL,
      prefix,
      channels: [...(fileConfig.channels ?? []), ...(options.channels ?? [])],
      schemas: {...fileConfig.schemas, ...options.schemas},
      maxPayloadBytes: options.maxPayloadBytes ?? fileConfig.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      source: options.source ?? 'raptorbus',
    }
    // Build the topology before connecting so that a bad config fails without touching Redis.
    new Topology(merged.channels)
    const redis = defineScripts(await openConnection(merged, `${prefix}:cmd`))
    return new RaptorBus(redis, merged)
  }

  private ensureOpen(): void {
    if (this.closed) throw new ClosedError()
  }

  /**
   * Publishes one event and returns its id (`evt-<uuid>`).
   * @throws InvalidInputError, SchemaViolationError, PayloadTooLargeError — nothing was written
   * @throws RoutingError — unknown channel; the event was parked in DLQ routing_error
   */
  async publish(input: PublishInput): Promise<string> {
    this.ensureOpen()
    return this.publisher.publish(input)
  }

  /**
   * Publishes many events in one pipelined round trip. All are checked first: when one is invalid
   * (or addressed to an unknown channel), nothing is written.
   */
  async publishMany(inputs: readonly PublishInput[]): Promise<string[]> {
    this.ensureOpen()
    return this.publisher.publishMany(inputs)
  }

  private hub(): Promise<LiveHub> {
    this.live ??= openConnection(this.options, this.keys.subscriberClientName()).then((conn) => {
      this.subConn = conn
      return new LiveHub(conn, this.keys)
    })
    return this.live
  }

  /**
   * Subscribes to live events on channels matching the patterns (`sys.alert.*`; `**` for every
   * channel); at-most-once. Resolves once Redis has confirmed the subscription. With `since`, the
   * matching history is delivered first, seamlessly.
   */
  async subscribe(
    patterns: string | readonly string[],
    handler: LiveHandler,
    options: LiveSubscribeOptions = {},
  ): Promise<Subscription> {
    this.ensureOpen()
    const list = typeof patterns === 'string' ? [patterns] : [...patterns]
    const hub = await this.hub()
    if (options.since === undefined) return hub.subscribe(list, handler, options)
    const sub = await hub.subscribe(list, handler, {...options, hold: true})
    const last = new Map<string, string>()
    for await (const entry of this.backfill(list, options.since)) {
      last.set(entry.channel, entry.streamId)
      if (entry.event) await handler(entry.event, {channel: entry.channel, streamId: entry.streamId})
    }
    sub.release((meta: LiveMeta) => {
      const seen = last.get(meta.channel)
      return seen !== undefined && compareIds(meta.streamId, seen) <= 0
    })
    return sub
  }

  /** History of every channel matching the patterns over the last `since` ms, merged in time order. */
  private async *backfill(patterns: string[], since: number): AsyncGenerator<HistoryEntry> {
    const matchers = patterns.map(channelMatcher)
    const channels = (await this.history.knownChannels()).filter((c) => matchers.some((m) => m(c)))
    const now = await this.history.serverTime()
    const entries: HistoryEntry[] = []
    for (const c of channels)
      for await (const e of this.history.entries(c, {since, until: now})) entries.push(e)
    entries.sort((a, b) => compareIds(a.streamId, b.streamId))
    yield* entries
  }

  /** Live events of a guild's broadcast channel (`research`, `muse`, `matrix`, `guardians`). */
  subscribeToGuild(
    guild: (typeof GUILDS)[number] | string,
    handler: LiveHandler,
    options?: LiveSubscribeOptions,
  ) {
    return this.subscribe(`sys.guild.${guild}.broadcast`, handler, options)
  }

  /** Live events of every alert channel (`sys.alert.*`). */
  subscribeToAlerts(handler: LiveHandler, options?: LiveSubscribeOptions) {
    return this.subscribe('sys.alert.*', handler, options)
  }

  /** Live events of `sys.state.update`. */
  subscribeToStateUpdates(handler: LiveHandler, options?: LiveSubscribeOptions) {
    return this.subscribe('sys.state.update', handler, options)
  }

  /** Ends every live subscription of this bus. */
  async unsubscribeAll(): Promise<void> {
    if (this.live) await (await this.live).clear()
  }

  /**
   * One event by id from history.
   * @throws NotFoundError when it was never published or has expired
   */
  async getEvent(eventId: string): Promise<RaptorEvent> {
    this.ensureOpen()
    return (await this.history.get(eventId)).event
  }

  /** A channel's history in publish order, within its retention, as an async iterator. */
  replay(channel: string, window: ReplayWindow = {}): AsyncGenerator<RaptorEvent> {
    this.ensureOpen()
    return this.history.events(channel, window)
  }

  /** The topology with each channel's stream length and last event time. */
  async channels(): Promise<ChannelInfo[]> {
    this.ensureOpen()
    const names = await this.history.knownChannels()
    const pipeline = this.redis.pipeline()
    for (const name of names) {
      pipeline.xlen(this.keys.stream(name))
      pipeline.xrevrange(this.keys.stream(name), '+', '-', 'COUNT', 1)
    }
    const results = (await pipeline.exec()) ?? []
    const infos: ChannelInfo[] = names.map((name, i) => {
      const spec = this.topology.resolve(name) ?? {name, retentionMs: 0, pattern: false, builtin: false}
      const last = results[2 * i + 1]?.[1] as [string, string[]][] | undefined
      return {
        ...spec,
        name,
        length: Number(results[2 * i]?.[0] ? 0 : results[2 * i]?.[1]),
        lastEventAt: last && last.length > 0 ? new Date(idTime(last[0][0])).toISOString() : null,
      }
    })
    for (const spec of this.topology.list())
      if (spec.pattern) infos.push({...spec, length: 0, lastEventAt: null})
    return infos
  }

  /** Redis reachability, version, latency, clients, memory and live agents. */
  async health(options: HealthOptions = {}): Promise<HealthReport> {
    this.ensureOpen()
    const report = await baseHealth(this.redis, this.keys, options)
    return {...report, status: overallStatus(report.checks)}
  }

  /** Closes every connection of this bus. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.live) {
      const hub = await this.live.catch(() => undefined)
      await hub?.clear().catch(() => {})
    }
    for (const conn of [this.subConn, this.redis]) {
      if (!conn) continue
      if (conn.status === 'ready') await conn.quit().catch(() => conn.disconnect())
      else conn.disconnect()
    }
  }
}

let shared: Promise<RaptorBus> | undefined

/**
 * The process-wide bus (the seed's `get_bus()`), connected on first use from `REDIS_URL`,
 * `RAPTOR_PREFIX` and the config file in the working directory.
 */
export function getBus(options: BusOptions = {}): Promise<RaptorBus> {
  shared ??= RaptorBus.connect({
    redisUrl: process.env.REDIS_URL,
    prefix: process.env.RAPTOR_PREFIX,
    config: process.env.RAPTOR_CONFIG ?? true,
    ...options,
  }).catch((error) => {
    shared = undefined
    throw error
  })
  return shared
}
