import {SpanKind, context, trace} from '@opentelemetry/api'
import {AsyncLocalStorageContextManager} from '@opentelemetry/context-async-hooks'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base'
import {beforeAll, beforeEach, describe, expect, it} from 'vitest'

import type {RaptorEvent} from '../../src/bus/index.js'
import {testBuses, waitFor} from '../helpers/index.js'

// The application's side: an OpenTelemetry SDK with an in-memory exporter (this test file runs in
// its own process, so these globals are its own).
const exporter = new InMemorySpanExporter()
beforeAll(() => {
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({spanProcessors: [new SimpleSpanProcessor(exporter)]}),
  )
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
})
beforeEach(() => exporter.reset())

const bus = testBuses()
const ASK = 'sys.guild.research.broadcast'
const ANSWER = 'sys.state.update'
const app = trace.getTracer('the-app')

function span(name: string): ReadableSpan {
  const found = exporter.getFinishedSpans().filter((s) => s.name === name)
  expect(
    found.map((s) => s.name),
    `one span named ${name}`,
  ).toEqual([name])
  return found[0]
}

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId
const idOf = (s: ReadableSpan) => s.spanContext().spanId

describe('W3C trace context through the bus (OpenTelemetry)', () => {
  it('publish → handler → ctx.publish → handler is one trace of parent and child spans, across two buses', async () => {
    // Two buses on one prefix, as two processes would be: one publishes, the other handles and publishes on.
    const first = await bus()
    const first2 = await bus({prefix: first.keys.prefix})
    const answered: RaptorEvent[] = []
    let asked: RaptorEvent | undefined
    await first2.consume({
      name: 'asker',
      channels: [ASK],
      async handle(event, ctx) {
        asked = event
        await ctx.publish({channel: ANSWER, type: 'answer', payload: {to: event.id}})
      },
    })
    await first.consume({name: 'answerer', channels: [ANSWER], handle: (event) => void answered.push(event)})
    const id = await app.startActiveSpan('the request', async (root) => {
      try {
        return await first.publish({channel: ASK, type: 'ask', payload: {q: 1}})
      } finally {
        root.end()
      }
    })
    await waitFor(() => answered.length === 1, 10_000, 'the answer handled')
    await waitFor(() => exporter.getFinishedSpans().length >= 5, 5000, 'spans ended')

    const root = span('the request')
    const sendAsk = span(`publish ${ASK}`)
    const processAsk = span(`process ${ASK}`)
    const sendAnswer = span(`publish ${ANSWER}`)
    const processAnswer = span(`process ${ANSWER}`)
    const chain = [root, sendAsk, processAsk, sendAnswer, processAnswer]
    for (let i = 1; i < chain.length; i++) expect(parentOf(chain[i]), chain[i].name).toBe(idOf(chain[i - 1]))
    expect(new Set(chain.map((s) => s.spanContext().traceId)).size).toBe(1)
    expect([sendAsk.kind, processAsk.kind]).toEqual([SpanKind.PRODUCER, SpanKind.CONSUMER])

    // The event carries the producer span's context (the CloudEvents distributed-tracing extension).
    expect(asked?.id).toBe(id)
    expect(asked?.traceparent).toBe(`00-${sendAsk.spanContext().traceId}-${idOf(sendAsk)}-01`)
    expect(answered[0].traceparent).toBe(`00-${sendAnswer.spanContext().traceId}-${idOf(sendAnswer)}-01`)
    expect(sendAsk.attributes).toMatchObject({
      'messaging.system': 'redis',
      'messaging.destination.name': ASK,
      'messaging.operation.type': 'send',
      'messaging.message.id': id,
    })
    expect(processAsk.attributes).toMatchObject({
      'messaging.system': 'redis',
      'messaging.destination.name': ASK,
      'messaging.operation.type': 'process',
      'messaging.message.id': id,
      'messaging.consumer.group.name': 'asker',
    })
    expect(processAnswer.attributes).toMatchObject({
      'messaging.destination.name': ANSWER,
      'messaging.message.id': answered[0].id,
      'messaging.consumer.group.name': 'answerer',
    })
  })

  it('bus.request links the request span to the reply', async () => {
    const requester = await bus()
    const responder = await bus({prefix: requester.keys.prefix})
    await responder.consume({
      name: 'lookup',
      channels: [ASK],
      handle: (_event, ctx) => ctx.reply({answer: 42}),
    })
    const reply = await requester.request({channel: ASK, type: 'lookup', payload: {q: 'x'}, timeoutMs: 5000})
    expect(reply.data).toEqual({answer: 42})
    await waitFor(() => exporter.getFinishedSpans().length >= 3, 5000, 'spans ended')
    const request = span(`request ${ASK}`)
    const send = span(`publish ${ASK}`)
    const handled = span(`process ${ASK}`)
    expect(request.kind).toBe(SpanKind.CLIENT)
    expect(parentOf(send)).toBe(idOf(request))
    expect(parentOf(handled)).toBe(idOf(send))
    // The reply was sent from inside the handler's span, and the request links to it.
    expect(reply.traceparent).toBe(`00-${handled.spanContext().traceId}-${idOf(handled)}-01`)
    expect(request.links.map((l) => l.context.spanId)).toEqual([idOf(handled)])
    expect(request.attributes['messaging.message.conversation_id']).toBe(reply.correlationid)
  })

  it('keeps a traceparent the producer gives, and adds none outside a span', async () => {
    const b = await bus()
    const given = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const kept = await app.startActiveSpan('outer', async (s) => {
      const id = await b.publish({
        channel: ANSWER,
        type: 't',
        extensions: {traceparent: given, tracestate: 'a=1'},
      })
      s.end()
      return b.getEvent(id)
    })
    expect([kept.traceparent, kept.tracestate]).toEqual([given, 'a=1'])
    const plain = await b.getEvent(await b.publish({channel: ANSWER, type: 't'}))
    expect(plain.traceparent).toBeUndefined()
  })

  it('marks a failing handler span as an error, and starts a new trace for an event without one', async () => {
    const b = await bus()
    let attempts = 0
    await b.consume({
      name: 'flaky',
      channels: [ANSWER],
      maxRetries: 0,
      handle: () => {
        attempts++
        throw new Error('boom')
      },
    })
    await b.publish({channel: ANSWER, type: 't'})
    await waitFor(
      () => attempts === 1 && exporter.getFinishedSpans().length === 1,
      5000,
      'the failed attempt',
    )
    const failed = span(`process ${ANSWER}`)
    expect(failed.parentSpanContext).toBeUndefined()
    expect(failed.status).toMatchObject({code: 2, message: 'boom'})
    expect(failed.events.map((e) => e.name)).toEqual(['exception'])
  })
})
