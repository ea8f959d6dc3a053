import {CloudEvent, HTTP, type Message} from 'cloudevents'
import {describe, expect, it} from 'vitest'

import type {RaptorBus} from '../../src/bus/index.js'
import {ndjson, testBuses, waitFor} from '../helpers/index.js'
import {cli} from '../helpers/ops.js'

const bus = testBuses()
const CHANNEL = 'sys.state.update'

/** An event made by the CloudEvents SDK with every optional attribute and extensions of each type. */
function sdkEvent(extra: Record<string, unknown> = {}): CloudEvent<Record<string, unknown>> {
  return new CloudEvent({
    type: 'order.created',
    source: '/shop/eu',
    subject: 'order-1',
    dataschema: 'https://example.com/schemas/order.json',
    data: {order: 1, lines: [{sku: 'a', qty: 2}], note: 'ünïcödé ✓'},
    channel: CHANNEL,
    correlationid: 'req-9',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    tracestate: 'vendor=opaque',
    tenant: 'acme',
    retries: 3,
    urgent: true,
    ...extra,
  })
}

/** A message as an HTTP server would receive it: every header value is a string. */
function overHttp(message: Message): Message {
  const headers = Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, String(v)]))
  return {headers, body: message.body}
}

/** Every way an event comes out of the bus, as JSON text: get, replay, live, a durable handler. */
async function everyWayOut(b: RaptorBus, publish: () => Promise<string>): Promise<string[]> {
  const live: string[] = []
  const handled: string[] = []
  await b.subscribe(CHANNEL, (event) => void live.push(JSON.stringify(event)))
  await b.consume({
    name: 'ce_reader',
    channels: [CHANNEL],
    handle: (event) => void handled.push(JSON.stringify(event)),
  })
  const id = await publish()
  await waitFor(() => live.length === 1 && handled.length === 1, 10_000, 'live and durable delivery')
  const replayed: string[] = []
  for await (const event of b.replay(CHANNEL)) replayed.push(JSON.stringify(event))
  return [JSON.stringify(await b.getEvent(id)), ...replayed, ...live, ...handled]
}

describe('CloudEvents interop with the cloudevents SDK', () => {
  it('an SDK event in structured mode goes through the library and comes out byte for byte', async () => {
    const b = await bus()
    const ce = sdkEvent()
    const {headers, body} = HTTP.structured(ce)
    const out = await everyWayOut(b, () => b.publish(JSON.parse(body as string)))
    expect(out).toHaveLength(4)
    for (const text of out) expect(text).toBe(body)
    // And the SDK reads what came out, strictly validated, as the event it sent.
    const back = HTTP.toEvent({headers, body: out[0]}) as CloudEvent
    expect(back.toJSON()).toEqual(ce.toJSON())
  })

  it('an SDK CloudEvent object keeps its id, its time as given (any offset) and every attribute', async () => {
    const b = await bus()
    const ce = sdkEvent({time: '2026-11-29T09:00:00.5+02:00'})
    const id = await b.publish(ce as never)
    expect(id).toBe(ce.id)
    const stored = await b.getEvent(id)
    const given = Object.fromEntries(Object.entries(ce).filter(([, v]) => v !== undefined))
    expect(stored).toEqual(given)
    expect(stored.time).toBe('2026-11-29T09:00:00.5+02:00')
    expect(new CloudEvent(stored).validate()).toBe(true)
  })

  it('an SDK event in binary HTTP mode goes in and comes out as the same binary message', async () => {
    const b = await bus()
    const sent = overHttp(HTTP.binary(sdkEvent()))
    const received = HTTP.toEvent(sent) as CloudEvent
    const id = await b.publish(received as never)
    const out = HTTP.binary(new CloudEvent(await b.getEvent(id)))
    expect(overHttp(out)).toEqual(sent)
  })

  it('events raptor makes pass the SDK in structured and binary mode', async () => {
    const b = await bus()
    const id = await b.publish({
      channel: CHANNEL,
      type: 'research_complete',
      payload: {confidence: 0.89},
      correlationId: 'req-1',
      priority: 'high',
    })
    const event = await b.getEvent(id)
    const ce = new CloudEvent(event) // strict: throws when the event is not valid
    const structured = HTTP.toEvent(HTTP.structured(ce)) as CloudEvent
    const binary = HTTP.toEvent(overHttp(HTTP.binary(ce))) as CloudEvent
    for (const back of [structured, binary]) {
      expect(back.id).toBe(id)
      expect(back.data).toEqual({confidence: 0.89})
      expect(back.channel).toBe(CHANNEL)
      expect(back.correlationid).toBe('req-1')
    }
  })

  it('publish --ndjson keeps an SDK event exactly; get, replay and tail print it byte for byte', async () => {
    const b = await bus()
    const ce = sdkEvent()
    const body = HTTP.structured(ce).body as string
    const published = await cli(b, ['publish', '--ndjson', '-'], {input: body + '\n'})
    expect(published.code, published.stderr).toBe(0)
    expect(published.stdout.trim()).toBe(ce.id)
    const get = await cli(b, ['get', ce.id])
    const replay = await cli(b, ['replay', CHANNEL, '--json'])
    const tail = await cli(b, ['tail', CHANNEL, '--since', '1h', '--count', '1', '--json'])
    for (const r of [get, replay, tail]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe(body + '\n')
    }
  })

  it('replay --json | publish --ndjson - round-trips every attribute, correlationid included', async () => {
    const [from, to] = [await bus(), await bus()]
    await from.publish({
      channel: CHANNEL,
      type: 'a',
      payload: {n: 1},
      correlationId: 'req-7',
      priority: 'low',
    })
    await from.publish(JSON.parse(HTTP.structured(sdkEvent()).body as string))
    await from.publish({
      channel: CHANNEL,
      type: 'b',
      id: 'custom id {with} braces',
      time: '2026-11-29T07:00:00Z',
      extensions: {tenant: 'acme'},
    })
    const original = await cli(from, ['replay', CHANNEL, '--json'])
    expect(ndjson(original.stdout)).toHaveLength(3)
    const copied = await cli(to, ['publish', '--ndjson', '-'], {input: original.stdout})
    expect(copied.code, copied.stderr).toBe(0)
    const again = await cli(to, ['replay', CHANNEL, '--json'])
    expect(again.stdout).toBe(original.stdout)
  })
})
