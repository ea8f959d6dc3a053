import {CloudEvent, HTTP, Mode, emitterFor, httpTransport} from 'cloudevents'
import {afterEach, describe, expect, it} from 'vitest'

import type {Gateway} from '../../src/gateway/server.js'
import {call, startTestGateway} from '../helpers/gateway.js'
import {keysUnder, testBuses} from '../helpers/index.js'
import {streamEntries} from '../helpers/ops.js'

const bus = testBuses()
const open: Gateway[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

async function gateway(options: Parameters<typeof bus>[0] = {}) {
  const b = await bus(options)
  const g = await startTestGateway(b)
  open.push(g)
  return {bus: b, url: g.url}
}

const structured = (event: Record<string, unknown>) => ({
  method: 'POST',
  headers: {'content-type': 'application/cloudevents+json'},
  body: JSON.stringify(event),
})

const ce = (extra: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  type: 'state_changed',
  source: 'ui-7',
  channel: 'sys.state.update',
  data: {user_id: 'u1', n: 1},
  ...extra,
})

describe('POST /v1/events (CloudEvents HTTP binding)', () => {
  it('structured mode: 201 with the id and Location; the event is in history as sent', async () => {
    const {bus: b, url} = await gateway()
    const res = await call(`${url}/v1/events`, structured(ce({priority: 'high', correlationid: 'req-1'})))
    expect(res.status).toBe(201)
    expect(res.body).toEqual({channel: 'sys.state.update', ids: [expect.stringMatching(/^evt-/)]})
    const id = res.body.ids[0]
    expect(res.headers.get('location')).toBe(`/v1/events/${id}`)
    const got = await call(`${url}${res.headers.get('location')}`)
    expect(got.status).toBe(200)
    expect(got.headers.get('content-type')).toMatch(/^application\/cloudevents\+json/)
    // Exactly what was sent; raptor filled in only the id and the time it was not given.
    expect(got.body).toEqual({
      ...ce({priority: 'high', correlationid: 'req-1'}),
      id,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    expect(await b.getEvent(id)).toEqual(got.body)
  })

  it('binary mode: ce-* headers (percent-decoded) and a JSON body', async () => {
    const {url} = await gateway()
    const res = await call(`${url}/v1/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'ce-specversion': '1.0',
        'ce-type': 'order_created',
        'ce-source': 'shop%20eu',
        'ce-channel': 'sys.alert.warning',
        'ce-priority': 'critical',
      },
      body: JSON.stringify({order: 42}),
    })
    expect(res.status).toBe(201)
    const vendor = await call(`${url}/v1/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/vnd.shop.order+json',
        'ce-specversion': '1.0',
        'ce-type': 'order_created',
        'ce-source': 'shop',
        'ce-channel': 'sys.alert.warning',
        'ce-subject': 'orders/43',
      },
      body: JSON.stringify({order: 43}),
    })
    expect(vendor.status).toBe(201)
    expect((await call(`${url}/v1/events/${vendor.body.ids[0]}`)).body).toMatchObject({
      datacontenttype: 'application/vnd.shop.order+json',
      subject: 'orders/43',
      data: {order: 43},
    })
    const got = await call(`${url}/v1/events/${res.body.ids[0]}`)
    expect(got.body).toMatchObject({
      type: 'order_created',
      source: 'shop eu',
      channel: 'sys.alert.warning',
      priority: 'critical',
      data: {order: 42},
    })
  })

  it('batch mode: every event, in order; ?channel= fills in a missing channel', async () => {
    const {bus: b, url} = await gateway()
    const res = await call(`${url}/v1/events?channel=sys.state.update`, {
      method: 'POST',
      headers: {'content-type': 'application/cloudevents-batch+json'},
      body: JSON.stringify([ce({type: 'a', channel: undefined}), ce({type: 'b'})]),
    })
    expect(res.status).toBe(201)
    expect(res.body.channel).toBe('sys.state.update')
    expect(res.body.ids).toHaveLength(2)
    const history = await streamEntries(b, b.keys.stream('sys.state.update'))
    expect(history.map((e) => JSON.parse(e.e).type)).toEqual(['a', 'b'])
  })

  it('a batch with one bad event writes nothing: 400 naming the event', async () => {
    const {bus: b, url} = await gateway()
    const res = await call(`${url}/v1/events`, {
      method: 'POST',
      headers: {'content-type': 'application/cloudevents-batch+json'},
      body: JSON.stringify([ce(), ce({type: 'has space'})]),
    })
    expect(res.status).toBe(400)
    expect(res.body.error).toMatchObject({code: 'INVALID_INPUT', status: 400})
    expect(res.body.error.message).toMatch(/^event 2: invalid event: type/)
    expect(await keysUnder(b.keys.prefix)).toEqual([])
  })

  it('an unknown channel: 404 naming the nearest, and the event is parked in DLQ routing_error', async () => {
    const {bus: b, url} = await gateway()
    const res = await call(`${url}/v1/events`, structured(ce({channel: 'sys.alert.warnin'})))
    expect(res.status).toBe(404)
    expect(res.body.error).toMatchObject({
      code: 'ROUTING_ERROR',
      channel: 'sys.alert.warnin',
      suggestion: 'sys.alert.warning',
      parked: true,
    })
    const [entry] = await b.dlq.list({reasons: ['routing_error']})
    expect(entry.originalChannel).toBe('sys.alert.warnin')
  })

  it('413 for a payload over maxPayloadBytes and for a body over the body limit; nothing written', async () => {
    const {bus: b, url} = await gateway({maxPayloadBytes: 1024})
    const big = await call(`${url}/v1/events`, structured(ce({data: {blob: 'x'.repeat(2000)}})))
    expect(big.status).toBe(413)
    expect(big.body.error).toMatchObject({code: 'PAYLOAD_TOO_LARGE', limit: 1024})
    const huge = await call(`${url}/v1/events`, structured(ce({data: {blob: 'x'.repeat(200_000)}})))
    expect(huge.status).toBe(413)
    expect(huge.body.error.code).toBe('PAYLOAD_TOO_LARGE')
    expect(await keysUnder(b.keys.prefix)).toEqual([])
  })

  it('400 for what the library refuses or JSON cannot carry exactly, 415 for a body that is not JSON', async () => {
    const {bus: b, url} = await gateway()
    const cases: [RequestInit, number, RegExp][] = [
      [structured(ce({type: ''})), 400, /invalid event: type/],
      [structured(ce({specversion: '0.3'})), 400, /specversion must be "1.0"/],
      [structured(ce({channel: undefined})), 400, /channel is required/],
      [structured(ce({data: [1, 2]})), 400, /invalid event: data: must be a JSON object/],
      [structured(ce({time: 'yesterday'})), 400, /invalid event: time: must be an RFC 3339 timestamp/],
      [structured({...ce(), data: undefined, data_base64: 'AAE='}), 400, /data_base64/],
      [structured(ce({datacontenttype: 'text/plain'})), 400, /datacontenttype: must be a JSON media type/],
      [
        {
          method: 'POST',
          headers: {'content-type': 'application/cloudevents+json'},
          body: '{"specversion":"1.0","type":"t","source":"s","channel":"sys.state.update","data":{"n":9007199254740993}}',
        },
        400,
        /cannot be kept exactly/,
      ],
      [
        {method: 'POST', headers: {'content-type': 'application/cloudevents+json'}, body: '{"specversion":'},
        400,
        /not JSON/,
      ],
      [
        {method: 'POST', headers: {'content-type': 'application/json'}, body: '{"a":1}'},
        400,
        /not a CloudEvent/,
      ],
      [
        {method: 'POST', headers: {'content-type': 'text/plain'}, body: 'hello'},
        415,
        /unsupported Content-Type/,
      ],
    ]
    for (const [init, status, message] of cases) {
      const res = await call(`${url}/v1/events`, init)
      expect(res.status, String(init.body)).toBe(status)
      expect(res.body.error.message, String(init.body)).toMatch(message)
    }
    expect(await keysUnder(b.keys.prefix)).toEqual([])
  })

  it("the official cloudevents SDK's HTTP emitter: what it POSTs comes out of GET /v1/events/{id} unchanged", async () => {
    const {url} = await gateway()
    for (const mode of [Mode.BINARY, Mode.STRUCTURED]) {
      const emit = emitterFor(httpTransport(`${url}/v1/events`), {mode})
      const event = new CloudEvent({
        id: `order-42-${mode}`,
        type: 'com.example.order.created',
        source: 'https://shop.example/eu',
        time: '2026-11-29T08:00:00.123456+01:00',
        subject: 'orders/42',
        dataschema: 'https://shop.example/schemas/order.json',
        datacontenttype: 'application/json',
        channel: 'sys.guild.research.broadcast',
        priority: 'high',
        tenant: 'acme',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        data: {order: 42, total: 99.5, items: ['a', 'b'], mode},
      })
      await emit(event)
      const got = await call(`${url}/v1/events/${encodeURIComponent(event.id)}`)
      expect(got.status, mode).toBe(200)
      expect(got.body, mode).toEqual(event.toJSON())
      // And back through the SDK's own reader.
      const read = HTTP.toEvent({
        headers: {'content-type': 'application/cloudevents+json'},
        body: got.text,
      }) as CloudEvent
      expect(read.toJSON(), mode).toEqual(event.toJSON())
    }
  })
})
