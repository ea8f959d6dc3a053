import type {ChannelSpec, Topology} from './channels.js'
import {DLQ_RETENTION_MS, ROUTING_DLQ_CHANNEL, assertChannelName} from './channels.js'
import {InvalidInputError, PartialError, RoutingError} from './errors.js'
import {
  buildEnvelope,
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
import type {Keys} from './keys.js'
import {scriptPipeline, type ScriptedRedis} from './scripts.js'
import {startProducerSpan, tracingRegistered, type ProducerSpan} from './tracing.js'

declare module './scripts.js' {
  interface ScriptCommands {
    /** lua/publish.lua: numkeys, then KEYS and ARGV of one channel's events; returns their stream entry ids. */
    raptorPublish(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<string[]>
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

/** The arguments of lua/publish.lua for events of one channel (numkeys, KEYS, ARGV). */
function publishArgs(keys: Keys, events: readonly PreparedEvent[]): (string | number)[] {
  const {channel} = events[0].event
  return [
    2 + events.length,
    keys.stream(channel),
    keys.stats(channel),
    ...events.map((e) => keys.eventIndex(channel, e.event.id)),
    events[0].spec.retentionMs,
    keys.live(channel),
    keys.sharded ? keys.bell(channel) : '',
    ...events.map((e) => e.json),
  ]
}

/** Most events in one publish script call (bounds how long one call holds Redis). */
const SCRIPT_BATCH = 200

/** Splits events into runs of one channel, each at most SCRIPT_BATCH long, keeping their order. */
function byChannel(events: readonly PreparedEvent[]): PreparedEvent[][] {
  const runs: PreparedEvent[][] = []
  const open = new Map<string, PreparedEvent[]>()
  for (const e of events) {
    let run = open.get(e.event.channel)
    if (!run || run.length >= SCRIPT_BATCH) {
      run = []
      runs.push(run)
      open.set(e.event.channel, run)
    }
    run.push(e)
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

/** Validates and writes events: one Lua script per event, one round trip per call. */
export class Publisher {
  private readonly registered = new Set<string>()

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
    if (typeof input?.channel !== 'string') throw new InvalidInputError('channel is required')
    assertChannelName(input.channel)
    const event = buildEnvelope(input, this.ctx.defaultSource, trace)
    const dataJson = serializeData(event.data, event.channel)
    checkSize(Buffer.byteLength(dataJson), this.ctx.maxPayloadBytes, event.channel)
    const schema = this.ctx.schemas[event.type]
    // The schema sees the payload as consumers will read it: what was serialized.
    if (schema) checkPayload({...event, data: JSON.parse(dataJson) as RaptorEvent['data']}, schema)
    return {event, json: serializeEnvelope(event, dataJson), spec: this.ctx.topology.resolve(event.channel)}
  }

  /**
   * Publishes one event and returns its id.
   * @throws InvalidInputError, SchemaViolationError, PayloadTooLargeError (nothing written),
   *   RoutingError (the event is parked in DLQ routing_error)
   */
  async publish(input: PublishItem): Promise<string> {
    return traced(input?.channel, 1, (trace) => this.publishOne(input, trace))
  }

  private async publishOne(input: PublishItem, trace?: TraceFields): Promise<string> {
    const prepared = await this.prepare(input, trace)
    if (!prepared.spec) throw (await this.park([prepared]))[0]
    // One event: a plain EVALSHA at once (no pipeline, no waiting for other publishes: coalescing
    // them per tick measured slower for concurrent single publishes and added a hop of latency).
    // The registry SADD, the first time only, goes out beside it.
    const {redis, keys} = this.ctx
    const event = prepared as PreparedEvent
    const fresh = this.fresh([event])
    const register = fresh.length > 0 ? redis.sadd(keys.channelRegistry(), ...fresh) : undefined
    await redis.raptorPublish(...(publishArgs(keys, [event]) as [number, ...string[]]))
    if (register) {
      await register
      for (const c of fresh) this.registered.add(c)
    }
    return event.event.id
  }

  /** Channels not yet known to be in the registry. */
  private fresh(events: readonly PreparedEvent[]): string[] {
    return [...new Set(events.map((e) => e.event.channel))].filter((c) => !this.registered.has(c))
  }

  /**
   * Publishes many events in one pipeline. Every event is checked before any is written, so a bad
   * one in the batch means nothing is sent.
   * @returns the event ids, in order
   */
  async publishMany(inputs: readonly PublishItem[]): Promise<string[]> {
    return traced(inputs[0]?.channel, inputs.length, (trace) => this.publishBatch(inputs, trace))
  }

  private async publishBatch(inputs: readonly PublishItem[], trace?: TraceFields): Promise<string[]> {
    const prepared = []
    for (const [index, input] of inputs.entries()) {
      try {
        prepared.push(await this.prepare(input, trace))
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
    const runs = byChannel(events)
    for (const run of runs) pipeline.raptorPublish(...(publishArgs(keys, run) as [number, ...string[]]))
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
