/**
 * W3C trace context through the bus, with `@opentelemetry/api` only: a no-op unless the application
 * registers an OpenTelemetry SDK.
 *
 * - A publish made inside an active span gets a producer span (`publish <channel>`) whose context
 *   goes on the event as `traceparent`/`tracestate` (the CloudEvents distributed-tracing extension).
 *   A producer that sets `traceparent` itself keeps it.
 * - A handler runs inside a consumer span (`process <channel>`), the child of the event's trace
 *   context, so that `ctx.publish` continues the trace.
 * - `bus.request` runs inside a client span that links to the reply's trace context.
 *
 * The trace context is read and written in W3C format here, whatever propagator the application
 * configured: that format is what the CloudEvents extension specifies. The API is loaded only once
 * something has registered with it (its global, shared by every copy of the API 1.x), so that a
 * process without OpenTelemetry — every `raptor` command — never pays for loading it.
 */
import type {Attributes, Context, Link, Span, SpanContext} from '@opentelemetry/api'

import type {RaptorEvent, TraceFields} from './envelope.js'
import type {AttemptResult} from './handler.js'

type Api = typeof import('@opentelemetry/api')

/** Where `@opentelemetry/api` 1.x keeps what was registered (tracer provider, context manager, …). */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')
const TRACER_NAME = 'raptorbus'

let api: Api | undefined
let loading: Promise<Api> | undefined

/** True once an OpenTelemetry SDK (or anything else) has registered with the API: tracing is on. */
export function tracingRegistered(): boolean {
  return api !== undefined || (globalThis as Record<symbol, unknown>)[OTEL_GLOBAL] !== undefined
}

async function otel(): Promise<Api> {
  loading ??= import('@opentelemetry/api').then((m) => (api = m))
  return loading
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/** The span context a `traceparent` (and `tracestate`) describes, or undefined when it is not valid. */
function parseTraceparent(otelApi: Api, traceparent: unknown, tracestate: unknown): SpanContext | undefined {
  if (typeof traceparent !== 'string') return undefined
  const m = TRACEPARENT.exec(traceparent)
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return undefined
  const context: SpanContext = {
    traceId: m[2],
    spanId: m[3],
    traceFlags: parseInt(m[4], 16),
    isRemote: true,
  }
  if (typeof tracestate === 'string' && tracestate !== '')
    context.traceState = otelApi.createTraceState(tracestate)
  return otelApi.isSpanContextValid(context) ? context : undefined
}

/** The `traceparent`/`tracestate` of a span context. */
function toFields(context: SpanContext): TraceFields {
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, '0')
  const fields: TraceFields = {traceparent: `00-${context.traceId}-${context.spanId}-${flags}`}
  const state = context.traceState?.serialize()
  if (state) fields.tracestate = state
  return fields
}

function messagingAttributes(channel: string, operation: 'publish' | 'process' | 'request'): Attributes {
  return {
    'messaging.system': 'redis',
    'messaging.destination.name': channel,
    'messaging.operation.name': operation,
    'messaging.operation.type': operation === 'process' ? 'process' : 'send',
  }
}

function fail(otelApi: Api, span: Span, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof Error) span.recordException(error)
  span.setStatus({code: otelApi.SpanStatusCode.ERROR, message})
}

/** The trace context of the active span, for an event published from inside it; undefined when none. */
export async function activeTraceFields(): Promise<TraceFields | undefined> {
  if (!tracingRegistered()) return undefined
  const otelApi = await otel()
  const context = otelApi.trace.getSpanContext(otelApi.context.active())
  return context && otelApi.isSpanContextValid(context) ? toFields(context) : undefined
}

/** A producer span around one publish (or one batch). */
export interface ProducerSpan {
  /** The trace context to put on the event(s). */
  fields: TraceFields
  /** Ends the span: with the event ids written, or with the error that stopped the publish. */
  end(outcome: {ids: readonly string[]} | {error: unknown}): void
}

/**
 * Starts a producer span for a publish made inside an active span; undefined outside any trace
 * (raptor continues traces, it does not start one for every publish).
 */
export async function startProducerSpan(channel: string, count = 1): Promise<ProducerSpan | undefined> {
  if (!tracingRegistered()) return undefined
  const otelApi = await otel()
  const active = otelApi.context.active()
  const parent = otelApi.trace.getSpanContext(active)
  if (!parent || !otelApi.isSpanContextValid(parent)) return undefined
  const attributes = messagingAttributes(channel, 'publish')
  if (count > 1) attributes['messaging.batch.message_count'] = count
  const span = otelApi.trace
    .getTracer(TRACER_NAME)
    .startSpan(`publish ${channel}`, {kind: otelApi.SpanKind.PRODUCER, attributes}, active)
  return {
    fields: toFields(span.spanContext()),
    end(outcome) {
      if ('error' in outcome) fail(otelApi, span, outcome.error)
      else if (outcome.ids.length === 1) span.setAttribute('messaging.message.id', outcome.ids[0])
      span.end()
    },
  }
}

/** A consumer span around one handler run. */
export interface HandlerSpan {
  /** Runs `fn` with the span active (so `ctx.publish` inside continues the trace). */
  run<T>(fn: () => T): T
  end(outcome: AttemptResult): void
}

/**
 * Starts the consumer span of one handler attempt: the child of the event's `traceparent`, or a
 * new trace when the event carries none.
 */
export async function startHandlerSpan(
  event: RaptorEvent,
  info: {handler: string; channel: string; attempt: number},
): Promise<HandlerSpan> {
  const otelApi = await otel()
  const remote = parseTraceparent(otelApi, event.traceparent, event.tracestate)
  const parent = remote ? otelApi.trace.setSpanContext(otelApi.ROOT_CONTEXT, remote) : otelApi.ROOT_CONTEXT
  const attributes: Attributes = {
    ...messagingAttributes(info.channel, 'process'),
    'messaging.message.id': event.id,
    'messaging.consumer.group.name': info.handler,
    'cloudevents.event_id': event.id,
    'cloudevents.event_source': event.source,
    'cloudevents.event_type': event.type,
    'raptor.attempt': info.attempt,
  }
  if (event.correlationid !== undefined) attributes['messaging.message.conversation_id'] = event.correlationid
  const span = otelApi.trace
    .getTracer(TRACER_NAME)
    .startSpan(`process ${info.channel}`, {kind: otelApi.SpanKind.CONSUMER, attributes}, parent)
  const active: Context = otelApi.trace.setSpan(parent, span)
  return {
    run: (fn) => otelApi.context.with(active, fn),
    end(outcome) {
      if (outcome.kind === 'error') fail(otelApi, span, new Error(outcome.error))
      else if (outcome.kind === 'timeout') fail(otelApi, span, new Error('handler timed out'))
      else if (outcome.kind === 'stopped') span.setAttribute('raptor.stopped', true)
      span.end()
    },
  }
}

/** A client span around `bus.request`, linked to the reply when it comes. */
export interface RequestSpan {
  run<T>(fn: () => T): T
  end(outcome: {reply: RaptorEvent} | {error: unknown}): void
}

/** Starts the span of a request (undefined when tracing is off). */
export async function startRequestSpan(
  channel: string,
  correlationId: string,
): Promise<RequestSpan | undefined> {
  if (!tracingRegistered()) return undefined
  const otelApi = await otel()
  const active = otelApi.context.active()
  const span = otelApi.trace.getTracer(TRACER_NAME).startSpan(
    `request ${channel}`,
    {
      kind: otelApi.SpanKind.CLIENT,
      attributes: {
        ...messagingAttributes(channel, 'request'),
        'messaging.message.conversation_id': correlationId,
      },
    },
    active,
  )
  const inside = otelApi.trace.setSpan(active, span)
  return {
    run: (fn) => otelApi.context.with(inside, fn),
    end(outcome) {
      if ('error' in outcome) fail(otelApi, span, outcome.error)
      else {
        const reply = parseTraceparent(otelApi, outcome.reply.traceparent, outcome.reply.tracestate)
        const link: Link | undefined = reply && {
          context: reply,
          attributes: {'messaging.message.id': outcome.reply.id},
        }
        if (link) span.addLink?.(link)
      }
      span.end()
    },
  }
}
