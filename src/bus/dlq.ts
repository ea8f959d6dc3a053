import type {Topology} from './channels.js'
import {
  DLQ_REASONS,
  DLQ_RETENTION_MS,
  ROUTING_DLQ_CHANNEL,
  assertChannelName,
  channelMatcher,
  type DlqReason,
} from './channels.js'
import {anySlotPipeline} from './cluster.js'
import {InvalidInputError, RaptorError, RoutingError} from './errors.js'
import {isChannelName, parseEnvelope, type PublishInput, type RaptorEvent} from './envelope.js'
import type {History} from './history.js'
import type {Keys} from './keys.js'
import type {PreparedEvent} from './publisher.js'
import {scriptPipeline, type ScriptedRedis} from './scripts.js'
import {compareIds, idTime} from './stream-ids.js'

declare module './scripts.js' {
  interface ScriptCommands {
    /** lua/requeue.lua: returns the number of entries moved to the handler's requeue stream. */
    raptorRequeue(
      dlq: string,
      rq: string,
      stats: string,
      handlerStats: string,
      handler: string,
      idPrefix: string,
      retentionMs: number,
      ...streamIds: string[]
    ): Promise<number>
    /** lua/republish.lua: returns the new stream id, or null when this DLQ entry was already published. */
    raptorRepublish(
      stream: string,
      index: string,
      stats: string,
      marker: string,
      json: string,
      retentionMs: number,
      live: string,
      markerTtlMs: number,
      /** On a cluster, the channel's bell; '' on one server. */
      bell: string,
    ): Promise<string | null>
  }
}

/**
 * One dead letter, as `raptor dlq list --json` prints it.
 *
 * `id` is `<dlq channel>/<reason>/<stream entry id>` (e.g.
 * `sys.alert.warning/max_retries_exceeded/1732867200000-0`): unique across every DLQ stream of a
 * prefix, and accepted back by `requeue`/`purge` `ids`. Routing errors live under the pseudo-channel
 * `sys.dlq.routing_error`.
 */
export interface DlqEntry {
  /** Unique DLQ entry id, `<dlq channel>/<reason>/<stream id>`. */
  id: string
  reason: DlqReason
  /** The channel the event was published on (for routing errors: the unknown channel). */
  originalChannel: string
  /** Why it failed (the handler's error, the schema issues, the routing error). */
  error: string
  /** Handler attempts before it was dead-lettered (0 when no handler ran). */
  attempts: number
  /** RFC 3339 time it was dead-lettered (Redis server time). */
  failedAt: string
  /** The handler that failed it; null when none (routing_error). */
  handler: string | null
  /** The envelope; or the raw stored value when it was not a valid envelope. */
  event: RaptorEvent | unknown
  /** How many times this event had been requeued before it landed here again. */
  requeues: number
}

/** Which dead letters an operation applies to. Every given filter must hold. */
export interface DlqFilter {
  /** Only these reasons. @defaultValue every reason */
  reasons?: readonly DlqReason[]
  /** Only entries whose original channel matches one of these names or globs (`app.orders.*`). */
  channels?: readonly string[]
  /** Only entries failed by one of these handlers. */
  handlers?: readonly string[]
  /**
   * Only these entries: DLQ entry ids (`<channel>/<reason>/<stream id>`, as `dlq list` prints them) or
   * event ids (any id a producer gave, e.g. `evt-…` or `order-42`). An id that has the DLQ id form is
   * a DLQ id.
   */
  ids?: readonly string[]
  /** Only entries dead-lettered before this time (ms since the epoch, or a Date; server time). */
  before?: number | Date
  /** At most this many entries. */
  limit?: number
}

/** Options of {@link Dlq.requeue}. */
export interface RequeueOptions extends DlqFilter {
  /**
   * Publish every selected entry anew (a new event id) onto this channel instead of redelivering it
   * to its handler; every handler of that channel then sees it.
   */
  toChannel?: string
  /** Change nothing; report what would move. @defaultValue false */
  dryRun?: boolean
  /** Entries per atomic Lua call (1–1000). @defaultValue 500 */
  batchSize?: number
  /** Called after each batch with the number of entries handled so far. */
  onProgress?: (done: number) => void
}

/** Where requeued entries went (or would go). */
export interface RequeueTarget {
  /** The channel of the stream they went to. */
  channel: string
  /** The handler whose requeue stream they went to; null when published onto the channel. */
  handler: string | null
  count: number
}

/** An entry a requeue left in the DLQ, and why. */
export interface SkippedEntry {
  id: string
  why: string
}

/** Outcome of {@link Dlq.requeue}. */
export interface RequeueResult {
  /** Entries moved (or, in a dry run, that would move). */
  requeued: number
  dryRun: boolean
  /** Entries left in the DLQ (e.g. a routing error whose channel is still unknown). */
  skipped: SkippedEntry[]
  /** Counts per destination. */
  targets: RequeueTarget[]
}

/** Options of {@link Dlq.purge}. */
export interface PurgeOptions extends DlqFilter {
  /** Count only. @defaultValue false */
  dryRun?: boolean
}

/** Outcome of {@link Dlq.purge}. */
export interface PurgeResult {
  /** Entries deleted (or, in a dry run, that would be). */
  purged: number
  dryRun: boolean
}

/** A DLQ stream entry as read, with where it lives. */
interface RawEntry {
  /** Channel of the DLQ stream (the pseudo-channel for routing errors). */
  dlqChannel: string
  reason: DlqReason
  streamId: string
  fields: Record<string, string>
}

/** A filter prepared for reading streams. */
interface Selector {
  /** Only the entries named by DLQ id (read directly, no scan). */
  byDlqId: boolean
  dlqIds: Set<string>
  before?: number
  /** XRANGE end (exclusive of `before`). */
  end: string
  matches(raw: RawEntry): boolean
}

/** What the DLQ needs of the bus. */
export interface DlqContext {
  redis: ScriptedRedis
  keys: Keys
  topology: Topology
  history: History
  /** Checks and builds an event as publish would (throws the publish errors). */
  prepare(
    input: PublishInput,
  ): Promise<{event: RaptorEvent; json: string; spec: PreparedEvent['spec'] | undefined}>
}

const PAGE = 500
/** Page of each stream in a merged listing (one page per stream is held at a time). */
const MERGE_PAGE = 100
const DEFAULT_BATCH = 500
const MAX_ID = `${Number.MAX_SAFE_INTEGER}`

/** Oldest failure first; ties (same ms, different streams) in a stable, deterministic order. */
function byFailure(a: RawEntry, b: RawEntry): number {
  // Sequence numbers only order entries of the same stream: compare ms, then the stream, then seq.
  const d = idTime(a.streamId) - idTime(b.streamId)
  if (d !== 0) return d
  const ka = `${a.dlqChannel}/${a.reason}`
  const kb = `${b.dlqChannel}/${b.reason}`
  return ka < kb ? -1 : ka > kb ? 1 : compareIds(a.streamId, b.streamId)
}

/** True for a short DLQ id: a stream entry id alone (`1795936715199-0`); see {@link Dlq.expandIds}. */
export function isShortDlqId(id: string): boolean {
  return /^\d+-\d+$/.test(id)
}

/** Formats a DLQ entry id: `<dlq channel>/<reason>/<stream id>`. */
export function formatDlqId(dlqChannel: string, reason: string, streamId: string): string {
  return `${dlqChannel}/${reason}/${streamId}`
}

const DLQ_ID = /^([^/]+)\/([a-z_]+)\/(\d+-\d+)$/

/** True when the id has the form of a DLQ entry id (`<channel>/<reason>/<ms>-<seq>`); else it is an event id. */
export function isDlqId(id: string): boolean {
  const match = DLQ_ID.exec(id)
  return match !== null && (DLQ_REASONS as readonly string[]).includes(match[2]) && isChannelName(match[1])
}

/**
 * Parses a DLQ entry id made by {@link formatDlqId}.
 * @throws InvalidInputError when it is not one
 */
export function parseDlqId(id: string): {channel: string; reason: DlqReason; streamId: string} {
  const match = DLQ_ID.exec(id)
  if (!match || !isDlqId(id)) {
    throw new InvalidInputError(
      `invalid DLQ entry id '${id}': use an id printed by \`raptor dlq list\` (<channel>/<reason>/<ms>-<seq>, or <ms>-<seq> alone in the CLI)`,
      {id},
    )
  }
  return {channel: match[1], reason: match[2] as DlqReason, streamId: match[3]}
}

/** The id of a stored envelope when it has one (exactly, from the parsed JSON, never a payload field). */
function storedEventId(e: string | undefined, wanted: Set<string>): string | undefined {
  if (e === undefined) return undefined
  // Cheap test first: the id's JSON text must occur in the entry at all.
  let present = false
  for (const id of wanted) if (e.includes(JSON.stringify(id))) present = true
  if (!present) return undefined
  try {
    const value = JSON.parse(e) as {id?: unknown}
    return typeof value?.id === 'string' ? value.id : undefined
  } catch {
    return undefined
  }
}

function fieldsOf(flat: string[]): Record<string, string> {
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]] = flat[i + 1]
  return fields
}

function toMs(value: number | Date | undefined): number | undefined {
  return value instanceof Date ? value.getTime() : value
}

/** An RFC 3339 time, or undefined when the ms are not a representable date. */
function isoTime(ms: number): string | undefined {
  if (!Number.isFinite(ms) || ms <= 0) return undefined
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString()
}

/** A non-negative integer count, or 0. */
function count(value: string | undefined): number {
  const n = Number(value ?? 0)
  return Number.isSafeInteger(n) && n >= 0 ? n : 0
}

/** The stored envelope: parsed when it is JSON, the raw string otherwise. */
function storedEvent(e: string | undefined): unknown {
  if (e === undefined) return null
  try {
    return JSON.parse(e)
  } catch {
    return e
  }
}

/**
 * Dead-letter queues: list, requeue and purge. The DLQs are streams `P:ch:{C}:dlq:<reason>` per
 * channel and reason (see docs/design.md); routing errors are under the pseudo-channel
 * `sys.dlq.routing_error`. Reached as `bus.dlq`.
 */
export class Dlq {
  constructor(private readonly ctx: DlqContext) {}

  /**
   * Turns a stream entry into the public entry shape. Fields written by something other than raptor
   * (a foreign XADD) never stop a listing: a failure time that is not a date falls back to the
   * entry's stream id (when it was written), counts that are not numbers to 0.
   */
  private toEntry(raw: RawEntry): DlqEntry {
    const f = raw.fields
    return {
      id: formatDlqId(raw.dlqChannel, raw.reason, raw.streamId),
      reason: raw.reason,
      originalChannel: f.channel ?? raw.dlqChannel,
      error: f.error ?? '',
      attempts: count(f.attempts),
      failedAt: isoTime(Number(f.failedAt)) ?? isoTime(idTime(raw.streamId)) ?? '1970-01-01T00:00:00.000Z',
      handler: f.handler ? f.handler : null,
      event: storedEvent(f.e),
      requeues: count(f.requeues),
    }
  }

  /** The DLQ streams a filter can reach: (channel, reason) pairs. */
  private async streams(filter: DlqFilter): Promise<{channel: string; reason: DlqReason}[]> {
    const reasons = filter.reasons && filter.reasons.length > 0 ? filter.reasons : DLQ_REASONS
    for (const r of reasons) {
      if (!(DLQ_REASONS as readonly string[]).includes(r))
        throw new InvalidInputError(`unknown DLQ reason '${r}': use one of ${DLQ_REASONS.join(', ')}`)
    }
    const ids = filter.ids ?? []
    if (ids.length > 0 && ids.every(isDlqId)) {
      const seen = new Map<string, {channel: string; reason: DlqReason}>()
      for (const id of ids) {
        const {channel, reason} = parseDlqId(id)
        if (reasons.includes(reason)) seen.set(`${channel}/${reason}`, {channel, reason})
      }
      return [...seen.values()]
    }
    const matchers = filter.channels?.length ? filter.channels.map(channelMatcher) : undefined
    const channels = [...(await this.ctx.history.knownChannels()), ROUTING_DLQ_CHANNEL]
    const pairs: {channel: string; reason: DlqReason}[] = []
    for (const channel of new Set(channels)) {
      // Routing errors keep their unknown channel in a field: that stream is filtered entry by entry.
      if (channel !== ROUTING_DLQ_CHANNEL && matchers && !matchers.some((m) => m(channel))) continue
      for (const reason of reasons) pairs.push({channel, reason})
    }
    return pairs
  }

  /**
   * The last entry id of every DLQ stream a filter reaches, now: the end of a run's window, so that a
   * run never sees entries dead-lettered after it started (e.g. again, by the handler it requeued to).
   */
  private async windowEnds(filter: DlqFilter): Promise<Map<string, string>> {
    const {redis, keys} = this.ctx
    const streamKeys = (await this.streams(filter)).map(({channel, reason}) => keys.dlq(channel, reason))
    const pipeline = anySlotPipeline(redis)
    for (const key of streamKeys) pipeline.xrevrange(key, '+', '-', 'COUNT', 1)
    const results = (await pipeline.exec()) ?? []
    const ends = new Map<string, string>()
    streamKeys.forEach((key, i) => {
      const [error, last] = results[i] ?? [new Error('no reply'), null]
      if (error) throw error
      const entries = last as [string, string[]][]
      if (entries.length > 0) ends.set(key, entries[0][0])
    })
    return ends
  }

  /** What a filter selects, prepared once for every stream it reads. */
  private selector(filter: DlqFilter): Selector {
    const matchers = filter.channels?.length ? filter.channels.map(channelMatcher) : undefined
    const handlers = filter.handlers?.length ? new Set(filter.handlers) : undefined
    const ids = filter.ids ?? []
    const dlqIds = new Set(ids.filter(isDlqId))
    const eventIds = new Set(ids.filter((id) => !isDlqId(id)))
    const before = toMs(filter.before)
    const end = before === undefined ? '+' : `${Math.floor(before) - 1}-${MAX_ID}`
    const matches = (raw: RawEntry): boolean => {
      const f = raw.fields
      if (matchers && !matchers.some((m) => m(f.channel ?? raw.dlqChannel))) return false
      if (handlers && !handlers.has(f.handler ?? '')) return false
      if (ids.length === 0) return true
      if (dlqIds.has(formatDlqId(raw.dlqChannel, raw.reason, raw.streamId))) return true
      if (eventIds.size === 0 || f.e === undefined) return false
      const id = storedEventId(f.e, eventIds)
      return id !== undefined && eventIds.has(id)
    }
    return {byDlqId: ids.length > 0 && eventIds.size === 0, dlqIds, before, end, matches}
  }

  /**
   * The entries of one DLQ stream matching a selector, in dead-letter order, read page by page, up
   * to the stream id `last` (the selector's own end unless a run's window says sooner).
   */
  private async *streamEntries(
    channel: string,
    reason: DlqReason,
    sel: Selector,
    pageSize = PAGE,
    last = sel.end,
  ): AsyncGenerator<RawEntry> {
    const {redis, keys} = this.ctx
    const key = keys.dlq(channel, reason)
    // Known DLQ ids only (no event ids): read exactly those entries.
    if (sel.byDlqId) {
      for (const id of sel.dlqIds) {
        const parsed = parseDlqId(id)
        if (parsed.channel !== channel || parsed.reason !== reason) continue
        const found = (await redis.xrange(key, parsed.streamId, parsed.streamId)) as [string, string[]][]
        if (found.length === 0 || (last !== '+' && compareIds(found[0][0], last) > 0)) continue
        const raw = {dlqChannel: channel, reason, streamId: found[0][0], fields: fieldsOf(found[0][1])}
        if (sel.before !== undefined && idTime(raw.streamId) >= sel.before) continue
        if (sel.matches(raw)) yield raw
      }
      return
    }
    let cursor = '-'
    for (;;) {
      const page = (await redis.xrange(key, cursor, last, 'COUNT', pageSize)) as [string, string[]][]
      for (const [streamId, flat] of page) {
        const raw = {dlqChannel: channel, reason, streamId, fields: fieldsOf(flat)}
        if (sel.matches(raw)) yield raw
      }
      if (page.length < pageSize) return
      cursor = `(${page[page.length - 1][0]}`
    }
  }

  /**
   * Yields the entries matching a filter, stream by stream, each stream in dead-letter order. With
   * `ends`, each stream is read up to its end there only (streams not in it are skipped).
   */
  private async *scan(filter: DlqFilter, ends?: Map<string, string>): AsyncGenerator<RawEntry> {
    const sel = this.selector(filter)
    const {end} = sel
    let left = filter.limit ?? Infinity
    for (const {channel, reason} of await this.streams(filter)) {
      if (left <= 0) return
      const windowEnd = ends ? ends.get(this.ctx.keys.dlq(channel, reason)) : end
      if (windowEnd === undefined) continue
      const last = end !== '+' && compareIds(end, windowEnd) < 0 ? end : windowEnd
      for await (const raw of this.streamEntries(channel, reason, sel, PAGE, last)) {
        yield raw
        if (--left <= 0) return
      }
    }
  }

  /**
   * Dead letters matching the filter, oldest first, as they are read: a k-way merge of the DLQ
   * streams page by page, so that listing any number of them holds one page per stream in memory.
   * @throws InvalidInputError for an unknown reason or a malformed id
   */
  async *entries(filter: DlqFilter = {}): AsyncGenerator<DlqEntry> {
    const sel = this.selector(filter)
    const heads: {iter: AsyncGenerator<RawEntry>; raw: RawEntry}[] = []
    for (const {channel, reason} of await this.streams(filter)) {
      const iter = this.streamEntries(channel, reason, sel, MERGE_PAGE)
      const first = await iter.next()
      if (!first.done) heads.push({iter, raw: first.value})
    }
    let left = filter.limit ?? Infinity
    while (heads.length > 0 && left-- > 0) {
      let min = 0
      for (let i = 1; i < heads.length; i++) if (byFailure(heads[i].raw, heads[min].raw) < 0) min = i
      const head = heads[min]
      yield this.toEntry(head.raw)
      const next = await head.iter.next()
      if (next.done) heads.splice(min, 1)
      else head.raw = next.value
    }
    for (const head of heads) await head.iter.return(undefined)
  }

  /**
   * Dead letters matching the filter, oldest first (all of them in memory: see {@link entries} to
   * stream them).
   * @throws InvalidInputError for an unknown reason or a malformed id
   */
  async list(filter: DlqFilter = {}): Promise<DlqEntry[]> {
    const found: DlqEntry[] = []
    for await (const entry of this.entries(filter)) found.push(entry)
    return found
  }

  /**
   * The DLQ entries a short id stands for. A short id is a stream entry id alone (`1795936715199-0`,
   * what `raptor dlq list` shows on a terminal, where a 65-character id leaves no room for the
   * rest): it is looked up in every DLQ stream at once (one pipelined XRANGE per stream). Usually
   * one entry has it; entries dead-lettered in the same millisecond on different streams share it,
   * and the caller decides what an ambiguous one means. A short id that no DLQ stream has maps to
   * itself (an event id may have that form too); full DLQ ids and event ids map to themselves,
   * unchecked.
   * @returns each given id with the ids it stands for
   */
  async expandIds(ids: readonly string[]): Promise<Map<string, string[]>> {
    const {redis, keys} = this.ctx
    const out = new Map<string, string[]>()
    const short = ids.filter(isShortDlqId)
    for (const id of ids) if (!isShortDlqId(id)) out.set(id, [id])
    if (short.length === 0) return out
    const pairs = await this.streams({})
    const pipeline = anySlotPipeline(redis)
    for (const id of short) for (const p of pairs) pipeline.xrange(keys.dlq(p.channel, p.reason), id, id)
    const replies = (await pipeline.exec()) ?? []
    short.forEach((id, i) => {
      const found: string[] = []
      pairs.forEach((p, j) => {
        const [error, entries] = replies[i * pairs.length + j] ?? [null, []]
        if (error) throw error
        if ((entries as unknown[]).length > 0) found.push(formatDlqId(p.channel, p.reason, id))
      })
      // No DLQ stream has it: it may be a producer's event id of that form.
      out.set(id, found.length > 0 ? found : [id])
    })
    return out
  }

  /** DLQ depth per (channel, reason): XLEN of each DLQ stream that holds anything. */
  async depths(): Promise<{channel: string; reason: DlqReason; depth: number}[]> {
    const {redis, keys} = this.ctx
    const pairs = await this.streams({})
    const pipeline = anySlotPipeline(redis)
    for (const p of pairs) pipeline.xlen(keys.dlq(p.channel, p.reason))
    const results = (await pipeline.exec()) ?? []
    return pairs.map((p, i) => ({...p, depth: Number(results[i]?.[1] ?? 0)})).filter((p) => p.depth > 0)
  }

  /**
   * Requeues dead letters. An entry with a handler is redelivered to **that handler only**: it moves
   * to `P:ch:{C}:rq:<handler>`, keeping its event id, with `requeues` + 1. An entry with no handler
   * (routing_error) is published onto its original channel (keeping its id) once that channel is in
   * the topology; otherwise it is skipped and reported. With `toChannel`, every entry is published
   * anew (new event id) onto that channel instead.
   *
   * Each batch is one Lua call per DLQ stream and handler (move + delete atomically), so an
   * interrupted requeue neither loses nor duplicates; running it again finishes the job. Publishing
   * onto a channel crosses hash tags, so there the move is made idempotent with a marker key instead
   * (see lua/republish.lua).
   * @throws InvalidInputError for bad filters; RoutingError when `toChannel` is outside the topology
   */
  async requeue(options: RequeueOptions = {}): Promise<RequeueResult> {
    const batchSize = options.batchSize ?? DEFAULT_BATCH
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1000)
      throw new InvalidInputError(`batch size must be an integer from 1 to 1000, got ${batchSize}`)
    if (options.toChannel !== undefined) {
      // Fails with a RoutingError (nothing parked) when the target is unknown, before anything moves.
      assertChannelName(options.toChannel)
      if (!this.ctx.topology.resolve(options.toChannel) || options.toChannel.startsWith('sys.dlq.'))
        throw new RoutingError(options.toChannel, this.ctx.topology.nearest(options.toChannel), false)
    }
    const result: RequeueResult = {requeued: 0, dryRun: options.dryRun === true, skipped: [], targets: []}
    const targets = new Map<string, RequeueTarget>()
    const count = (channel: string, handler: string | null, n: number) => {
      if (n === 0) return
      const key = `${channel}\u0000${handler ?? ''}`
      const t = targets.get(key) ?? {channel, handler, count: 0}
      t.count += n
      targets.set(key, t)
      result.requeued += n
    }
    // The run works on the entries present now: those dead-lettered again during it wait for the next.
    const ends = await this.windowEnds(options)
    let batch: RawEntry[] = []
    let done = 0
    const flush = async () => {
      if (batch.length === 0) return
      const current = batch
      batch = []
      await this.requeueBatch(current, options, result, count)
      done += current.length
      options.onProgress?.(done)
    }
    for await (const raw of this.scan(options, ends)) {
      if (batch.length > 0 && (batch[0].dlqChannel !== raw.dlqChannel || batch[0].reason !== raw.reason))
        await flush()
      batch.push(raw)
      if (batch.length >= batchSize) await flush()
    }
    await flush()
    result.targets = [...targets.values()]
    return result
  }

  private async requeueBatch(
    batch: RawEntry[],
    options: RequeueOptions,
    result: RequeueResult,
    count: (channel: string, handler: string | null, n: number) => void,
  ): Promise<void> {
    const {redis, keys} = this.ctx
    const {dlqChannel, reason} = batch[0]
    const byHandler = new Map<string, string[]>()
    const toPublish: {raw: RawEntry; channel: string; keepId: boolean}[] = []
    for (const raw of batch) {
      const handler = raw.fields.handler ?? ''
      if (options.toChannel !== undefined) toPublish.push({raw, channel: options.toChannel, keepId: false})
      else if (handler !== '') byHandler.set(handler, [...(byHandler.get(handler) ?? []), raw.streamId])
      else {
        const original = raw.fields.channel ?? ''
        if (original && !original.startsWith('sys.dlq.') && this.ctx.topology.resolve(original))
          toPublish.push({raw, channel: original, keepId: true})
        else
          result.skipped.push({
            id: formatDlqId(dlqChannel, reason, raw.streamId),
            why: `no handler, and channel '${original}' is not in the topology: add it to the config or use --to-channel`,
          })
      }
    }
    for (const [handler, ids] of byHandler) {
      if (options.dryRun) {
        count(dlqChannel, handler, ids.length)
        continue
      }
      const moved = await redis.raptorRequeue(
        keys.dlq(dlqChannel, reason),
        keys.requeue(dlqChannel, handler),
        keys.stats(dlqChannel),
        keys.handlerStats(dlqChannel, handler),
        handler,
        formatDlqId(dlqChannel, reason, ''),
        DLQ_RETENTION_MS,
        ...ids,
      )
      count(dlqChannel, handler, Number(moved))
    }
    if (toPublish.length > 0) await this.republish(toPublish, options, result, count)
  }

  /** Publishes dead letters onto channels, idempotently per DLQ entry, then deletes them from the DLQ. */
  private async republish(
    items: {raw: RawEntry; channel: string; keepId: boolean}[],
    options: RequeueOptions,
    result: RequeueResult,
    count: (channel: string, handler: string | null, n: number) => void,
  ): Promise<void> {
    const {redis, keys} = this.ctx
    const ready: {raw: RawEntry; dlqId: string; prepared: PreparedEvent}[] = []
    for (const {raw, channel, keepId} of items) {
      const dlqId = formatDlqId(raw.dlqChannel, raw.reason, raw.streamId)
      const parsed = parseEnvelope(raw.fields.e)
      if (!parsed.ok) {
        result.skipped.push({id: dlqId, why: 'not a valid event envelope: cannot be published'})
        continue
      }
      const ev = parsed.event
      try {
        const prepared = await this.ctx.prepare({
          channel,
          type: ev.type,
          payload: ev.data,
          priority: ev.priority,
          source: ev.source,
          correlationId: ev.correlationid,
          ...(keepId ? {id: ev.id} : {}),
        })
        if (!prepared.spec) throw new InvalidInputError(`channel '${channel}' is not in the topology`)
        ready.push({raw, dlqId, prepared: prepared as PreparedEvent})
      } catch (error) {
        if (!(error instanceof RaptorError)) throw error
        result.skipped.push({id: dlqId, why: error.message})
      }
    }
    if (ready.length === 0) return
    if (options.dryRun) {
      for (const r of ready) count(r.prepared.event.channel, null, 1)
      return
    }
    const pipeline = scriptPipeline(redis)
    const channels = [...new Set(ready.map((r) => r.prepared.event.channel))]
    pipeline.sadd(keys.channelRegistry(), ...channels)
    for (const {dlqId, prepared} of ready) {
      const c = prepared.event.channel
      pipeline.raptorRepublish(
        keys.stream(c),
        keys.eventIndex(c, prepared.event.id),
        keys.stats(c),
        keys.requeueMarker(c, dlqId),
        prepared.json,
        prepared.spec.retentionMs,
        keys.live(c),
        DLQ_RETENTION_MS,
        keys.sharded ? keys.bell(c) : '',
      )
    }
    const replies = (await pipeline.exec()) ?? []
    const toDelete: string[] = []
    for (let i = 0; i < ready.length; i++) {
      const [error, sid] = replies[i + 1] ?? [new Error('no reply')]
      if (error) {
        result.skipped.push({id: ready[i].dlqId, why: error.message})
        continue
      }
      toDelete.push(ready[i].raw.streamId)
      // A null reply: an earlier, interrupted requeue already published it; only the delete was missing.
      if (sid !== null) count(ready[i].prepared.event.channel, null, 1)
    }
    if (toDelete.length > 0) {
      const {dlqChannel, reason} = ready[0].raw
      await redis.xdel(keys.dlq(dlqChannel, reason), ...toDelete)
    }
  }

  /**
   * Deletes dead letters matching the filter, in batches (XDEL of a few hundred ids per call).
   * @throws InvalidInputError for bad filters
   */
  async purge(options: PurgeOptions = {}): Promise<PurgeResult> {
    const {redis, keys} = this.ctx
    let purged = 0
    let pending: RawEntry[] = []
    const flush = async () => {
      if (pending.length === 0) return
      const {dlqChannel, reason} = pending[0]
      const ids = pending.map((p) => p.streamId)
      pending = []
      purged += options.dryRun ? ids.length : Number(await redis.xdel(keys.dlq(dlqChannel, reason), ...ids))
    }
    for await (const raw of this.scan(options)) {
      if (
        pending.length > 0 &&
        (pending[0].dlqChannel !== raw.dlqChannel || pending[0].reason !== raw.reason)
      )
        await flush()
      pending.push(raw)
      if (pending.length >= DEFAULT_BATCH) await flush()
    }
    await flush()
    return {purged, dryRun: options.dryRun === true}
  }
}
