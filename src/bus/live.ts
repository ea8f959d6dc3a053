import {channelMatcher, isPattern} from './channels.js'
import {anySlotPipeline, type RedisClient} from './cluster.js'
import {formatIssues, isChannelName, parseEnvelope} from './envelope.js'
import {MalformedEntryError} from './errors.js'
import type {RaptorEvent} from './envelope.js'
import type {Keys} from './keys.js'

/** Where a live event came from. */
export interface LiveMeta {
  /** The channel it was published on. */
  channel: string
  /** Its stream entry id (Redis server time of publication). */
  streamId: string
}

/** A live event handler. A returned promise is awaited only to count in-flight work and catch errors. */
export type LiveHandler = (event: RaptorEvent, meta: LiveMeta) => void | Promise<void>

/** Events a live subscription missed while Redis had disconnected it. */
export interface LiveGap {
  /**
   * Matching events published while it was disconnected, at most (an estimate from the channels'
   * `published` counters: events published just after the resubscribe may be counted too).
   */
  lost: number
}

/** Options of `bus.subscribe`. */
export interface SubscribeOptions {
  /**
   * Most handler calls in flight for this subscription; further events are dropped (and counted in
   * `dropped`) rather than queued, so a slow subscriber never holds memory or slows publishers.
   * @defaultValue 10000
   */
  maxInFlight?: number
  /**
   * Called with handler errors, and with a `MalformedEntryError` for each message (or `since`
   * history entry) that is not a valid event and was skipped. @defaultValue ignore
   */
  onError?: (error: Error) => void
  /**
   * Called when the subscription is back after Redis disconnected it (a restart, or Redis cutting
   * off a subscriber that fell behind by its `client-output-buffer-limit`), with what it may have
   * missed meanwhile. Also counted in `lost`.
   */
  onGap?: (gap: LiveGap) => void
}

/** A live subscription. */
export interface Subscription {
  /** The patterns subscribed to. */
  readonly patterns: readonly string[]
  /** Events dropped because the handler fell behind (more than `maxInFlight` in flight). */
  readonly dropped: number
  /** Times Redis disconnected the subscription (it resubscribes by itself). */
  readonly disconnects: number
  /** Matching events published while disconnected, at most (see {@link LiveGap}). */
  readonly lost: number
  /** Stops delivery and releases the patterns no other subscription uses. */
  unsubscribe(): Promise<void>
}

/** A subscription whose events are held (for a history backfill) until released. */
export interface HeldSubscription extends Subscription {
  /**
   * True when more events arrived than the hold keeps: the hold was emptied and the events it
   * dropped must be read from history. Restarts the hold.
   */
  takeOverflow(): boolean
  /** Delivers the held events (but those `skip` says were already delivered) and goes live. */
  release(skip: (meta: LiveMeta) => boolean): void
}

/** One subscription of a hub (exported for the cluster hub, live-sharded.ts). */
export interface Entry {
  patterns: string[]
  /** What it holds on the connection: exact live names (SUBSCRIBE) and live patterns (PSUBSCRIBE). */
  redisNames: RedisName[]
  matchers: ((c: string) => boolean)[]
  handler: LiveHandler
  maxInFlight: number
  /** Most events held during a backfill before the hold overflows. */
  maxHeld: number
  inFlight: number
  dropped: number
  /** Messages that reached this subscription (delivered, held or dropped). */
  received: number
  disconnects: number
  lost: number
  /** `published` counter totals of the matching channels when the subscription started. */
  baseline?: Promise<number>
  onError: (error: Error) => void
  onGap?: (gap: LiveGap) => void
  /** While set, events are held here instead of delivered (the history backfill of `tail --since`). */
  held?: {event: RaptorEvent; meta: LiveMeta}[]
  overflowed: boolean
}

/** A pub/sub name held on the subscriber connection: an exact live name, or a live pattern. */
export interface RedisName {
  kind: 'name' | 'pattern'
  name: string
}

/** What a live channel name leads to: its channel and the subscriptions that match it. */
interface Route {
  channel: string
  entries: Entry[]
}

/** Most live names whose routes are remembered (a `**` subscriber may see many). */
const MAX_ROUTES = 4096

/**
 * Live, at-most-once fan-out over Redis pub/sub on one dedicated connection. A subscription to an
 * exact channel name holds that live name with SUBSCRIBE (Redis serves it as cheaply as raw pub/sub,
 * however many subscribers); a glob holds a pattern with PSUBSCRIBE (Redis matches a superset and
 * each subscription matches exactly). What a message's live name leads to (its channel, the
 * subscriptions it matches) is worked out once per name, not per message.
 */
export class LiveHub {
  protected readonly entries = new Set<Entry>()
  private readonly refs = new Map<string, number>()
  /** Live name → route (null: not one of ours); forgotten whenever the subscriptions change. */
  private readonly routes = new Map<string, Route | null>()

  /**
   * @param conn the subscriber connection (pub/sub mode); none for a hub that subscribes its own way
   *   (a subclass overriding `listen`/`unlisten`, as the cluster hub does)
   * @param commands a command connection, to read the channels' counters after a disconnect
   */
  constructor(
    private readonly conn: RedisClient | undefined,
    protected readonly keys: Keys,
    protected readonly commands: RedisClient,
  ) {
    if (conn) this.attach(conn)
  }

  private attach(conn: RedisClient): void {
    // Redis sends a message once per pattern of this connection that matches its channel (`**` and
    // `sys.alert.*` both match sys.alert.critical), back to back within one PUBLISH. Dispatch it once:
    // the stream id at the head of the message is unique per channel.
    // A channel held both by name and by pattern gets the message once more per pattern, the same way.
    let lastChannel = ''
    let lastId = ''
    const receive = (liveChannel: string, message: string) => {
      const space = message.indexOf(' ')
      const streamId = message.slice(0, space)
      if (streamId === lastId && liveChannel === lastChannel) return
      lastChannel = liveChannel
      lastId = streamId
      this.dispatch(liveChannel, message, space, streamId)
    }
    conn.on('message', receive)
    conn.on('pmessage', (_pattern: string, liveChannel: string, message: string) =>
      receive(liveChannel, message),
    )
    let down = false
    conn.on('close', () => (down = true))
    conn.on('ready', () => {
      if (!down) return
      down = false
      for (const entry of this.entries) void this.accountGap(entry)
    })
  }

  /** Number of subscriptions open on this hub. */
  get size(): number {
    return this.entries.size
  }

  /** Subscribes; resolves once Redis has confirmed every pattern. */
  async subscribe(
    patterns: readonly string[],
    handler: LiveHandler,
    options: SubscribeOptions & {hold: true; maxHeld?: number},
  ): Promise<HeldSubscription>
  async subscribe(
    patterns: readonly string[],
    handler: LiveHandler,
    options?: SubscribeOptions & {hold?: boolean; maxHeld?: number},
  ): Promise<Subscription>
  async subscribe(
    patterns: readonly string[],
    handler: LiveHandler,
    options: SubscribeOptions & {hold?: boolean; maxHeld?: number} = {},
  ): Promise<HeldSubscription> {
    const list = patterns.length > 0 ? [...patterns] : ['**']
    const entry: Entry = {
      patterns: list,
      redisNames: this.redisNames(list),
      matchers: list.map(channelMatcher),
      handler,
      maxInFlight: options.maxInFlight ?? 10_000,
      maxHeld: options.maxHeld ?? 10_000,
      inFlight: 0,
      dropped: 0,
      received: 0,
      disconnects: 0,
      lost: 0,
      onError: options.onError ?? (() => {}),
      onGap: options.onGap,
      held: options.hold ? [] : undefined,
      overflowed: false,
    }
    this.entries.add(entry)
    this.routes.clear()
    await this.listen(entry)
    entry.baseline = this.published(entry).catch(() => 0)
    return {
      patterns: list,
      get dropped() {
        return entry.dropped
      },
      get disconnects() {
        return entry.disconnects
      },
      get lost() {
        return entry.lost
      },
      unsubscribe: () => this.remove(entry),
      takeOverflow: () => {
        const overflowed = entry.overflowed
        entry.overflowed = false
        return overflowed
      },
      release: (skip) => {
        const held = entry.held ?? []
        entry.held = undefined
        for (const h of held) if (!skip(h.meta)) this.deliver(entry, h.event, h.meta)
      },
    }
  }

  /** Removes every subscription. */
  async clear(): Promise<void> {
    for (const entry of [...this.entries]) await this.remove(entry)
  }

  /**
   * The pub/sub names a subscription holds: exact channel names by name, globs by pattern (`**` or
   * `*` alone covers every name: one pattern).
   */
  private redisNames(patterns: readonly string[]): RedisName[] {
    const seen = new Map<string, RedisName>()
    for (const p of patterns) {
      const n: RedisName = isPattern(p)
        ? {kind: 'pattern', name: this.keys.livePattern(p)}
        : {kind: 'name', name: this.keys.live(p)}
      seen.set(refKey(n), n)
    }
    return [...seen.values()]
  }

  private async remove(entry: Entry): Promise<void> {
    if (!this.entries.delete(entry)) return
    this.routes.clear()
    await this.unlisten(entry)
  }

  /**
   * Subscribes on Redis to what a new subscription needs and no other one holds yet: exact live
   * names with SUBSCRIBE, patterns with PSUBSCRIBE.
   */
  protected async listen(entry: Entry): Promise<void> {
    const fresh = entry.redisNames.filter((n) => !this.refs.has(refKey(n)))
    for (const n of entry.redisNames) this.refs.set(refKey(n), (this.refs.get(refKey(n)) ?? 0) + 1)
    const names = fresh.filter((n) => n.kind === 'name').map((n) => n.name)
    const globs = fresh.filter((n) => n.kind === 'pattern').map((n) => n.name)
    await Promise.all([
      names.length > 0 ? this.conn!.subscribe(...names) : undefined,
      globs.length > 0 ? this.conn!.psubscribe(...globs) : undefined,
    ])
  }

  /** Unsubscribes on Redis from what a removed subscription held and no other one needs. */
  protected async unlisten(entry: Entry): Promise<void> {
    const unused: RedisName[] = []
    for (const name of entry.redisNames) {
      const key = refKey(name)
      const n = (this.refs.get(key) ?? 1) - 1
      if (n <= 0) {
        this.refs.delete(key)
        unused.push(name)
      } else this.refs.set(key, n)
    }
    if (unused.length === 0 || this.conn!.status !== 'ready') return
    const names = unused.filter((n) => n.kind === 'name').map((n) => n.name)
    const globs = unused.filter((n) => n.kind === 'pattern').map((n) => n.name)
    await Promise.all([
      names.length > 0 ? this.conn!.unsubscribe(...names) : undefined,
      globs.length > 0 ? this.conn!.punsubscribe(...globs) : undefined,
    ])
  }

  /** Sum of the `published` counters of the channels a subscription matches. */
  protected async published(entry: Entry): Promise<number> {
    const channels = (await this.commands.smembers(this.keys.channelRegistry())).filter((c) =>
      entry.matchers.some((m) => m(c)),
    )
    if (channels.length === 0) return 0
    const pipeline = anySlotPipeline(this.commands)
    for (const c of channels) pipeline.hget(this.keys.stats(c), 'published')
    const results = (await pipeline.exec()) ?? []
    return results.reduce((n, [error, value]) => n + (error ? 0 : Number(value ?? 0)), 0)
  }

  /** After a reconnect: what the subscription may have missed, counted and reported. */
  protected async accountGap(entry: Entry): Promise<void> {
    entry.disconnects++
    try {
      const [base, now] = await Promise.all([entry.baseline ?? Promise.resolve(0), this.published(entry)])
      const lost = Math.max(0, now - base - entry.received - entry.lost)
      entry.lost += lost
      entry.onGap?.({lost})
    } catch (error) {
      entry.onGap?.({lost: 0})
      entry.onError(error as Error)
    }
  }

  /** The route of a live name, worked out once while the subscriptions stay the same. */
  private route(liveChannel: string): Route | null {
    let route = this.routes.get(liveChannel)
    if (route !== undefined) return route
    const channel = this.keys.channelOfLive(liveChannel)
    // Only names of this prefix and database, and only channel names: nothing else is ours.
    route =
      channel === undefined || !isChannelName(channel)
        ? null
        : {channel, entries: [...this.entries].filter((e) => e.matchers.some((m) => m(channel)))}
    if (this.routes.size >= MAX_ROUTES) this.routes.clear()
    this.routes.set(liveChannel, route)
    return route
  }

  protected dispatch(
    liveChannel: string,
    message: string,
    space = message.indexOf(' '),
    streamId = message.slice(0, space),
  ): void {
    const route = this.route(liveChannel)
    if (route === null) return
    const {channel, entries} = route
    let event: RaptorEvent | undefined
    let meta: LiveMeta | undefined
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      entry.received++
      if (!entry.held && entry.inFlight >= entry.maxInFlight) {
        // Dropped before parsing: a subscriber that fell behind costs as little as possible.
        entry.dropped++
        continue
      }
      if (!event || !meta) {
        const parsed = parseEnvelope(message.slice(space + 1))
        if (!parsed.ok) {
          const text = `malformed live message ${streamId} on ${channel}: ${formatIssues(parsed.issues)}`
          const error = new MalformedEntryError(text, parsed.issues, {channel, streamId})
          for (const e of entries) e.onError(error)
          return
        }
        event = parsed.event
        meta = {channel, streamId}
      }
      if (entry.held) this.hold(entry, event, meta)
      else this.deliver(entry, event, meta)
    }
  }

  /** Holds an event during a backfill; past `maxHeld` held, empties the hold (history has them). */
  private hold(entry: Entry, event: RaptorEvent, meta: LiveMeta): void {
    const held = entry.held!
    if (held.length >= entry.maxHeld) {
      held.length = 0
      entry.overflowed = true
    }
    held.push({event, meta})
  }

  private deliver(entry: Entry, event: RaptorEvent, meta: LiveMeta): void {
    if (entry.inFlight >= entry.maxInFlight) {
      entry.dropped++
      return
    }
    try {
      const result = entry.handler(event, meta)
      if (result && typeof (result as Promise<void>).then === 'function') {
        entry.inFlight++
        ;(result as Promise<void>).then(
          () => entry.inFlight--,
          (error: Error) => {
            entry.inFlight--
            entry.onError(error)
          },
        )
      }
    } catch (error) {
      entry.onError(error as Error)
    }
  }
}

/** The key of a held pub/sub name in the reference counts (names and patterns apart). */
function refKey(name: RedisName): string {
  return `${name.kind === 'name' ? 'n' : 'p'}:${name.name}`
}
