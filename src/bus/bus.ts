import {randomUUID} from 'node:crypto'

import type {Cluster} from 'ioredis'

import {
  DLQ_REASONS,
  DLQ_RETENTION_MS,
  GUILDS,
  Topology,
  assertChannelPattern,
  channelMatcher,
  type ChannelConfig,
  type ChannelSpec,
} from './channels.js'
import {anySlotPipeline, dbOf, isCluster, type RedisClient} from './cluster.js'
import {DEFAULT_MAX_PAYLOAD_BYTES, loadConfig, type RaptorConfig} from './config.js'
import {
  DEFAULT_REDIS_URL,
  adoptConnection,
  closeConnection,
  openConnection,
  type ConnectionChange,
  type ConnectionOptions,
} from './connection.js'
import {isPermissionDenied} from './acl.js'
import {ClosedError, InvalidInputError, type MalformedEntryError} from './errors.js'
import {waitForReplicas, type ReplicaWait} from './sentinel.js'
import {mergeTls} from './tls.js'
import {
  payloadSchemas,
  type CloudEventInput,
  type Payload,
  type PayloadSchema,
  type PublishInput,
  type RaptorEvent,
} from './envelope.js'
import type {Consumer, ConsumeOptions} from './consumer.js'
import type {Dlq} from './dlq.js'
import type {HandlerDefinition} from './handler.js'
import {
  baseHealth,
  overallStatus,
  stalledCheck,
  thresholdChecks,
  type HealthOptions,
  type HealthReport,
} from './health.js'
import {History, malformedEntry, type HistoryEntry, type ReplayWindow} from './history.js'
import {Keys, PREFIX_PATTERN} from './keys.js'
import {LiveHub, type LiveHandler, type LiveMeta, type SubscribeOptions, type Subscription} from './live.js'
import type {BusMetrics, ChannelMetrics, MetricsReader} from './metrics.js'
import {Publisher, type PublishItem} from './publisher.js'
import type {ReplayToOptions, ReplayToResult} from './replay.js'
import type {Replies} from './request.js'
import {defineScripts, type ScriptedRedis} from './scripts.js'
import {compareIds, idTime} from './stream-ids.js'
import {activeTraceFields, startRequestSpan} from './tracing.js'

/** The dead-letter operations of a bus (`bus.dlq`). */
export type DlqApi = Pick<Dlq, 'list' | 'entries' | 'depths' | 'requeue' | 'purge' | 'expandIds'>

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
  /**
   * Replicas that must have each publish before `publish`/`publishMany` resolve (`WAIT`), so that a
   * failover, which promotes a replica, loses no acknowledged publish. Fewer within `timeoutMs` is a
   * `TimeoutError` (the events are on the master). `{replicas: 0}` turns it off.
   * @defaultValue `{replicas: 1, timeoutMs: 2000}` for a `redis-sentinel://` URL, else none
   */
  replicaWait?: ReplicaWait
}

/** The replica wait of a bus: as given, else one replica on Sentinel. */
function replicaWaitFor(options: BusOptions, url: string | undefined): ReplicaWait | undefined {
  if (options.replicaWait) return options.replicaWait.replicas > 0 ? options.replicaWait : undefined
  if (options.redis || url === undefined) return undefined
  return /^rediss?-sentinel:\/\//i.test(url.trim()) ? {replicas: 1, timeoutMs: 2000} : undefined
}

/** One channel of the topology with its current state. */
export interface ChannelInfo extends ChannelSpec {
  /** Entries in its stream (0 for a pattern). */
  length: number
  /** Server time of the last event, or null. */
  lastEventAt: string | null
}

/**
 * A position in the history of several channels: what a reader has already seen. `raptor serve`
 * hands it to its SSE and WebSocket clients so that a reconnecting client resumes where it stopped.
 */
export interface StreamCursor {
  /** Channel → stream entry id of the last event already seen on that channel. */
  after: Readonly<Record<string, string>>
  /** Channels not named in `after`: their history from this Redis server time (ms since the epoch) on. */
  from: number
}

/** Options of `subscribe`. */
export interface LiveSubscribeOptions extends SubscribeOptions {
  /**
   * Backfill: first deliver the history of the last `since` ms of every matching channel, then live
   * events, with no gap and no duplicate at the seam.
   */
  since?: number
  /**
   * Resume: first deliver the history of every matching channel after the cursor, then live events,
   * with no gap and no duplicate at the seam (the same stitching as `since`).
   */
  resume?: StreamCursor
  /**
   * Ends a backfill early: aborting it stops delivering history, ends the subscription, and makes
   * `subscribe` reject with the signal's reason.
   */
  signal?: AbortSignal
  /**
   * With `since` or `resume`: most live events held while the history is delivered. Past it the
   * hold is emptied and the history read again from where it stopped, so the seam still has no gap.
   * @defaultValue 10000
   */
  maxHeld?: number
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
  /** Dead-letter queues: list, requeue, purge, depths (see `Dlq`). */
  readonly dlq: DlqApi
  private readonly publisher: Publisher
  private metricsReader?: Promise<MetricsReader>
  private dlqImpl?: Promise<Dlq>
  private live?: Promise<LiveHub>
  private subConn?: RedisClient
  private replies?: Replies
  private readonly consumers = new Set<Consumer>()
  private closed = false

  private constructor(
    /** The command connection (with the raptor scripts defined). */
    readonly redis: ScriptedRedis,
    readonly options: Required<Pick<BusOptions, 'prefix' | 'maxPayloadBytes' | 'source' | 'redisUrl'>> &
      BusOptions,
  ) {
    // The database the command connection is on (pub/sub names carry it: pub/sub ignores databases).
    // On a cluster, live names are shard channels under their channel's hash tag.
    this.keys = new Keys(options.prefix, dbOf(redis), isCluster(redis))
    this.topology = new Topology(options.channels)
    this.history = new History(redis, this.keys, this.topology)
    this.publisher = new Publisher({
      redis,
      keys: this.keys,
      topology: this.topology,
      schemas: payloadSchemas(options.schemas),
      maxPayloadBytes: options.maxPayloadBytes,
      defaultSource: options.source,
    })
    // The operator modules (DLQ, metrics) load on first use, so a one-shot publish never pays for them.
    this.dlq = {
      list: async (filter) => (await this.loadDlq()).list(filter),
      entries: (filter) => {
        const load = () => this.loadDlq()
        return (async function* () {
          yield* (await load()).entries(filter)
        })()
      },
      depths: async () => (await this.loadDlq()).depths(),
      requeue: async (options) => (await this.loadDlq()).requeue(options),
      purge: async (options) => (await this.loadDlq()).purge(options),
      expandIds: async (ids) => (await this.loadDlq()).expandIds(ids),
    }
  }

  private loadDlq(): Promise<Dlq> {
    this.dlqImpl ??= import('./dlq.js').then(
      ({Dlq}) =>
        new Dlq({
          redis: this.redis,
          keys: this.keys,
          topology: this.topology,
          history: this.history,
          prepare: (input) => this.publisher.prepare(input),
        }),
    )
    return this.dlqImpl
  }

  private reader(): Promise<MetricsReader> {
    this.metricsReader ??= import('./metrics.js').then(
      ({MetricsReader}) => new MetricsReader(this.redis, this.keys, this.topology, this.history),
    )
    return this.metricsReader
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
    if (options.redis && options.redisUrl !== undefined)
      throw new InvalidInputError('give RaptorBus.connect either redisUrl or redis (a client), not both')
    const merged = {
      ...options,
      redisUrl: options.redisUrl ?? fileConfig.redisUrl ?? DEFAULT_REDIS_URL,
      prefix,
      channels: [...(fileConfig.channels ?? []), ...(options.channels ?? [])],
      // No prototype: an event type named `constructor` or `__proto__` is just a name.
      schemas: payloadSchemas(fileConfig.schemas, options.schemas),
      maxPayloadBytes: options.maxPayloadBytes ?? fileConfig.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      source: options.source ?? 'raptorbus',
      tls: mergeTls(options.tls, fileConfig.tls),
      replicaWait: replicaWaitFor(options, options.redisUrl ?? fileConfig.redisUrl),
    }
    // Build the topology before connecting so that a bad config fails without touching Redis.
    new Topology(merged.channels)
    merged.onConnectionChange = linkMonitor(options.onConnectionChange)
    const redis = defineScripts(
      options.redis
        ? await adoptConnection(options.redis, merged)
        : await openConnection(merged, `${prefix}:cmd`),
    )
    // Detected once: the bus's other connections (live, consumers) are of the same kind.
    merged.cluster = isCluster(redis)
    return new RaptorBus(redis, merged)
  }

  private ensureOpen(): void {
    if (this.closed) throw new ClosedError()
  }

  /**
   * Publishes one event and returns its id: `{channel, type, payload, …}` ({@link PublishInput}),
   * or a whole CloudEvent ({@link CloudEventInput}: anything with `specversion`, e.g. a `cloudevents`
   * SDK event), whose every attribute is kept exactly. raptor makes the id (`evt-<uuid>`) and the
   * time only when the producer gives none. Inside an active OpenTelemetry span, the event carries
   * its trace context (`traceparent`/`tracestate`).
   * @throws InvalidInputError, SchemaViolationError, PayloadTooLargeError — nothing was written
   * @throws RoutingError — unknown channel; the event was parked in DLQ routing_error
   */
  async publish(input: PublishInput | CloudEventInput): Promise<string> {
    this.ensureOpen()
    const id = await this.publisher.publish(input)
    if (this.options.replicaWait) await waitForReplicas(this.redis, this.options.replicaWait, [id])
    return id
  }

  /**
   * Publishes many events (each a {@link PublishInput} or a whole CloudEvent) in one pipelined round
   * trip. All are checked first: when one is invalid, nothing is written; events addressed to an
   * unknown channel are parked in DLQ routing_error (SPEC §2) and nothing else is written.
   * @throws RoutingError (for the first unknown channel; every such event was parked)
   */
  async publishMany(inputs: readonly PublishItem[]): Promise<string[]> {
    this.ensureOpen()
    const ids = await this.publisher.publishMany(inputs)
    if (this.options.replicaWait) await waitForReplicas(this.redis, this.options.replicaWait, ids)
    return ids
  }

  private hub(): Promise<LiveHub> {
    this.live ??= this.redis.isCluster
      ? this.shardedHub()
      : openConnection(this.options, this.keys.subscriberClientName()).then((conn) => {
          this.subConn = conn
          return new LiveHub(conn, this.keys, this.redis)
        })
    return this.live
  }

  /** On a cluster: live fan-out over sharded pub/sub (see live-sharded.ts). */
  private async shardedHub(): Promise<LiveHub> {
    const {openShardedHub} = await import('./live-sharded.js')
    const {hub, sub} = await openShardedHub(
      this.redis as unknown as Cluster,
      this.keys,
      this.keys.subscriberClientName(),
      {knownChannels: () => this.history.knownChannels()},
    )
    // Classic SUBSCRIBE (request replies) works on it too: replies are not per channel.
    this.subConn = sub
    return hub
  }

  /**
   * Subscribes to live events on channels matching the patterns (`sys.alert.*`; `**` for every
   * channel); at-most-once. Resolves once Redis has confirmed the subscription. With `since`, the
   * matching history is delivered first, seamlessly.
   * @throws InvalidInputError when a pattern is not a channel name or glob
   */
  async subscribe(
    patterns: string | readonly string[],
    handler: LiveHandler,
    options: LiveSubscribeOptions = {},
  ): Promise<Subscription> {
    this.ensureOpen()
    const list = typeof patterns === 'string' ? [patterns] : [...patterns]
    list.forEach(assertChannelPattern)
    const hub = await this.hub()
    const {since, resume, signal} = options
    if (since === undefined && resume === undefined) return hub.subscribe(list, handler, options)
    if (since !== undefined && resume !== undefined)
      throw new InvalidInputError('subscribe takes since or resume, not both')
    // Live events are held while the history is delivered, then released without those it covered.
    // A hold that overflows (a long backfill into a slow handler) is emptied and the history read
    // again from where it stopped: every held event is also in history, so the seam has no gap and
    // memory stays bounded.
    const sub = await hub.subscribe(list, handler, {...options, hold: true})
    const last = new Map<string, string>()
    try {
      // `since` is pinned to server time once, so that a second pass reads the same window.
      const from = since === undefined ? undefined : (await this.history.serverTime()) - since
      const windowOf = (channel: string): ReplayWindow => {
        const seen = last.get(channel)
        if (seen !== undefined) return {after: seen}
        if (resume === undefined) return {from}
        return Object.hasOwn(resume.after, channel) ? {after: resume.after[channel]} : {from: resume.from}
      }
      do {
        for await (const entry of this.backfill(list, windowOf)) {
          signal?.throwIfAborted()
          last.set(entry.channel, entry.streamId)
          if (entry.event) await handler(entry.event, {channel: entry.channel, streamId: entry.streamId})
          else options.onError?.(malformedEntry(entry))
        }
        signal?.throwIfAborted()
      } while (sub.takeOverflow())
    } catch (error) {
      // Never leave a held subscription behind: it would keep every live event in memory.
      await sub.unsubscribe()
      throw error
    }
    sub.release((meta: LiveMeta) => {
      const seen =
        last.get(meta.channel) ??
        (resume && Object.hasOwn(resume.after, meta.channel) ? resume.after[meta.channel] : undefined)
      return seen !== undefined && compareIds(meta.streamId, seen) <= 0
    })
    return sub
  }

  /**
   * History of every channel matching the patterns (each over its own window, up to now), merged in
   * stream-id order. Streams page by page (a k-way merge), so a long window never sits in memory.
   */
  private async *backfill(
    patterns: string[],
    windowOf: (channel: string) => ReplayWindow,
  ): AsyncGenerator<HistoryEntry> {
    const matchers = patterns.map(channelMatcher)
    const channels = (await this.history.knownChannels()).filter((c) => matchers.some((m) => m(c)))
    const now = await this.history.serverTime()
    const heads: {iter: AsyncGenerator<HistoryEntry>; entry: HistoryEntry}[] = []
    for (const c of channels) {
      const iter = this.history.entries(c, {...windowOf(c), until: now})
      const first = await iter.next()
      if (!first.done) heads.push({iter, entry: first.value})
    }
    try {
      while (heads.length > 0) {
        let min = 0
        for (let i = 1; i < heads.length; i++)
          if (compareIds(heads[i].entry.streamId, heads[min].entry.streamId) < 0) min = i
        const head = heads[min]
        yield head.entry
        const next = await head.iter.next()
        if (next.done) heads.splice(min, 1)
        else head.entry = next.value
      }
    } finally {
      for (const head of heads) await head.iter.return(undefined)
    }
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

  /**
   * A channel's history in publish order, within its retention, as an async iterator. Entries that
   * are not valid events (a foreign `XADD`) are skipped; `onMalformed` hears of each.
   */
  replay(
    channel: string,
    window: ReplayWindow = {},
    options: {onMalformed?: (error: MalformedEntryError) => void} = {},
  ): AsyncGenerator<RaptorEvent> {
    this.ensureOpen()
    return this.history.events(channel, window, options.onMalformed)
  }

  /**
   * Re-publishes a channel's history (within the window) onto another channel as new events (new
   * ids), pipelined, or paced at `options.rate` events per second.
   * @throws RoutingError when `toChannel` is outside the topology
   */
  async replayTo(
    channel: string,
    toChannel: string,
    window: ReplayWindow = {},
    options: ReplayToOptions = {},
  ): Promise<ReplayToResult> {
    this.ensureOpen()
    const {replayTo} = await import('./replay.js')
    return replayTo(this.history, this.publisher, this.topology, channel, toChannel, window, options)
  }

  /**
   * Counters (summed over channels and per channel and handler), stream lengths, consumer-group lag
   * and pending, DLQ depth by reason, live subscribers and agents.
   */
  async metrics(): Promise<BusMetrics> {
    this.ensureOpen()
    return (await this.reader()).all()
  }

  /** The metrics of one channel: counters, stream length, retention, handlers, DLQ depth. */
  async channelMetrics(channel: string): Promise<ChannelMetrics> {
    this.ensureOpen()
    return (await this.reader()).channel(channel)
  }

  /** The topology with each channel's stream length and last event time. */
  async channels(): Promise<ChannelInfo[]> {
    this.ensureOpen()
    const names = await this.history.knownChannels()
    const pipeline = anySlotPipeline(this.redis)
    for (const name of names) {
      pipeline.xlen(this.keys.stream(name))
      pipeline.xrevrange(this.keys.stream(name), '+', '-', 'COUNT', 1)
    }
    const results = (await pipeline.exec()) ?? []
    // A missing stream reads as length 0; a refused read (ACL) is an error, never a silent 0.
    const denied = results.find(([error]) => error && isPermissionDenied(error))
    if (denied) throw denied[0]
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
    // The dead-letter queues, one per reason: their length is the depth over every channel.
    const depths = await this.dlq.depths()
    for (const reason of DLQ_REASONS) {
      infos.push({
        name: `sys.dlq.${reason}`,
        retentionMs: DLQ_RETENTION_MS,
        pattern: false,
        builtin: true,
        length: depths.filter((d) => d.reason === reason).reduce((n, d) => n + d.depth, 0),
        lastEventAt: null,
      })
    }
    return infos
  }

  /**
   * Consumes durably: joins (creating it if needed) the consumer group named after the handler on
   * every channel its `channels` match, and runs it on each event, at least once. Resolves once
   * consuming; `consumer.stop(graceMs)` drains it.
   * @throws PluginError when the definition is invalid, or names a channel outside the topology
   */
  async consume(definition: HandlerDefinition, options: ConsumeOptions = {}): Promise<Consumer> {
    this.ensureOpen()
    const [{Consumer}, {resolveHandler, checkHandlerChannels}] = await Promise.all([
      import('./consumer.js'),
      import('./handler.js'),
    ])
    const handler = resolveHandler(definition, 'bus.consume')
    checkHandlerChannels(handler, this.topology, 'bus.consume')
    const consumer = new Consumer(
      {
        redis: this.redis,
        keys: this.keys,
        history: this.history,
        connection: {...this.options, reconnect: true},
        schemas: payloadSchemas(this.options.schemas),
        publish: (input) => this.publish(input),
        reply: (request, payload, opts) => this.reply(request, payload, opts),
      },
      handler,
      options,
    )
    await consumer.start()
    this.consumers.add(consumer)
    return consumer
  }

  /**
   * Publishes a request (with a fresh correlation id unless given) and resolves with the first
   * reply a handler sends through `ctx.reply`.
   * @throws TimeoutError when no reply comes within `timeoutMs` (default 30000)
   */
  async request(input: PublishInput & {timeoutMs?: number}): Promise<RaptorEvent> {
    this.ensureOpen()
    await this.hub()
    if (!this.replies) {
      const {Replies} = await import('./request.js')
      this.replies ??= new Replies(this.subConn!, this.keys)
    }
    const {timeoutMs = 30_000, ...publish} = input
    const correlationId = publish.correlationId ?? `req-${randomUUID()}`
    const send = () => this.publish({...publish, correlationId})
    const span = await startRequestSpan(publish.channel, correlationId)
    if (!span) return this.replies.request(correlationId, timeoutMs, send)
    try {
      const reply = await span.run(() => this.replies!.request(correlationId, timeoutMs, send))
      span.end({reply})
      return reply
    } catch (error) {
      span.end({error})
      throw error
    }
  }

  /** Sends a reply to a request event (what `ctx.reply` does): live only, to the requester. */
  async reply(
    request: RaptorEvent,
    payload: Payload,
    options: {type?: string; source?: string} = {},
  ): Promise<void> {
    this.ensureOpen()
    if (!request.correlationid) {
      throw new InvalidInputError(
        `event ${request.id} carries no correlationid: there is no request to reply to`,
      )
    }
    const {json} = await this.publisher.prepare(
      {
        channel: request.channel,
        type: options.type ?? `${request.type}.reply`,
        payload,
        source: options.source,
        correlationId: request.correlationid,
      },
      await activeTraceFields(),
    )
    await this.redis.publish(this.keys.reply(request.correlationid), json)
  }

  /**
   * Redis reachability, version, latency, clients, memory and live agents; with `maxDlq` / `maxLag`,
   * also the DLQ depth and consumer lag against those thresholds (over → `degraded`).
   */
  async health(options: HealthOptions = {}): Promise<HealthReport> {
    this.ensureOpen()
    const report = await baseHealth(this.redis, this.keys, options)
    const metrics = await (await this.reader()).all()
    const now = await this.history.serverTime()
    report.checks.push(
      await stalledCheck(this.redis, this.keys, metrics, report.agents, now, options.maxWaitMs),
      ...thresholdChecks(metrics, options),
    )
    return {...report, status: overallStatus(report.checks)}
  }

  /** Closes every connection of this bus. Safe to call twice. */
  async close(): Promise<void> {
    // The next getBus() connects afresh rather than handing out this closed bus.
    if (sharedBus === this) shared = sharedBus = undefined
    if (this.closed) return
    this.closed = true
    // Publishes waiting for this tick's flush go out before the connection closes.
    this.publisher.flush()
    await Promise.all([...this.consumers].map((c) => c.stop(0)))
    this.replies?.close()
    if (this.live) {
      const hub = await this.live.catch(() => undefined)
      await hub?.clear().catch(() => {})
    }
    if (this.subConn) await closeConnection(this.subConn)
    // A client handed to connect() belongs to the application: it stays open.
    if (!this.options.redis) await closeConnection(this.redis)
  }
}

/**
 * Folds the changes of a bus's connections (commands, live, each consumer's) into the state of its
 * link to Redis: `lost` when the first one drops, `reconnected` once every one is back.
 */
function linkMonitor(listener?: (change: ConnectionChange) => void) {
  if (!listener) return undefined
  const down = new Set<number>()
  return (change: ConnectionChange) => {
    const before = down.size
    if (change.state === 'lost') down.add(change.connectionId)
    else down.delete(change.connectionId)
    if (before === 0 && down.size > 0) listener(change)
    else if (before > 0 && down.size === 0) listener(change)
  }
}

let shared: Promise<RaptorBus> | undefined
let sharedBus: RaptorBus | undefined

/**
 * The process-wide bus (the seed's `get_bus()`), connected on first use from `REDIS_URL`,
 * `RAPTOR_PREFIX` and the config file in the working directory (or `RAPTOR_CONFIG`). Once it is
 * closed, the next call connects a new one.
 */
export function getBus(options: BusOptions = {}): Promise<RaptorBus> {
  shared ??= RaptorBus.connect({
    redisUrl: process.env.REDIS_URL,
    prefix: process.env.RAPTOR_PREFIX,
    config: process.env.RAPTOR_CONFIG ?? true,
    ...options,
  }).then(
    (bus) => (sharedBus = bus),
    (error) => {
      shared = undefined
      throw error
    },
  )
  return shared
}
