import type {Redis} from 'ioredis'

import {channelMatcher} from './channels.js'
import {formatIssues, parseEnvelope} from './envelope.js'
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
}

/** A live subscription. */
export interface Subscription {
  /** The patterns subscribed to. */
  readonly patterns: readonly string[]
  /** Events dropped because the handler fell behind. */
  readonly dropped: number
  /** Stops delivery and releases the patterns no other subscription uses. */
  unsubscribe(): Promise<void>
}

interface Entry {
  patterns: string[]
  redisPatterns: string[]
  matchers: ((c: string) => boolean)[]
  handler: LiveHandler
  maxInFlight: number
  inFlight: number
  dropped: number
  onError: (error: Error) => void
  /** While set, events are held here instead of delivered (the history backfill of `tail --since`). */
  held?: {event: RaptorEvent; meta: LiveMeta}[]
  /** Held events already delivered (the release's position in `held`). */
  heldDone: number
}

/**
 * Live, at-most-once fan-out over Redis pub/sub on one dedicated connection. Patterns are channel
 * globs; Redis matches a superset and each subscription matches exactly.
 */
export class LiveHub {
  private readonly entries = new Set<Entry>()
  private readonly refs = new Map<string, number>()

  constructor(
    private readonly conn: Redis,
    private readonly keys: Keys,
  ) {
    // Redis sends a message once per pattern of this connection that matches its channel (`**` and
    // `sys.alert.*` both match sys.alert.critical), back to back within one PUBLISH. Dispatch it once:
    // the stream id at the head of the message is unique per channel.
    let last = ''
    conn.on('pmessage', (_pattern: string, liveChannel: string, message: string) => {
      const key = `${liveChannel} ${message.slice(0, message.indexOf(' '))}`
      if (key === last) return
      last = key
      this.dispatch(liveChannel, message)
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
    options: SubscribeOptions & {hold?: boolean} = {},
  ) {
    const list = patterns.length > 0 ? [...patterns] : ['**']
    const entry: Entry = {
      patterns: list,
      redisPatterns: [...new Set(list.map((p) => this.keys.livePattern(p)))],
      matchers: list.map(channelMatcher),
      handler,
      maxInFlight: options.maxInFlight ?? 10_000,
      inFlight: 0,
      dropped: 0,
      onError: options.onError ?? (() => {}),
      held: options.hold ? [] : undefined,
      heldDone: 0,
    }
    this.entries.add(entry)
    const fresh = entry.redisPatterns.filter((p) => !this.refs.has(p))
    for (const p of entry.redisPatterns) this.refs.set(p, (this.refs.get(p) ?? 0) + 1)
    if (fresh.length > 0) await this.conn.psubscribe(...fresh)
    const subscription: Subscription & {
      release(skip: (meta: LiveMeta) => boolean, signal?: AbortSignal): Promise<void>
    } = {
      patterns: list,
      get dropped() {
        return entry.dropped
      },
      unsubscribe: () => this.remove(entry),
      // Delivers the held events in order, as the history before them was: a handler that returns a
      // promise is awaited, and what arrives meanwhile is held too, so a slow receiver is never handed
      // the whole backlog at once. Live delivery starts once the queue is empty.
      release: async (skip, signal) => {
        const held = entry.held ?? []
        for (let i = 0; i < held.length; i++) {
          signal?.throwIfAborted()
          if (!this.entries.has(entry)) break
          const h = held[i]
          held[i] = undefined as never
          entry.heldDone = i + 1
          if (skip(h.meta)) continue
          try {
            await entry.handler(h.event, h.meta)
          } catch (error) {
            entry.onError(error as Error)
          }
        }
        entry.held = undefined
      },
    }
    return subscription
  }

  /** Removes every subscription. */
  async clear(): Promise<void> {
    for (const entry of [...this.entries]) await this.remove(entry)
  }

  private async remove(entry: Entry): Promise<void> {
    if (!this.entries.delete(entry)) return
    const unused: string[] = []
    for (const p of entry.redisPatterns) {
      const n = (this.refs.get(p) ?? 1) - 1
      if (n <= 0) {
        this.refs.delete(p)
        unused.push(p)
      } else this.refs.set(p, n)
    }
    if (unused.length > 0 && this.conn.status === 'ready') await this.conn.punsubscribe(...unused)
  }

  private dispatch(liveChannel: string, message: string): void {
    const channel = this.keys.channelOfLive(liveChannel)
    let event: RaptorEvent | undefined
    let meta: LiveMeta | undefined
    for (const entry of this.entries) {
      if (!entry.matchers.some((m) => m(channel))) continue
      if (!event || !meta) {
        const space = message.indexOf(' ')
        const parsed = parseEnvelope(message.slice(space + 1))
        if (!parsed.ok) {
          const streamId = message.slice(0, space)
          const text = `malformed live message ${streamId} on ${channel}: ${formatIssues(parsed.issues)}`
          const error = new MalformedEntryError(text, parsed.issues, {channel, streamId})
          for (const e of this.entries) if (e.matchers.some((m) => m(channel))) e.onError(error)
          return
        }
        event = parsed.event
        meta = {channel, streamId: message.slice(0, space)}
      }
      if (entry.held) this.hold(entry, event, meta)
      else this.deliver(entry, event, meta)
    }
  }

  /**
   * Holds a live event during a backfill, within `maxInFlight` waiting: past it the event is dropped
   * (counted) and `onError` hears once that the receiver fell behind (a resumable receiver, such as
   * the gateway's streams, then ends and resumes from history instead).
   */
  private hold(entry: Entry, event: RaptorEvent, meta: LiveMeta): void {
    const held = entry.held!
    if (held.length - entry.heldDone < entry.maxInFlight) {
      held.push({event, meta})
      return
    }
    if (entry.dropped++ === 0)
      entry.onError(
        Object.assign(
          new Error(
            `receiver too slow: more than ${entry.maxInFlight} live events waited behind the history; later ones are dropped`,
          ),
          {name: 'LiveOverflowError'},
        ),
      )
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
