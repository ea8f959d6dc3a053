/**
 * One live stream of the gateway (an SSE response, or one subscription of a WebSocket): what it asks
 * for, its filters, and its resume cursor. Delivery and the history stitching are the library's
 * (`bus.subscribe` with `since` or `resume`); this module only selects events and keeps the cursor.
 */
import {assertChannelPattern} from '../bus/channels.js'
import {InvalidInputError} from '../bus/errors.js'
import {PRIORITIES, type RaptorEvent} from '../bus/envelope.js'
import type {LiveMeta} from '../bus/live.js'
import type {GatewayContext} from './context.js'
import {CursorTracker, parseCursor} from './cursor.js'
import type {Membership, SharedEvent} from './fanout.js'
import {compileFilter} from './filter.js'

/** What a client asks of a live stream. */
export interface StreamSpec {
  /** Channel names or globs; empty means every channel. */
  patterns: readonly string[]
  /** Only these event types / sources / priorities. */
  types?: readonly string[]
  sources?: readonly string[]
  priorities?: readonly string[]
  /** A filter expression (see `filter.ts`), e.g. `data.user_id == "u1"`. */
  where?: string
  /** Backfill the last `since` ms first. */
  since?: number
  /** Resume after this cursor (a `Last-Event-ID`); wins over `since`. */
  resume?: string
}

/** Where a stream's events go. */
export interface StreamSink {
  /**
   * Sends one event (its JSON text) with the cursor after it. A returned promise holds the history
   * backfill until the client has read enough (live events never wait: a slow client is dropped).
   */
  send(event: RaptorEvent, json: string, cursor: string): void | Promise<void>
  /** Sends one event of the stream's fan-out group: the same bytes for every member. */
  sendShared(shared: SharedEvent): void
  /** Events lost in a Redis outage that history no longer holds. */
  missed(count: number, cursor: string): void
}

/** A stream checked and ready to open: every error a client can cause is raised here, before any write. */
export interface PreparedStream {
  patterns: string[]
  accept: (event: RaptorEvent) => boolean
  /** No filters: every event of the patterns goes out. */
  acceptsAll: boolean
  resume?: CursorTracker
  since?: number
}

const jsonCache = new WeakMap<RaptorEvent, string>()

const frameCache = new WeakMap<RaptorEvent, Buffer>()

/** An event's SSE `data:` lines, encoded once however many SSE clients send it. */
export function sseDataFrame(event: RaptorEvent): Buffer {
  let frame = frameCache.get(event)
  if (frame === undefined) {
    frame = Buffer.from(`data: ${eventJson(event)}\n\n`)
    frameCache.set(event, frame)
  }
  return frame
}

/** The JSON text of an event, made once however many streams send it. */
export function eventJson(event: RaptorEvent): string {
  let json = jsonCache.get(event)
  if (json === undefined) {
    json = JSON.stringify(event)
    jsonCache.set(event, json)
  }
  return json
}

function oneOf(values: readonly string[] | undefined): Set<string> | undefined {
  return values && values.length > 0 ? new Set(values) : undefined
}

/**
 * Checks a stream spec and compiles its filters.
 * @throws InvalidInputError for a bad pattern, priority, filter or cursor
 */
export function prepareStream(spec: StreamSpec): PreparedStream {
  const patterns = spec.patterns.length > 0 ? [...spec.patterns] : ['**']
  patterns.forEach(assertChannelPattern)
  for (const p of spec.priorities ?? [])
    if (!(PRIORITIES as readonly string[]).includes(p))
      throw new InvalidInputError(`invalid priority '${p}': use one of ${PRIORITIES.join(', ')}`)
  const types = oneOf(spec.types)
  const sources = oneOf(spec.sources)
  const priorities = oneOf(spec.priorities)
  const where = spec.where === undefined || spec.where === '' ? undefined : compileFilter(spec.where)
  const accept = (event: RaptorEvent) =>
    (!types || types.has(event.type)) &&
    (!sources || sources.has(event.source)) &&
    (!priorities || priorities.has(event.priority ?? 'normal')) &&
    (!where || where(event as unknown as Record<string, unknown>))
  return {
    patterns,
    accept,
    acceptsAll: !types && !sources && !priorities && !where,
    resume: spec.resume === undefined || spec.resume === '' ? undefined : parseCursor(spec.resume),
    since: spec.since,
  }
}

/** An open stream: where it stands, and how to end it. */
export interface OpenStream {
  /** The cursor after the last event offered (sent or filtered out). */
  cursor(): string
  close(): Promise<void>
}

/**
 * Opens a prepared stream: history first when resuming (or with `since`), then live, seamlessly, on
 * a subscription of its own; then it joins the fan-out group of its patterns and drops its own
 * subscription (its cursor skips what both sent meanwhile). Resolves once in the group; `signal`
 * ends it early (a client that went away during the backfill).
 */
export async function openStream(
  ctx: Pick<GatewayContext, 'bus' | 'fanout'>,
  stream: PreparedStream,
  sink: StreamSink,
  options: {
    signal?: AbortSignal
    onStart?: (cursor: CursorTracker) => void
    /** Called once history is sent, before joining the group. */
    onLive?: () => void
    /**
     * For a stream without filters: once in the group, its SSE frames go here in batches (the same
     * buffer for every such member) instead of one `sendShared` per event.
     */
    batch?: (frames: Buffer, events: number) => void
  } = {},
): Promise<OpenStream> {
  const {bus, fanout} = ctx
  // A fresh stream starts at the server time before subscribing, exactly: what is published while
  // the subscription is being set up comes from history (a resume from that time), so that neither a
  // client that stays nor one that reconnects at once with the first cursor misses anything.
  const own = stream.resume ?? new CursorTracker(await bus.history.serverTime())
  const resume = stream.resume ?? (stream.since === undefined ? own : undefined)
  options.onStart?.(own)
  let joining = false
  const offer = (event: RaptorEvent, meta: LiveMeta) => {
    // Both the own subscription and the group may offer an event while the stream joins its group.
    if (joining && own.covers(meta.channel, meta.streamId)) return
    // Events the filters reject move the cursor too: a resume need not look at them again.
    own.advance(meta.channel, meta.streamId)
    if (stream.accept(event)) return sink.send(event, eventJson(event), own.toString())
  }
  const subscription = await bus.subscribe(stream.patterns, offer, {
    resume: resume?.toStreamCursor(),
    since: resume ? undefined : stream.since,
    signal: options.signal,
  })
  options.onLive?.()
  joining = true
  let shared = false
  let membership: Membership
  try {
    membership = await fanout.join(stream.patterns, {
      offer: (s) => {
        if (!shared) void offer(s.event, s.meta)
        else if (stream.accept(s.event)) sink.sendShared(s)
      },
      missed: (count, cursor) => sink.missed(count, cursor),
    })
  } catch (error) {
    await subscription.unsubscribe().catch(() => {})
    throw error
  }
  await subscription.unsubscribe()
  shared = true
  if (options.batch && stream.acceptsAll) membership.useBatch(options.batch)
  return {
    cursor: () => (shared ? membership.cursor() : own.toString()),
    close: async () => {
      shared = false
      membership.leave()
      await subscription.unsubscribe()
    },
  }
}
