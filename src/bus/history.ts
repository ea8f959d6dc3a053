import type {Topology} from './channels.js'
import {assertChannelName} from './channels.js'
import {anySlotPipeline, clockNode, type RedisClient} from './cluster.js'
import {MalformedEntryError, NotFoundError, type SchemaIssue} from './errors.js'
import {formatIssues, parseEnvelope} from './envelope.js'
import type {RaptorEvent} from './envelope.js'
import {ID_EARLY_MS, ID_LATE_MS, eventIdTime} from './event-ids.js'
import type {Keys} from './keys.js'
import {compareIds, idAt, idTime} from './stream-ids.js'

/**
 * Entries `get` reads each way per channel and round: a few first (the event is nearly always
 * right at its id's time), then more.
 */
const FIND_FIRST = 64
const FIND_STEP = 512

/** A time window over a channel's history. Times are ms since the epoch or Dates, by Redis server time. */
export interface ReplayWindow {
  /** Only events of the last `since` ms. */
  since?: number
  /** Only events at or after this time. */
  from?: number | Date
  /** Only events at or before this time. */
  until?: number | Date
  /** Only events of these types. */
  types?: readonly string[]
  /** At most this many events. */
  limit?: number
  /**
   * Only entries after this stream entry id (exclusive): resumes a read where an earlier one stopped.
   * Retention still applies.
   */
  after?: string
}

/** One history entry: an event, or what was wrong with an entry that is not one. */
export type HistoryEntry =
  | {streamId: string; channel: string; event: RaptorEvent; issues?: undefined}
  | {streamId: string; channel: string; event?: undefined; issues: SchemaIssue[]; raw: Record<string, string>}

const PAGE = 500

function toMs(value: number | Date | undefined): number | undefined {
  return value instanceof Date ? value.getTime() : value
}

function fieldsOf(flat: string[]): Record<string, string> {
  // No prototype: field names come from whoever wrote the entry.
  const fields: Record<string, string> = Object.create(null)
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]] = flat[i + 1]
  return fields
}

/** The error that says a history entry is not an event (for readers that skip it, and for `get`). */
export function malformedEntry(entry: Extract<HistoryEntry, {issues: SchemaIssue[]}>): MalformedEntryError {
  return new MalformedEntryError(
    `malformed entry ${entry.streamId} on ${entry.channel}: ${formatIssues(entry.issues)}`,
    entry.issues,
    {channel: entry.channel, streamId: entry.streamId},
  )
}

/** Turns one XRANGE/XREADGROUP entry into a history entry. */
export function toEntry(channel: string, streamId: string, flat: string[]): HistoryEntry {
  const fields = fieldsOf(flat)
  const parsed = parseEnvelope(fields.e)
  return parsed.ok
    ? {streamId, channel, event: parsed.event}
    : {streamId, channel, issues: parsed.issues, raw: fields}
}

/** Reads channel history (the streams), always by Redis server time and within retention. */
export class History {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly topology: Topology,
  ) {}

  /** Redis server time in ms (on a cluster, always of the same node: see `clockNode`). */
  async serverTime(): Promise<number> {
    const [sec, usec] = await clockNode(this.redis).time()
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
  }

  /** Every concrete channel: the topology's and every one published to. */
  async knownChannels(): Promise<string[]> {
    const registered = await this.redis.smembers(this.keys.channelRegistry())
    return [...new Set([...this.topology.names(), ...registered])].sort()
  }

  /**
   * The bounds of a window as stream ids, clamped to the channel's retention.
   * `reachesPastRetention` is true when the window asked for older events than are kept.
   */
  async bounds(channel: string, window: ReplayWindow, now?: number) {
    const serverNow = now ?? (await this.serverTime())
    const retention = this.topology.retentionMs(channel) ?? 0
    const oldest = serverNow - retention
    const wanted = Math.max(toMs(window.from) ?? 0, window.since === undefined ? 0 : serverNow - window.since)
    const until = toMs(window.until)
    const end = until === undefined ? '+' : `${Math.floor(until)}-${Number.MAX_SAFE_INTEGER}`
    const start = idAt(Math.max(wanted, oldest))
    if (window.after !== undefined) {
      // Resuming after a known entry: the later of that entry and the window's own start.
      if (compareIds(window.after, start) >= 0)
        return {start: window.after, startExclusive: true, end, reachesPastRetention: false}
      return {start, startExclusive: false, end, reachesPastRetention: idTime(window.after) < oldest}
    }
    return {start, startExclusive: false, end, reachesPastRetention: wanted < oldest}
  }

  /** Entries of one channel in publish order (malformed ones included, flagged by `issues`). */
  async *entries(channel: string, window: ReplayWindow = {}, stopAt?: string): AsyncGenerator<HistoryEntry> {
    assertChannelName(channel)
    const {start, startExclusive, end} = await this.bounds(channel, window)
    const types = window.types && window.types.length > 0 ? new Set(window.types) : undefined
    let cursor = start
    let exclusive = startExclusive
    let left = window.limit ?? Infinity
    while (left > 0) {
      const page = (await this.redis.xrange(
        this.keys.stream(channel),
        exclusive ? `(${cursor}` : cursor,
        end,
        'COUNT',
        PAGE,
      )) as [string, string[]][]
      for (const [id, flat] of page) {
        if (stopAt !== undefined && compareIds(id, stopAt) > 0) return
        const entry = toEntry(channel, id, flat)
        if (types && !(entry.event && types.has(entry.event.type))) continue
        yield entry
        if (--left <= 0) return
      }
      if (page.length < PAGE) return
      cursor = page[page.length - 1][0]
      exclusive = true
    }
  }

  /**
   * Events of one channel in publish order; malformed entries are skipped, each reported to
   * `onMalformed` when given.
   */
  async *events(
    channel: string,
    window: ReplayWindow = {},
    onMalformed?: (error: MalformedEntryError) => void,
  ): AsyncGenerator<RaptorEvent> {
    for await (const entry of this.entries(channel, window)) {
      if (entry.event) yield entry.event
      else onMalformed?.(malformedEntry(entry))
    }
  }

  /**
   * One event by id, from whichever channel holds it: by its index key when it has one, else (a
   * raptor `evt-<uuid v7>` id) by reading each channel's history around the time the id carries,
   * from that time outwards, within the window the publish script guarantees (see event-ids.ts).
   * @throws NotFoundError when no channel holds it (never published, or expired with its retention)
   * @throws MalformedEntryError when the entry it names is not a valid envelope
   */
  async get(eventId: string): Promise<{event: RaptorEvent; channel: string; streamId: string}> {
    const channels = await this.knownChannels()
    const pipeline = anySlotPipeline(this.redis)
    for (const c of channels) pipeline.get(this.keys.eventIndex(c, eventId))
    const results = (await pipeline.exec()) ?? []
    const found: Found = {}
    for (let i = 0; i < channels.length; i++) {
      const streamId = results[i]?.[1] as string | null
      if (!streamId) continue
      const page = (await this.redis.xrange(this.keys.stream(channels[i]), streamId, streamId)) as [
        string,
        string[],
      ][]
      if (page.length === 0) continue
      consider(found, eventId, channels[i], page[0][0], page[0][1])
      if (found.hit) return found.hit
    }
    const ms = eventIdTime(eventId)
    if (ms !== undefined) {
      await this.search(channels, eventId, ms, found)
      if (found.hit) return found.hit
    }
    if (found.malformed) {
      found.malformed.message = `event ${eventId} is stored as a ${found.malformed.message}: it cannot be shown`
      throw found.malformed
    }
    throw new NotFoundError(
      `event ${eventId} not found: it was never published here or has expired with its channel's retention`,
      {
        id: eventId,
      },
    )
  }

  /**
   * Reads the history of every channel around `ms` for the event, outwards both ways (XRANGE
   * onwards from `ms`, XREVRANGE back from it: plain reads, so a read-only user can `get`), a
   * bounded number of entries per channel and round (one pipelined round trip), until it is found
   * or every window is read.
   */
  private async search(
    channels: readonly string[],
    eventId: string,
    ms: number,
    found: Found,
  ): Promise<void> {
    // The id as the envelope JSON writes it: entries that do not hold it are not parsed.
    const needle = JSON.stringify(eventId)
    let open = channels.map((channel) => ({channel, forward: idAt(ms), backward: `(${idAt(ms)}`}))
    const forwardEnd = String(ms + ID_LATE_MS)
    const backwardEnd = idAt(ms - ID_EARLY_MS)
    for (let count = FIND_FIRST; open.length > 0; count = FIND_STEP) {
      const pipeline = anySlotPipeline(this.redis)
      for (const o of open) {
        const stream = this.keys.stream(o.channel)
        if (o.forward !== '') pipeline.xrange(stream, o.forward, forwardEnd, 'COUNT', count)
        if (o.backward !== '') pipeline.xrevrange(stream, o.backward, backwardEnd, 'COUNT', count)
      }
      const replies = (await pipeline.exec()) ?? []
      let r = 0
      const page = () => {
        const [error, entries] = replies[r++] ?? [new Error('no reply')]
        if (error) throw error
        return entries as [string, string[]][]
      }
      const next: typeof open = []
      for (const o of open) {
        const side = (cursor: string) => {
          if (cursor === '') return ''
          const entries = page()
          for (const [id, flat] of entries)
            if (flat.some((value, i) => i % 2 === 1 && value.includes(needle)))
              consider(found, eventId, o.channel, id, flat)
          return entries.length === count ? `(${entries[entries.length - 1][0]}` : ''
        }
        const forward = side(o.forward)
        const backward = side(o.backward)
        if (forward !== '' || backward !== '') next.push({channel: o.channel, forward, backward})
      }
      if (found.hit) return
      open = next
    }
  }
}

/** What `get` found so far: the event, or a malformed entry that may be it. */
interface Found {
  hit?: {event: RaptorEvent; channel: string; streamId: string}
  malformed?: MalformedEntryError
}

/** Takes an entry that may be the event with this id. */
function consider(found: Found, eventId: string, channel: string, streamId: string, flat: string[]): void {
  const entry = toEntry(channel, streamId, flat)
  if (entry.event) {
    if (entry.event.id === eventId) found.hit = {event: entry.event, channel, streamId}
  } else found.malformed ??= malformedEntry(entry)
}
