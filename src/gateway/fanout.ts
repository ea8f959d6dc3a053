/**
 * Fan-out of live events to many clients. Clients that ask for the same channel patterns share one
 * *group*: one bus subscription, one cursor, and per event one JSON text and one SSE frame, written
 * as the same bytes to every member (filters are per member). A client first catches up on its own
 * (history from its cursor, then live: `openStream` in `live.ts`), then joins its group; while both
 * deliver, the client's cursor drops what it already sent, so the seam has no gap and no duplicate.
 *
 * The group's cursor stands for every live member: a member has received (or filtered out)
 * everything the group dispatched, and a channel the group has dispatched nothing on since it
 * started has no newer history, so resuming from the group's cursor is resuming from the member's.
 *
 * Redis outages: when the link to Redis is lost, groups stop dispatching; once the subscription is
 * back (the bus's `onGap`, or the link reported back), each group reads the history after its cursor
 * (the `tail --since` stitching) and goes on live, so its members miss nothing that history still
 * holds. What history no longer has (trimmed, or a Redis that lost its data) is told to the members
 * as a number of missed events.
 */
import type {RaptorBus} from '../bus/bus.js'
import type {ConnectionChange} from '../bus/connection.js'
import type {RaptorEvent} from '../bus/envelope.js'
import type {LiveGap, LiveMeta, Subscription} from '../bus/live.js'
import {CursorTracker} from './cursor.js'
import {FrameQueue, type FlushScheduler} from './flush.js'

/** One dispatched event with its text forms, each made once however many members send it. */
export class SharedEvent {
  private frame?: Buffer
  private wsText?: string
  private jsonText?: string

  constructor(
    readonly event: RaptorEvent,
    readonly meta: LiveMeta,
    /** The group's cursor after this event. */
    readonly cursor: string,
  ) {}

  get json(): string {
    return (this.jsonText ??= JSON.stringify(this.event))
  }

  /** The whole SSE message: `id:` (the group's cursor) and `data:` lines. */
  sseFrame(): Buffer {
    return (this.frame ??= Buffer.from(`id: ${this.cursor}\ndata: ${this.json}\n\n`))
  }

  /** The end of a WebSocket `event` message, after its subscription id. */
  wsTail(): string {
    return (this.wsText ??= `,"cursor":${JSON.stringify(this.cursor)},"event":${this.json}}`)
  }
}

/** A client of a group. */
export interface Member {
  /** One event of the group (members filter for themselves). */
  offer(shared: SharedEvent): void
  /** Events lost in a Redis outage that history no longer holds. */
  missed(count: number, cursor: string): void
}

/** A member's place in its group. */
export interface Membership {
  /** The group's cursor: where the member stands once it has received every event offered. */
  cursor(): string
  /**
   * From now on, instead of `offer`, `write` gets the SSE frames of every event of the group as one
   * buffer per flush: the same buffer for every such member (for members without filters).
   */
  useBatch(write: (frames: Buffer, events: number) => void): void
  leave(): void
}

type State = 'live' | 'suspended' | 'restitching'

/** Waits before retrying a failed resume from history. */
const RETRY_MS = 1000
/** After the link is back, how long a group waits for its subscription's gap report. */
const GAP_REPORT_WAIT_MS = 500

class Group {
  /** Members offered each event. */
  readonly members = new Set<Member>()
  /** Members given the group's batch of SSE frames at each flush. */
  readonly batched = new Map<Member, (frames: Buffer, events: number) => void>()
  /** Members to move to `batched` once the batch being gathered is written (they have its events). */
  private readonly toBatch = new Map<Member, (frames: Buffer, events: number) => void>()
  private readonly batch = new FrameQueue()
  cursor!: CursorTracker
  private sub?: Subscription
  private generation = 0
  private state: State = 'live'
  /** Events the library reported lost (since the last accounting). */
  private lost = 0
  /** Live events ignored while suspended (history has them; they are not lost). */
  private ignored = 0
  private retry?: NodeJS.Timeout
  private closed = false
  ready: Promise<void>

  constructor(
    private readonly bus: RaptorBus,
    readonly patterns: string[],
    private readonly flusher: FlushScheduler,
    private readonly onError: (message: string) => void,
  ) {
    this.ready = this.start()
  }

  get size(): number {
    return this.members.size + this.batched.size
  }

  useBatch(member: Member, write: (frames: Buffer, events: number) => void): void {
    if (!this.members.has(member)) return
    if (this.batch.bytes === 0) {
      this.members.delete(member)
      this.batched.set(member, write)
    } else {
      // It was offered the events gathered so far: it joins the batch after they are written.
      this.toBatch.set(member, write)
    }
  }

  remove(member: Member): void {
    this.members.delete(member)
    this.batched.delete(member)
    this.toBatch.delete(member)
  }

  private readonly flush = () => {
    const events = this.batch.count
    const frames = this.batch.take()
    if (frames) for (const write of this.batched.values()) write(frames, events)
    for (const [member, write] of this.toBatch) {
      this.members.delete(member)
      this.batched.set(member, write)
    }
    this.toBatch.clear()
  }

  private async start(): Promise<void> {
    const generation = ++this.generation
    this.sub = await this.bus.subscribe(this.patterns, this.handler(generation), {
      onGap: (gap) => this.onGap(generation, gap),
      // Dispatch is synchronous: nothing is ever in flight.
      maxInFlight: Number.MAX_SAFE_INTEGER,
    })
    // Taken once the subscription is confirmed: whatever is newer than this and matches reaches
    // the group, so a channel it has dispatched nothing on has nothing newer in history.
    this.cursor = new CursorTracker(await this.bus.history.serverTime())
  }

  private handler(generation: number) {
    return (event: RaptorEvent, meta: LiveMeta) => {
      if (generation !== this.generation || this.state === 'suspended') {
        if (generation === this.generation) this.ignored++
        return
      }
      this.dispatch(event, meta)
    }
  }

  private dispatch(event: RaptorEvent, meta: LiveMeta): void {
    this.cursor.advance(meta.channel, meta.streamId)
    const shared = new SharedEvent(event, meta, this.cursor.toString())
    for (const member of this.members) member.offer(shared)
    if (this.batched.size > 0 || this.toBatch.size > 0) {
      this.batch.push(shared.sseFrame())
      this.flusher.mark(this.flush)
    }
  }

  /** The link to Redis went down: stop dispatching (what follows comes from history, in order). */
  suspend(): void {
    if (this.closed || this.state !== 'live') return
    this.state = 'suspended'
    this.ignored = 0
  }

  private onGap(generation: number, gap: LiveGap): void {
    if (generation !== this.generation) return
    this.lost += gap.lost
    this.suspend()
    void this.restitch()
  }

  /**
   * The link is back. The subscription's gap report (which says how much was lost) starts the
   * resume; when only the command connection dropped there is none, and this does after a while.
   */
  reconnected(): void {
    if (this.state !== 'suspended') return
    clearTimeout(this.retry)
    this.retry = setTimeout(() => void this.restitch(), GAP_REPORT_WAIT_MS)
    this.retry.unref()
  }

  /** Reads the history after the group's cursor, then goes live again with no gap and no duplicate. */
  private async restitch(): Promise<void> {
    if (this.closed || this.state !== 'suspended') return
    clearTimeout(this.retry)
    this.state = 'restitching'
    const old = this.sub
    const generation = ++this.generation
    let recovered = 0
    try {
      const now = await this.bus.history.serverTime()
      const sub = await this.bus.subscribe(
        this.patterns,
        (event, meta) => {
          if (generation !== this.generation) return
          if (Number(meta.streamId.slice(0, meta.streamId.indexOf('-'))) <= now) recovered++
          this.dispatch(event, meta)
        },
        {
          resume: this.cursor.toStreamCursor(),
          onGap: (gap) => this.onGap(generation, gap),
          maxInFlight: Number.MAX_SAFE_INTEGER,
        },
      )
      if (this.closed) return void (await sub.unsubscribe().catch(() => {}))
      this.sub = sub
      this.state = 'live'
      // History re-delivered what was ignored while suspended; the rest it holds was lost live.
      const missed = this.lost - Math.max(0, recovered - this.ignored)
      this.lost = 0
      if (missed > 0) {
        const cursor = this.cursor.toString()
        for (const member of [...this.members, ...this.batched.keys()]) member.missed(missed, cursor)
      }
      await old?.unsubscribe().catch(() => {})
    } catch (error) {
      if (this.closed) return
      this.generation++
      this.state = 'suspended'
      this.onError(`resuming live streams from history failed (retrying): ${(error as Error).message}`)
      this.retry = setTimeout(() => void this.restitch(), RETRY_MS)
      this.retry.unref()
    }
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    this.generation++
    await this.ready.catch(() => {})
    await this.sub?.unsubscribe().catch(() => {})
  }
}

/** The groups of one gateway, by pattern set. */
export class Fanout {
  private readonly groups = new Map<string, Group>()

  constructor(
    private readonly bus: RaptorBus,
    private readonly flusher: FlushScheduler,
    private readonly onError: (message: string) => void,
  ) {}

  /** Number of groups (distinct pattern sets) open. */
  get size(): number {
    return this.groups.size
  }

  /** Adds a member to the group of these patterns (opening it when new). */
  async join(patterns: readonly string[], member: Member): Promise<Membership> {
    const key = [...new Set(patterns)].sort().join(',')
    let group = this.groups.get(key)
    if (!group) {
      group = new Group(this.bus, key.split(','), this.flusher, this.onError)
      this.groups.set(key, group)
    }
    try {
      await group.ready
    } catch (error) {
      if (this.groups.get(key) === group && group.members.size === 0) this.groups.delete(key)
      throw error
    }
    // Its last member left while this one waited: the group is closing, open a new one.
    if (this.groups.get(key) !== group) return this.join(patterns, member)
    const joined = group
    joined.members.add(member)
    return {
      cursor: () => joined.cursor.toString(),
      useBatch: (write) => joined.useBatch(member, write),
      leave: () => {
        if (joined.size === 0) return
        joined.remove(member)
        if (joined.size > 0) return
        if (this.groups.get(key) === joined) this.groups.delete(key)
        void joined.close()
      },
    }
  }

  /** The bus's link to Redis changed (`onConnectionChange`). */
  connectionChanged(change: ConnectionChange): void {
    for (const group of this.groups.values())
      if (change.state === 'lost') group.suspend()
      else group.reconnected()
  }

  async close(): Promise<void> {
    const groups = [...this.groups.values()]
    this.groups.clear()
    await Promise.all(groups.map((g) => g.close()))
  }
}
