import type {ChannelSpec, Topology} from './channels.js'
import {DLQ_RETENTION_MS, ROUTING_DLQ_CHANNEL, assertChannelName} from './channels.js'
import {InvalidInputError, PartialError, RoutingError} from './errors.js'
import {
  buildEnvelope,
  buildPublishEnvelope,
  isCloudEventInput,
  checkPayload,
  checkSize,
  serializeData,
  serializeEnvelope,
  type CloudEventInput,
  type PayloadSchemas,
  type PublishInput,
  type RaptorEvent,
  type TraceFields,
} from './envelope.js'
import {ID_EARLY_MS, ID_LATE_MS} from './event-ids.js'
import type {Keys} from './keys.js'
import {scriptPipeline, type ScriptedRedis} from './scripts.js'
import {startProducerSpan, tracingRegistered, type ProducerSpan} from './tracing.js'

declare module './scripts.js' {
  interface ScriptCommands {
    /** lua/publish.lua: the KEYS and ARGV of one channel's events; returns their stream entry ids. */
    raptorPublish(stream: string, stats: string, ...args: (string | number)[]): Promise<string[]>
    /** lua/park.lua: returns the DLQ entry id. */
    raptorPark(
      dlq: string,
      stats: string,
      json: string,
      reason: string,
      channel: string,
      error: string,
      retentionMs: number,
    ): Promise<string>
  }
}

/** The arguments of lua/publish.lua for events of one channel (KEYS, then ARGV). */
function publishArgs(keys: Keys, events: readonly PreparedEvent[]): [string, string, ...(string | number)[]] {
  const {channel} = events[0].event
  const args: [string, string, ...(string | number)[]] = [
    keys.stream(channel),
    keys.stats(channel),
    events[0].spec.retentionMs,
    keys.live(channel),
    keys.sharded ? keys.bell(channel) : '',
    keys.eventIndexPrefix(channel),
    ID_EARLY_MS,
    ID_LATE_MS,
  ]
  for (const e of events) args.push(e.event.id, e.json)
  return args
}

/**
 * Most events in one publish script call. Small calls let Redis run one while the client still
 * writes the next (one big call per tick made client and server take turns, and measured slower).
 */
export const CALL_EVENTS = 16

/**
 * Splits events into runs of one channel, keeping their order; a channel's events are cut into
 * runs of nearly equal length, at most `most` each.
 */
function byChannel<T>(items: readonly T[], channelOf: (item: T) => string, most: number): T[][] {
  const perChannel = new Map<string, T[]>()
  for (const item of items) {
    const channel = channelOf(item)
    const list = perChannel.get(channel)
    if (list) list.push(item)
    else perChannel.set(channel, [item])
  }
  const runs: T[][] = []
  for (const list of perChannel.values()) {
    if (list.length <= most) {
      runs.push(list)
      continue
    }
    const size = Math.ceil(list.length / Math.ceil(list.length / most))
    for (let at = 0; at < list.length; at += size) runs.push(list.slice(at, at + size))
  }
  return runs
}

/** Events per pipelined round trip when publishing in bulk. */
const WRITE_CHUNK = 1000

/** An event ready to be written: its envelope, the envelope's JSON, and where it goes. */
export interface PreparedEvent {
  event: RaptorEvent
  json: string
  spec: ChannelSpec
}

/** What a publisher needs to know of the bus. */
export interface PublisherContext {
  redis: ScriptedRedis
  keys: Keys
  topology: Topology
  /** Payload schemas by type (a map with no prototype). */
  schemas: PayloadSchemas
  maxPayloadBytes: number
  defaultSource: string
}

/** What can be published: a {@link PublishInput}, or a whole CloudEvent kept as it is. */
export type PublishItem = PublishInput | CloudEventInput

/** Runs a publish inside a producer span when the caller is inside a trace (see tracing.ts). */
async function traced<T extends string | string[]>(
  channel: string,
  count: number,
  run: (trace?: TraceFields) => Promise<T>,
): Promise<T> {
  const span: ProducerSpan | undefined = tracingRegistered()
    ? await startProducerSpan(channel, count)
    : undefined
  if (!span) return run()
  try {
    const result = await run(span.fields)
    span.end({ids: typeof result === 'string' ? [result] : result})
    return result
  } catch (error) {
    span.end({error})
    throw error
  }
}

/** A single publish waiting for its script call. */
interface Waiting {
  prepared: PreparedEvent
  resolve(id: string): void
  reject(error: unknown): void
}

const channelOfWaiting = (w: Waiting) => w.prepared.event.channel
const channelOfPrepared = (e: PreparedEvent) => e.event.channel

/**
 * Validates and writes events. Single publishes issued in the same tick are coalesced into small
 * script calls (at most {@link CALL_EVENTS} events of one channel each), sent together once the
 * tick's synchronous work and promise jobs are done (`process.nextTick`, no timer: a lone publish
 * goes out at once).
 */
export class Publisher {
  private readonly registered = new Set<string>()
  /** Registry SADDs in flight, by channel: the publishes of a fresh channel resolve after it. */
  private readonly registering = new Map<string, Promise<unknown>>()
  private waiting: Waiting[] = []
  private flushScheduled = false

  constructor(private readonly ctx: PublisherContext) {}

  /**
   * Checks an event fully (envelope, the payload as serialized, size, payload schema, routing)
   * without writing anything. An unknown channel yields `spec: undefined` so that the caller can
   * park it. `trace` goes on the event unless it carries a `traceparent` of its own.
   */
  async prepare(
    input: PublishItem,
    trace?: TraceFields,
  ): Promise<{event: RaptorEvent; json: string; spec: ChannelSpec | undefined}> {
    return this.check(input, trace)
  }

  /** {@link prepare}, synchronously. */
  check(
    input: PublishItem,
    trace?: TraceFields,
  ): {event: RaptorEvent; json: string; spec: ChannelSpec | undefined} {
    if (typeof input?.channel !== 'string') throw new InvalidInputError('channel is required')
    assertChannelName(input.channel)
    const event = isCloudEventInput(input)
      ? buildEnvelope(input, this.ctx.defaultSource, trace)
      : buildPublishEnvelope(input, this.ctx.defaultSource, trace)
    const dataJson = serializeData(event.data, event.channel)
    // A UTF-16 code unit is at most 3 bytes of UTF-8: most payloads need no byte count.
    if (dataJson.length * 3 > this.ctx.maxPayloadBytes)
      checkSize(Buffer.byteLength(dataJson), this.ctx.maxPayloadBytes, event.channel)
    const schema = this.ctx.schemas[event.type]
    // The schema sees the payload as consumers will read it: what was serialized.
    if (schema) checkPayload({...event, data: JSON.parse(dataJson) as RaptorEvent['data']}, schema)
    return {event, json: serializeEnvelope(event, dataJson), spec: this.ctx.topology.resolve(event.channel)}
  }

  /**
   * Publishes one event and returns its id, once the event is stored.
   * @throws InvalidInputError, SchemaViolationError, PayloadTooLargeError (nothing written),
   *   RoutingError (the event is parked in DLQ routing_error)
   */
  publish(input: PublishItem): Promise<string> {
    if (tracingRegistered()) return traced(input?.channel, 1, (trace) => this.publishOne(input, trace))
    return this.publishOne(input)
  }

  private publishOne(input: PublishItem, trace?: TraceFields): Promise<string> {
    let prepared
    try {
      prepared = this.check(input, trace)
    } catch (error) {
      return Promise.reject(error as Error)
    }
    if (!prepared.spec) return this.park([prepared]).then((errors) => Promise.reject(errors[0]))
    const ready = prepared as PreparedEvent
    return new Promise<string>((resolve, reject) => {
      this.waiting.push({prepared: ready, resolve, reject})
      if (!this.flushScheduled) {
        this.flushScheduled = true
        process.nextTick(this.flush)
      }
    })
  }

  /**
   * Sends the waiting single publishes: one script call per run of at most {@link CALL_EVENTS}
   * events of one channel, in order. A call's events are stored together or not at all, so a Redis
   * error fails exactly the publishes of that call.
   */
  readonly flush = (): void => {
    this.flushScheduled = false
    const waiting = this.waiting
    if (waiting.length === 0) return
    this.waiting = []
    const {redis, keys} = this.ctx
    const fresh = this.fresh(waiting.map((w) => w.prepared))
    if (fresh.length > 0) {
      const register = redis.sadd(keys.channelRegistry(), ...fresh).then(
        () => {
          for (const c of fresh) {
            this.registered.add(c)
            this.registering.delete(c)
          }
        },
        (error: unknown) => {
          for (const c of fresh) this.registering.delete(c)
          throw error
        },
      )
      for (const c of fresh) this.registering.set(c, register)
    }
    for (const run of byChannel(waiting, channelOfWaiting, CALL_EVENTS)) {
      const registering = this.registering.get(channelOfWaiting(run[0]))
      const call = redis.raptorPublish(
        ...publishArgs(
          keys,
          run.map((w) => w.prepared),
        ),
      )
      ;(registering ? Promise.all([call, registering]) : call).then(
        () => {
          for (const w of run) w.resolve(w.prepared.event.id)
        },
        (error: unknown) => {
          for (const w of run) w.reject(error)
        },
      )
    }
  }

  /** Channels not yet known to be in the registry (nor being added to it). */
  private fresh(events: readonly PreparedEvent[]): string[] {
    const fresh = new Set<string>()
    for (const e of events) {
      const c = e.event.channel
      if (!this.registered.has(c) && !this.registering.has(c)) fresh.add(c)
    }
    return [...fresh]
  }

  /**
   * Publishes many events in one pipeline. Every event is checked before any is written, so a bad
   * one in the batch means nothing is sent.
   * @returns the event ids, in order
   */
  async publishMany(inputs: readonly PublishItem[]): Promise<string[]> {
    if (!tracingRegistered()) return this.publishBatch(inputs)
    return traced(inputs[0]?.channel, inputs.length, (trace) => this.publishBatch(inputs, trace))
  }

  private async publishBatch(inputs: readonly PublishItem[], trace?: TraceFields): Promise<string[]> {
    const prepared = []
    for (const [index, input] of inputs.entries()) {
      try {
        prepared.push(this.check(input, trace))
      } catch (error) {
        if (error instanceof Error && inputs.length > 1)
          error.message = `event ${index + 1}: ${error.message}`
        throw error
      }
    }
    // Events for unknown channels are parked (never silently dropped, SPEC §2); the rest of the
    // batch is not written, as for any other bad event in it.
    const unknown = prepared.filter((p) => !p.spec)
    if (unknown.length > 0) throw (await this.park(unknown))[0]
    return this.write(prepared as PreparedEvent[])
  }

  /**
   * Writes checked events in pipelined chunks; the channel registry is updated in the same round
   * trip the first time a channel is seen.
   * @throws PartialError when a chunk fails after some events were written (their ids are on the error)
   */
  async write(events: readonly PreparedEvent[]): Promise<string[]> {
    const written: string[] = []
    for (let start = 0; start < events.length; start += WRITE_CHUNK) {
      const chunk = events.slice(start, start + WRITE_CHUNK)
      try {
        await this.writeChunk(chunk, written)
      } catch (error) {
        if (written.length === 0) throw error
        throw new PartialError(
          `published ${written.length} of ${events.length} events, then: ${(error as Error).message}`,
          written,
          {cause: error},
        )
      }
    }
    return events.map((e) => e.event.id)
  }

  private async writeChunk(events: readonly PreparedEvent[], written: string[]): Promise<void> {
    const {redis, keys} = this.ctx
    const pipeline = scriptPipeline(redis)
    const fresh = this.fresh(events)
    if (fresh.length > 0) pipeline.sadd(keys.channelRegistry(), ...fresh)
    const runs = byChannel(events, channelOfPrepared, CALL_EVENTS)
    for (const run of runs) pipeline.raptorPublish(...publishArgs(keys, run))
    const results = (await pipeline.exec()) ?? []
    const offset = fresh.length > 0 ? 1 : 0
    let failure: Error | undefined
    runs.forEach((run, i) => {
      const error = results[i + offset]?.[0]
      // One script call is atomic: all of its events were written, or none.
      if (error) failure ??= error
      else for (const e of run) written.push(e.event.id)
    })
    if (failure) throw failure
    for (const c of fresh) this.registered.add(c)
  }

  /**
   * Parks events addressed to unknown channels in DLQ routing_error, in one round trip; returns
   * the error to throw for each.
   */
  private async park(events: readonly {event: RaptorEvent; json: string}[]): Promise<RoutingError[]> {
    const {redis, keys, topology} = this.ctx
    const known = await redis.smembers(keys.channelRegistry())
    const errors = events.map(
      ({event}) => new RoutingError(event.channel, topology.nearest(event.channel, known), true),
    )
    const pipeline = scriptPipeline(redis)
    events.forEach(({event, json}, i) =>
      pipeline.raptorPark(
        keys.dlq(ROUTING_DLQ_CHANNEL, 'routing_error'),
        keys.stats(ROUTING_DLQ_CHANNEL),
        json,
        'routing_error',
        event.channel,
        errors[i].message,
        DLQ_RETENTION_MS,
      ),
    )
    const results = (await pipeline.exec()) ?? []
    const failure = results.find(([error]) => error)?.[0]
    if (failure) throw failure
    return errors
  }
}
