import {hostname} from 'node:os'
import {randomBytes} from 'node:crypto'

import type {Redis} from 'ioredis'

import {DLQ_RETENTION_MS, channelMatcher, type DlqReason} from './channels.js'
import {openConnection, type ConnectionOptions} from './connection.js'
import {
  checkPayload,
  formatIssues,
  type PayloadSchema,
  type PublishInput,
  type RaptorEvent,
} from './envelope.js'
import {
  Abortable,
  backoffDelay,
  invokeHandler,
  type AttemptResult,
  type HandlerLogger,
  type ResolvedHandler,
} from './handler.js'
import {toEntry, type History} from './history.js'
import type {Keys} from './keys.js'
import {scriptPipeline, type ScriptedRedis} from './scripts.js'
import {compareIds} from './stream-ids.js'

declare module './scripts.js' {
  interface ScriptCommands {
    /** lua/ack.lua: returns the ids that were not acknowledged (owned by another consumer). */
    raptorAck(
      stream: string,
      stats: string,
      hstats: string,
      group: string,
      consumer: string,
      ...rest: string[]
    ): Promise<string[]>
    /** lua/retry.lua: returns the next attempt number, or -1 when the entry was lost. */
    raptorRetry(
      stream: string,
      stats: string,
      hstats: string,
      group: string,
      consumer: string,
      id: string,
    ): Promise<number>
    /** lua/dead-letter.lua: returns the DLQ entry id, or null when the entry was lost. */
    raptorDeadLetter(
      stream: string,
      dlq: string,
      stats: string,
      hstats: string,
      ...args: (string | number)[]
    ): Promise<string | null>
    /** lua/touch.lua: returns the ids this consumer no longer owns. */
    raptorTouch(stream: string, group: string, consumer: string, ...ids: string[]): Promise<string[]>
  }
}

/** How an attempt (or an event) ended, reported to `onOutcome`. */
export interface ConsumeOutcome {
  handler: string
  channel: string
  eventId?: string
  type?: string
  attempt: number
  outcome: 'acked' | 'retrying' | 'dead-lettered' | 'lost' | 'skipped'
  reason?: DlqReason
  error?: string
  /** How long the handler ran in this attempt (0 when it did not run). */
  durationMs: number
  /** True when the handler ran in this attempt (false: e.g. a schema violation never reached it). */
  ran?: boolean
  /** Next retry in ms (outcome `retrying`). */
  retryInMs?: number
}

/** Options of `bus.consume` beside the handler definition. */
export interface ConsumeOptions {
  /** This consumer's name within the group. @defaultValue `<hostname>-<pid>-<random>` */
  consumerId?: string
  /**
   * Events pending on a consumer that has not touched them for this long (it died or hangs without
   * keep-alives) are reclaimed by a live consumer of the same handler. Live consumers refresh
   * their in-flight events every quarter of this, so a slow handler is never stolen.
   * @defaultValue 20000 (redelivery within 30 s of a crash)
   */
  reclaimAfterMs?: number
  /** How long one blocking read waits for new events. @defaultValue 2000 */
  blockMs?: number
  /** How often newly published channels matching the handler's globs are picked up. @defaultValue 5000 */
  refreshMs?: number
  /** Called after every attempt. */
  onOutcome?: (outcome: ConsumeOutcome) => void
  /** Called with errors of the consume loop itself (Redis down, …); the loop keeps going. */
  onError?: (error: Error) => void
  /** Logger for `ctx.log`. @defaultValue silent */
  logger?: HandlerLogger
}

/** What a consumer needs from its bus. */
export interface ConsumerContext {
  redis: ScriptedRedis
  keys: Keys
  history: History
  connection: ConnectionOptions
  schemas: Record<string, PayloadSchema>
  publish(input: PublishInput): Promise<string>
  reply(
    request: RaptorEvent,
    payload: Record<string, unknown>,
    options: {type?: string; source: string},
  ): Promise<void>
}

interface Source {
  channel: string
  stream: string
  requeue: boolean
}

interface InFlight {
  source: Source
  id: string
  abortable: Abortable
  /** Set when another consumer took the entry over (seen by the keep-alive). */
  lost: boolean
}

/** What a dead letter records beside the entry itself. */
interface DeadLetter {
  /** The stored envelope JSON (or the raw entry as JSON when it was not an envelope). */
  json: string | undefined
  reason: DlqReason
  error: string
  attempts: number
  requeues: string
  /** Whether the handler ran (the attempt counts as delivered and failed). */
  ran: boolean
}

interface PendingAck {
  source: Source
  counted: boolean
  ids: string[]
  waiters: (((acked: boolean) => void) | undefined)[]
}

const SILENT: HandlerLogger = {info() {}, warn() {}, error() {}}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve()
      },
      {once: true},
    )
  })
}

/** The value of one field of a stream entry's flat field list. */
function field(fields: string[] | null, name: string): string | undefined {
  if (!fields) return undefined
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]
  return undefined
}

/** Ids in ascending order (they almost always are already: entries finish in the order they were read). */
function ascending(ids: string[]): string[] {
  for (let i = 1; i < ids.length; i++)
    if (compareIds(ids[i - 1], ids[i]) > 0) return [...ids].sort(compareIds)
  return ids
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * A durable consumer: one handler definition, one consumer in that handler's consumer group on
 * every matching channel stream and on the handler's requeue streams. At-least-once: an event is
 * acknowledged only after its handler succeeds; every state change is a fenced Lua script.
 */
export class Consumer {
  /** This consumer's name within the group. */
  readonly id: string
  private readonly group: string
  private readonly reclaimAfterMs: number
  private readonly keepAliveMs: number
  private sources: Source[] = []
  private readonly inFlight = new Map<string, InFlight>()
  private readonly acks = new Map<string, PendingAck>()
  private ackScheduled = false
  /** The ack round trip under way, if any (awaited by stop()). */
  private flushing?: Promise<void>
  private block?: Redis
  private blockClientId?: number
  private stopping = false
  private readonly hardStop = new AbortController()
  private loopDone?: Promise<void>
  private readonly timers: NodeJS.Timeout[] = []
  private slotFreed?: () => void
  private startId = '$'
  private readonly claimCursors = new Map<string, string>()
  private readonly logger: HandlerLogger

  constructor(
    private readonly ctx: ConsumerContext,
    readonly handler: ResolvedHandler,
    private readonly options: ConsumeOptions = {},
  ) {
    this.group = handler.name
    this.id = options.consumerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
    this.reclaimAfterMs = options.reclaimAfterMs ?? 20_000
    this.keepAliveMs = Math.max(50, Math.floor(this.reclaimAfterMs / 4))
    this.logger = options.logger ?? SILENT
  }

  /** Events being handled right now. */
  get inFlightCount(): number {
    return this.inFlight.size
  }

  /** Joins the groups (creating them) and starts consuming. */
  async start(): Promise<void> {
    const now = await this.ctx.history.serverTime()
    await this.refreshSources(this.handler.startFrom === 'history' ? '0' : '$')
    // Channels that appear after the start get every event since the start.
    this.startId = `${now}-0`
    this.block = await openConnection(this.ctx.connection, `${this.ctx.keys.prefix}:consumer:${this.group}`, {
      maxRetriesPerRequest: null,
    })
    this.blockClientId = Number(await this.block.client('ID'))
    this.timers.push(
      setInterval(() => void this.keepAlive().catch((e) => this.reportError(e)), this.keepAliveMs),
      setInterval(
        () => void this.reclaim().catch((e) => this.reportError(e)),
        Math.min(this.keepAliveMs, 5000),
      ),
      setInterval(
        () => void this.refreshSources(this.startId).catch((e) => this.reportError(e)),
        this.options.refreshMs ?? 5000,
      ),
    )
    for (const t of this.timers) t.unref()
    this.loopDone = this.loop()
  }

  /**
   * Stops taking work, lets in-flight handlers finish (and acknowledges them) for up to `graceMs`,
   * then aborts whatever still runs; those events stay pending and are reclaimed by another consumer.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    for (const t of this.timers) clearInterval(t)
    await this.unblock()
    const deadline = Date.now() + graceMs
    while (this.inFlight.size > 0 && Date.now() < deadline) await sleep(20)
    this.hardStop.abort()
    for (const f of this.inFlight.values()) f.abortable.abort(new Error('consumer stopped'))
    await this.loopDone?.catch(() => {})
    if (this.ctx.redis.status === 'ready') {
      await this.flushing
      await this.flushAcks()
    }
    this.block?.disconnect()
  }

  private reportError(error: unknown): void {
    if (this.stopping) return
    this.options.onError?.(error instanceof Error ? error : new Error(String(error)))
  }

  private async unblock(): Promise<void> {
    if (this.blockClientId === undefined) return
    if (this.ctx.redis.status !== 'ready') return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.ctx.redis.client('UNBLOCK', this.blockClientId).catch(() => {}),
      new Promise((r) => (timer = setTimeout(r, 500))),
    ])
    clearTimeout(timer)
  }

  /** Resolves the handler's channels (names and globs) to streams and joins their groups. */
  private async refreshSources(startId: string): Promise<void> {
    const matchers = this.handler.channels.map(channelMatcher)
    const exact = this.handler.channels.filter((c) => !/[*?[\]>]/.test(c))
    const known = await this.ctx.history.knownChannels()
    const channels = [...new Set([...exact, ...known.filter((c) => matchers.some((m) => m(c)))])].sort()
    const have = new Set(this.sources.map((s) => s.stream))
    const fresh: Source[] = []
    for (const channel of channels) {
      const stream = this.ctx.keys.stream(channel)
      if (!have.has(stream)) fresh.push({channel, stream, requeue: false})
      const rq = this.ctx.keys.requeue(channel, this.group)
      if (!have.has(rq)) fresh.push({channel, stream: rq, requeue: true})
    }
    if (fresh.length === 0) return
    await this.createGroups(fresh, startId)
    this.sources = [...this.sources, ...fresh]
  }

  private async createGroups(sources: Source[], startId: string): Promise<void> {
    const pipeline = this.ctx.redis.pipeline()
    for (const s of sources)
      pipeline.xgroup('CREATE', s.stream, this.group, s.requeue ? '0' : startId, 'MKSTREAM')
    const results = (await pipeline.exec()) ?? []
    for (const [error] of results) if (error && !/BUSYGROUP/.test(error.message)) throw error
  }

  private async loop(): Promise<void> {
    let failures = 0
    while (!this.stopping) {
      const free = this.handler.concurrency - this.inFlight.size
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve))
        // Let the other handlers finishing in this tick free their slots too: fewer, fuller reads.
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      const sources = this.sources
      try {
        const result = (await this.block!.xreadgroup(
          'GROUP',
          this.group,
          this.id,
          'COUNT',
          free,
          'BLOCK',
          this.options.blockMs ?? 2000,
          'STREAMS',
          ...sources.map((s) => s.stream),
          ...sources.map(() => '>'),
        )) as [string, [string, string[]][]][] | null
        failures = 0
        if (!result) continue
        const byStream = new Map(sources.map((s) => [s.stream, s]))
        for (const [stream, entries] of result) {
          const source = byStream.get(stream)
          if (!source) continue
          for (const [id, fields] of entries) this.begin(source, id, fields, 1)
        }
      } catch (error) {
        if (this.stopping) break
        failures++
        this.reportError(error)
        if (/NOGROUP/.test(errorMessage(error))) {
          // Redis lost the groups (restarted without persistence): join again and go on.
          await this.createGroups(this.sources, '0').catch((e) => this.reportError(e))
        }
        await sleep(Math.min(100 * 2 ** failures, 2000), this.hardStop.signal)
      }
    }
  }

  /** Starts handling one entry; the slot is held until the event is acked, retried out or dead-lettered. */
  private begin(source: Source, id: string, fields: string[] | null, attempt: number): void {
    const key = `${source.stream}\n${id}`
    if (this.inFlight.has(key)) return
    const flight: InFlight = {source, id, abortable: new Abortable(), lost: false}
    this.inFlight.set(key, flight)
    void this.process(flight, fields, attempt)
      .catch((error) => this.reportError(error))
      .finally(() => {
        this.inFlight.delete(key)
        const wake = this.slotFreed
        this.slotFreed = undefined
        wake?.()
      })
  }

  private outcome(o: Omit<ConsumeOutcome, 'handler'>): void {
    this.options.onOutcome?.({handler: this.group, ...o})
  }

  private async process(flight: InFlight, fields: string[] | null, firstAttempt: number): Promise<void> {
    const {source, id} = flight
    const entry = toEntry(source.channel, id, fields ?? [])
    const stored = field(fields, 'e')
    const requeues = field(fields, 'requeues') ?? '0'
    /** Dead-letters the entry (fenced) and reports it. */
    const park = async (
      dead: Omit<DeadLetter, 'requeues'>,
      report: Omit<ConsumeOutcome, 'handler' | 'outcome' | 'reason' | 'error'>,
    ) => {
      const parked = await this.deadLetter(flight, {...dead, requeues})
      this.outcome({
        ...report,
        outcome: parked ? 'dead-lettered' : 'lost',
        reason: dead.reason,
        error: dead.error,
        ran: dead.ran,
      })
    }
    if (!entry.event) {
      const error = `not a valid envelope: ${formatIssues(entry.issues)}`
      const dead = {
        json: JSON.stringify(entry.raw),
        reason: 'schema_violation',
        error,
        attempts: firstAttempt,
        ran: false,
      } as const
      return park(dead, {channel: source.channel, attempt: firstAttempt, durationMs: 0})
    }
    const event = entry.event
    const base = {channel: source.channel, eventId: event.id, type: event.type}
    if (this.handler.types && !this.handler.types.includes(event.type)) {
      this.ack(source, id, false)
      this.outcome({...base, attempt: firstAttempt, outcome: 'skipped', durationMs: 0})
      return
    }
    try {
      checkPayload(event, this.ctx.schemas[event.type])
    } catch (error) {
      const dead = {
        json: stored,
        reason: 'schema_violation',
        error: errorMessage(error),
        attempts: firstAttempt,
        ran: false,
      } as const
      return park(dead, {...base, attempt: firstAttempt, durationMs: 0})
    }
    if (firstAttempt > this.handler.maxRetries + 1) {
      // Delivered this often without an outcome: it crashed or stalled its consumer every time.
      const error = `gave up after ${firstAttempt - 1} deliveries without an outcome (the consumer crashed or stalled each time)`
      const dead = {
        json: stored,
        reason: 'max_retries_exceeded',
        error,
        attempts: firstAttempt - 1,
        ran: false,
      } as const
      return park(dead, {...base, attempt: firstAttempt, durationMs: 0})
    }
    let attempt = firstAttempt
    for (;;) {
      const t0 = Date.now()
      const result = await this.attempt(flight, event, attempt)
      const durationMs = Date.now() - t0
      if (flight.lost || result.kind === 'stopped') {
        this.outcome({...base, attempt, outcome: 'lost', durationMs})
        return
      }
      if (result.kind === 'ok') {
        // The slot is free as soon as the handler is done; the ack rides the next batched round trip.
        this.ack(source, id, true, (acked) => {
          if (!this.options.onOutcome) return
          this.outcome({
            ...base,
            attempt,
            outcome: acked ? 'acked' : 'lost',
            durationMs,
            ran: true,
          })
        })
        return
      }
      if (result.kind === 'timeout') {
        const error = `handler exceeded timeoutMs ${this.handler.timeoutMs}`
        return park(
          {json: stored, reason: 'processing_timeout', error, attempts: attempt, ran: true},
          {...base, attempt, durationMs},
        )
      }
      if (attempt > this.handler.maxRetries) {
        const dead = {
          json: stored,
          reason: 'max_retries_exceeded',
          error: result.error,
          attempts: attempt,
          ran: true,
        } as const
        return park(dead, {...base, attempt, durationMs})
      }
      const keys = this.ctx.keys
      const next = await this.ctx.redis.raptorRetry(
        source.stream,
        keys.stats(source.channel),
        keys.handlerStats(source.channel, this.group),
        this.group,
        this.id,
        id,
      )
      if (next < 0) {
        this.outcome({...base, attempt, outcome: 'lost', error: result.error, durationMs})
        return
      }
      const delay = backoffDelay(this.handler.backoff, attempt)
      this.outcome({
        ...base,
        attempt,
        outcome: 'retrying',
        error: result.error,
        durationMs,
        ran: true,
        retryInMs: delay,
      })
      await sleep(delay, this.hardStop.signal)
      if (this.hardStop.signal.aborted) return
      attempt = next
    }
  }

  /** Runs the handler once, with the timeout and the abort signal. */
  private attempt(flight: InFlight, event: RaptorEvent, attempt: number): Promise<AttemptResult> {
    flight.abortable = new Abortable()
    return invokeHandler(
      this.handler,
      event,
      {
        publish: (input) => this.ctx.publish({source: this.id, ...input}),
        reply: (payload, options = {}) => this.ctx.reply(event, payload, {...options, source: this.id}),
        attempt,
        channel: flight.source.channel,
        handler: this.group,
        log: this.logger,
      },
      flight.abortable,
    )
  }

  private async deadLetter(flight: InFlight, dead: DeadLetter): Promise<boolean> {
    const {source, id} = flight
    const keys = this.ctx.keys
    const parked = await this.ctx.redis.raptorDeadLetter(
      source.stream,
      keys.dlq(source.channel, dead.reason),
      keys.stats(source.channel),
      keys.handlerStats(source.channel, this.group),
      this.group,
      this.id,
      id,
      dead.json ?? '{}',
      dead.reason,
      source.channel,
      dead.error,
      dead.attempts,
      DLQ_RETENTION_MS,
      dead.requeues,
      dead.ran ? '1' : '0',
      source.requeue ? '1' : '0',
    )
    return parked !== null
  }

  /** Queues an ack; acks finishing in the same tick go to Redis together (one script per stream). */
  private ack(source: Source, id: string, counted: boolean, done?: (acked: boolean) => void): void {
    const key = counted ? source.stream : `${source.stream}\n0`
    let pending = this.acks.get(key)
    if (!pending) {
      pending = {source, counted, ids: [], waiters: []}
      this.acks.set(key, pending)
    }
    pending.ids.push(id)
    pending.waiters.push(done)
    if (!this.ackScheduled) {
      this.ackScheduled = true
      setImmediate(() => {
        this.flushing = this.flushAcks()
      })
    }
  }

  private async flushAcks(): Promise<void> {
    this.ackScheduled = false
    if (this.acks.size === 0) return
    const batches = [...this.acks.values()]
    this.acks.clear()
    const keys = this.ctx.keys
    const pipeline = scriptPipeline(this.ctx.redis)
    for (const b of batches) {
      pipeline.raptorAck(
        b.source.stream,
        keys.stats(b.source.channel),
        keys.handlerStats(b.source.channel, this.group),
        this.group,
        this.id,
        b.source.requeue ? '1' : '0',
        b.counted ? '1' : '0',
        String(this.handler.concurrency),
        ...ascending(b.ids),
      )
    }
    let results: [Error | null, unknown][] = []
    try {
      results = (await pipeline.exec()) ?? []
    } catch (error) {
      this.reportError(error)
    }
    batches.forEach((b, i) => {
      const [error, lost] = results[i] ?? [new Error('ack not sent'), []]
      if (error) this.reportError(error)
      const notAcked = new Set(error ? b.ids : (lost as string[]))
      b.ids.forEach((id, j) => b.waiters[j]?.(!notAcked.has(id)))
    })
  }

  /** Refreshes the idle time of every in-flight entry; marks and aborts the ones lost to another consumer. */
  private async keepAlive(): Promise<void> {
    if (this.inFlight.size === 0) return
    const byStream = new Map<string, InFlight[]>()
    for (const f of this.inFlight.values()) {
      const list = byStream.get(f.source.stream) ?? []
      list.push(f)
      byStream.set(f.source.stream, list)
    }
    const pipeline = scriptPipeline(this.ctx.redis)
    const streams = [...byStream.keys()]
    for (const s of streams)
      pipeline.raptorTouch(s, this.group, this.id, ...byStream.get(s)!.map((f) => f.id))
    const results = (await pipeline.exec()) ?? []
    results.forEach(([error, lost], i) => {
      if (error) return this.reportError(error)
      for (const id of lost as string[]) {
        const flight = this.inFlight.get(`${streams[i]}\n${id}`)
        if (!flight) continue
        flight.lost = true
        flight.abortable.abort(new Error('lease lost: another consumer reclaimed this event'))
      }
    })
  }

  /** Takes over entries that another consumer of this handler left idle too long (it died). */
  private async reclaim(): Promise<void> {
    for (const source of this.sources) {
      const free = this.handler.concurrency - this.inFlight.size
      if (free <= 0 || this.stopping) return
      const cursor = this.claimCursors.get(source.stream) ?? '0-0'
      const [next, entries] = (await this.ctx.redis.xautoclaim(
        source.stream,
        this.group,
        this.id,
        this.reclaimAfterMs,
        cursor,
        'COUNT',
        free,
      )) as [string, [string, string[] | null][], string[]]
      this.claimCursors.set(source.stream, next)
      const claimed = entries.filter(([, fields]) => fields !== null)
      if (claimed.length === 0) continue
      const keys = this.ctx.keys
      const pipeline = this.ctx.redis.pipeline()
      pipeline.xpending(
        source.stream,
        this.group,
        claimed[0][0],
        claimed[claimed.length - 1][0],
        claimed.length + this.inFlight.size,
        this.id,
      )
      for (const k of [keys.stats(source.channel), keys.handlerStats(source.channel, this.group)]) {
        pipeline.hincrby(k, 'duplicates', claimed.length)
      }
      const [[error, pending]] = ((await pipeline.exec()) ?? []) as [
        Error | null,
        [string, string, number, number][],
      ][]
      if (error) throw error
      const counts = new Map(pending.map(([id, , , count]) => [id, Number(count)]))
      for (const [id, fields] of claimed) this.begin(source, id, fields, counts.get(id) ?? 2)
    }
  }
}
