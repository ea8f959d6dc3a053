import {randomBytes} from 'node:crypto'
import {hostname} from 'node:os'
import {setTimeout as delay} from 'node:timers/promises'

import {HEARTBEAT_CHANNEL, channelMatcher, isPattern} from './channels.js'
import type {ConnectionOptions} from './connection.js'
import {AckBatcher} from './consumer-acks.js'
import {processGate} from './consumer-gate.js'
import {Handling, type BusAccess, type ConsumeOutcome, type Flight} from './consumer-handling.js'
import {LeaseKeeper, type HeldEntry} from './consumer-lease.js'
import {openReader, type EntryReader} from './consumer-read.js'
import {ConsumeScripts, type Claimed, type Source} from './consumer-scripts.js'
import {Abortable, type HandlerLogger, type ResolvedHandler} from './handler.js'
import type {History} from './history.js'
import type {Keys} from './keys.js'
import {scriptPipeline, type ScriptedRedis} from './scripts.js'

export type {ConsumeOutcome} from './consumer-handling.js'

/** Options of `bus.consume` beside the handler definition. */
export interface ConsumeOptions {
  /**
   * Prefix of this consumer's name within the group; a random suffix makes every consumer process's
   * name its own, so that two processes can never act as one.
   * @defaultValue `<hostname>-<pid>`
   */
  consumerId?: string
  /**
   * Events pending on a consumer that has not touched them for this long (it died or hangs without
   * keep-alives) are taken over by a live consumer of the same handler, ahead of new events. Live
   * consumers refresh their events every quarter of this, so a slow handler is never stolen.
   * @defaultValue 20000 (redelivery within 30 s of a crash)
   */
  reclaimAfterMs?: number
  /**
   * How long one blocking read waits for new events. On a Redis Cluster, where reads are woken by
   * the channels' bells, how often every stream is read anyway (the safety poll). @defaultValue 2000
   */
  blockMs?: number
  /** How often newly published channels matching the handler's globs are picked up. @defaultValue 5000 */
  refreshMs?: number
  /** Called after every attempt. */
  onOutcome?: (outcome: ConsumeOutcome) => void
  /** Called when this consumer takes an event over from a consumer that went silent holding it. */
  onTakeover?: (takeover: Takeover) => void
  /** Called with errors of the consume loop itself (Redis down, …); the loop keeps going. */
  onError?: (error: Error) => void
  /** Logger for `ctx.log`. @defaultValue silent */
  logger?: HandlerLogger
}

/** An event taken over from a consumer that died or stalled while holding it. */
export interface Takeover {
  handler: string
  channel: string
  /** The stream entry id. */
  entryId: string
  eventId?: string
  /** The consumer that held it. */
  from: string
  /** Attempts that started before (and never finished). */
  attempts: number
}

/** What a consumer needs from its bus. */
export interface ConsumerContext extends BusAccess {
  redis: ScriptedRedis
  keys: Keys
  history: History
  connection: ConnectionOptions
}

const SILENT: HandlerLogger = {info() {}, warn() {}, error() {}}

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error))

/**
 * A durable consumer: one handler definition, one consumer in that handler's consumer group on every
 * matching channel stream and on the handler's requeue streams. At-least-once: an event is
 * acknowledged only after its handler succeeds; every state change is a fenced Lua script.
 *
 * This class is the reader: it reads new entries while slots are free and dispatches them. Beside it,
 * the {@link LeaseKeeper} keeps held entries alive and takes over those of silent consumers (they run
 * before any new read, one at a time and alone in the process, see `consumer-gate.ts`), the
 * {@link AckBatcher} acknowledges, and {@link Handling} decides each entry's outcome.
 */
export class Consumer {
  /** This consumer's name within the group. */
  readonly id: string
  private readonly group: string
  private sources: Source[] = []
  /** Every entry held: read or taken over, until its outcome. */
  private readonly flights = new Map<string, Flight>()
  /** Entries read fresh (they take the handler's `concurrency` slots). */
  private reading = 0
  private readonly scripts: ConsumeScripts
  private readonly acks: AckBatcher
  private readonly leases: LeaseKeeper
  private readonly handling: Handling
  private readonly gate = processGate()
  private reader?: EntryReader
  private stopping = false
  private readonly stopTaking = new AbortController()
  private readonly hardStop = new AbortController()
  private loopDone?: Promise<void>
  private refreshTimer?: NodeJS.Timeout
  private offGateClose?: () => void
  private slotFreed?: () => void
  private startId = '$'

  constructor(
    private readonly ctx: ConsumerContext,
    readonly handler: ResolvedHandler,
    private readonly options: ConsumeOptions = {},
  ) {
    this.group = handler.name
    this.id = `${options.consumerId ?? `${hostname()}-${process.pid}`}:${randomBytes(4).toString('hex')}`
    this.scripts = new ConsumeScripts(ctx.redis, ctx.keys, this.group, this.id)
    this.acks = new AckBatcher(this.scripts, (e) => this.reportError(e))
    this.leases = new LeaseKeeper(this.scripts, this.leaseHolder(), options.reclaimAfterMs ?? 20_000)
    this.handling = new Handling({
      handler,
      consumerId: this.id,
      scripts: this.scripts,
      acks: this.acks,
      gate: this.gate,
      schemas: ctx.schemas,
      logger: options.logger ?? SILENT,
      publish: (input) => ctx.publish(input),
      reply: (request, payload, o) => ctx.reply(request, payload, o),
      report: (o) => this.options.onOutcome?.({handler: this.group, ...o}),
      reportsOutcomes: options.onOutcome !== undefined,
      stopping: this.stopTaking.signal,
      hardStop: this.hardStop.signal,
    })
  }

  /** Events held right now (running, waiting to run, or between retries). */
  get inFlightCount(): number {
    return this.flights.size
  }

  /** Joins the groups (creating them) and starts consuming. */
  async start(): Promise<void> {
    const now = await this.ctx.history.serverTime()
    await this.refreshSources(this.handler.startFrom === 'history' ? '0' : '$')
    // Channels that appear after the start get every event since the start.
    this.startId = `${now}-0`
    this.reader = await openReader({
      commands: this.ctx.redis,
      keys: this.ctx.keys,
      connection: this.ctx.connection,
      group: this.group,
      consumer: this.id,
      blockMs: this.options.blockMs ?? 2000,
    })
    await this.reader.added(this.sources)
    this.leases.start()
    this.refreshTimer = setInterval(
      () => void this.refreshSources(this.startId).catch((e) => this.reportError(e)),
      this.options.refreshMs ?? 5000,
    )
    this.refreshTimer.unref()
    // A suspect about to run alone: stop waiting for new events at once.
    this.offGateClose = this.gate.onClose(() => void this.unblock())
    this.loopDone = this.loop()
    void this.leases.reclaim().catch((e) => this.reportError(e))
  }

  /**
   * Stops taking work, lets in-flight handlers finish (and acknowledges them) for up to `graceMs`,
   * then aborts whatever still runs; those events stay pending and are reclaimed by another consumer.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.stopTaking.abort()
    this.leases.stop()
    clearInterval(this.refreshTimer)
    this.offGateClose?.()
    await this.unblock()
    const deadline = Date.now() + graceMs
    while (this.flights.size > 0 && Date.now() < deadline)
      await delay(20, undefined, {signal: this.hardStop.signal}).catch(() => {})
    this.hardStop.abort()
    for (const f of this.flights.values()) f.abortable.abort(new Error('consumer stopped'))
    await this.loopDone?.catch(() => {})
    if (this.ctx.redis.status === 'ready') await this.acks.settled()
    this.reader?.close()
  }

  private reportError(error: unknown): void {
    if (this.stopping) return
    this.options.onError?.(error instanceof Error ? error : new Error(String(error)))
  }

  private async unblock(): Promise<void> {
    await this.reader?.wake()
  }

  /**
   * Resolves the handler's channels (names and globs) to streams and joins their groups. Globs never
   * match the agents' heartbeat channel: a handler gets heartbeats only when it names the channel.
   */
  private async refreshSources(startId: string): Promise<void> {
    const matchers = this.handler.channels.map(channelMatcher)
    const exact = this.handler.channels.filter((c) => !isPattern(c))
    const known = await this.ctx.history.knownChannels()
    const matched = known.filter((c) => c !== HEARTBEAT_CHANNEL && matchers.some((m) => m(c)))
    const channels = [...new Set([...exact, ...matched])].sort()
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
    await this.reader?.added(fresh)
  }

  private async createGroups(sources: Source[], startId: string): Promise<void> {
    const pipeline = scriptPipeline(this.ctx.redis)
    for (const s of sources)
      pipeline.xgroup('CREATE', s.stream, this.group, s.requeue ? '0' : startId, 'MKSTREAM')
    const results = (await pipeline.exec()) ?? []
    for (const [error] of results) if (error && !/BUSYGROUP/.test(error.message)) throw error
  }

  /** Reads new entries while slots are free and no suspect waits to run. */
  private async loop(): Promise<void> {
    let failures = 0
    while (!this.stopping) {
      if (this.gate.closed) {
        // Entries taken over run first, alone in the process: nothing new is read meanwhile.
        await this.gate.opened(this.stopTaking.signal)
        continue
      }
      const free = this.handler.concurrency - this.reading
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve))
        // Let the other handlers finishing in this tick free their slots too: fewer, fuller reads.
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      try {
        await this.reader!.read(this.sources, free, (source, id, fields) => this.dispatch(source, id, fields))
        failures = 0
      } catch (error) {
        if (this.stopping) break
        failures++
        this.reportError(error)
        if (/NOGROUP/.test(errorMessage(error))) {
          // Redis lost the groups (restarted without persistence): join again and go on.
          await this.createGroups(this.sources, '0').catch((e) => this.reportError(e))
        }
        await delay(Math.min(100 * 2 ** failures, 2000), undefined, {signal: this.hardStop.signal}).catch(
          () => {},
        )
      }
    }
  }

  /** Starts handling one entry (read fresh, or taken over: `claimed`) until its outcome. */
  private dispatch(source: Source, id: string, fields: string[], claimed?: Claimed): void {
    const key = `${source.stream}\n${id}`
    if (this.flights.has(key)) return
    const flight: Flight = {
      source,
      id,
      fields,
      attempt: claimed ? claimed.count : 1,
      fresh: !claimed,
      isolated: claimed !== undefined,
      abortable: new Abortable(),
      lost: false,
      trimmed: false,
      held: false,
    }
    this.flights.set(key, flight)
    if (!claimed) this.reading++
    void this.handling
      .run(flight)
      .catch((error) => this.reportError(error))
      .finally(() => {
        this.flights.delete(key)
        if (claimed) {
          // The next suspect, if any, is taken over as soon as this one is done.
          if (!this.stopping) void this.leases.reclaim().catch((e) => this.reportError(e))
        } else this.reading--
        const wake = this.slotFreed
        this.slotFreed = undefined
        wake?.()
      })
  }

  private leaseHolder() {
    const flightOf = (e: HeldEntry) => this.flights.get(`${e.source.stream}\n${e.id}`)
    return {
      sources: () => this.sources,
      held: () => this.flights.values(),
      // Suspects run one at a time in the process: take one over only when none waits or runs.
      wantsClaims: () => (this.stopping || this.gate.closed ? 0 : 1),
      lost: (e: HeldEntry) => {
        const f = flightOf(e)
        if (!f) return
        f.lost = true
        f.abortable.abort(new Error('lease lost: another consumer reclaimed this event'))
      },
      trimmed: (e: HeldEntry) => {
        const f = flightOf(e)
        if (f) void this.handling.hold(f).catch((error) => this.reportError(error))
      },
      claimed: (source: Source, entries: Claimed[]) => {
        for (const c of entries) {
          const e = c.fields[c.fields.indexOf('e') + 1] ?? ''
          this.options.onTakeover?.({
            handler: this.group,
            channel: source.channel,
            entryId: c.id,
            eventId: /"id":"([^"]+)"/.exec(e)?.[1],
            from: c.from,
            attempts: c.count,
          })
          this.dispatch(source, c.id, c.fields, c)
        }
      },
      gone: (source: Source, entries: {id: string; owner: string}[]) => {
        for (const g of entries)
          this.options.onOutcome?.({
            handler: this.group,
            channel: source.channel,
            attempt: 0,
            outcome: 'dead-lettered',
            reason: 'max_retries_exceeded',
            error: `entry ${g.id}: its consumer ${g.owner} stopped while holding it and its history was trimmed by retention`,
            note: 'history trimmed by retention while pending; dead-lettered from the copy its consumer held',
            durationMs: 0,
          })
      },
      error: (error: unknown) => this.reportError(error),
    }
  }
}
