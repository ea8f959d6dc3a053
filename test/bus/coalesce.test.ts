import {describe, expect, it, vi} from 'vitest'
import {z} from 'zod'

import {PayloadTooLargeError, RoutingError, SchemaViolationError} from '../../src/bus/index.js'
import {ROUTING_DLQ_CHANNEL} from '../../src/bus/channels.js'
import {parseEnvelope} from '../../src/bus/envelope.js'
import {CALL_EVENTS} from '../../src/bus/publisher.js'
import {testBuses} from '../helpers/index.js'

const bus = testBuses()

/** The `n` payload field of every event in a channel's stream, in stream order. */
async function streamOrder(b: Awaited<ReturnType<typeof bus>>, channel: string): Promise<number[]> {
  const entries = await b.redis.xrange(b.keys.stream(channel), '-', '+')
  return entries.map(([, fields]) => {
    const parsed = parseEnvelope(fields[1])
    if (!parsed.ok) throw new Error('malformed entry')
    return parsed.event.data.n as number
  })
}

describe('single publishes issued together (coalesced into small script calls)', () => {
  it('keeps the order of each channel across many calls and ticks', async () => {
    const b = await bus({
      channels: [
        {name: 'app.a', retention: '1h'},
        {name: 'app.b', retention: '1h'},
      ],
    })
    const sent: Record<string, number[]> = {'app.a': [], 'app.b': []}
    const ids: Promise<string>[] = []
    // Five ticks of 100 publishes, two channels interleaved: many calls of at most CALL_EVENTS.
    for (let tick = 0; tick < 5; tick++) {
      for (let i = 0; i < 100; i++) {
        const n = tick * 100 + i
        const channel = n % 3 === 0 ? 'app.a' : 'app.b'
        sent[channel].push(n)
        ids.push(b.publish({channel, type: 'seq', payload: {n}}))
      }
      await Promise.resolve()
    }
    const resolved = await Promise.all(ids)
    expect(new Set(resolved).size).toBe(500)
    expect(await streamOrder(b, 'app.a')).toEqual(sent['app.a'])
    expect(await streamOrder(b, 'app.b')).toEqual(sent['app.b'])
    expect(await b.redis.hget(b.keys.stats('app.b'), 'published')).toBe(String(sent['app.b'].length))
    expect(CALL_EVENTS).toBeLessThanOrEqual(16)
  })

  it('fails only the publishes that are at fault, and stores the others', async () => {
    const b = await bus({
      channels: [{name: 'app.a', retention: '1h'}],
      maxPayloadBytes: 200,
      schemas: {order: z.object({qty: z.number()})},
    })
    const results = await Promise.allSettled([
      b.publish({channel: 'app.a', type: 'ok', payload: {n: 0}}),
      b.publish({channel: 'app.a', type: 'order', payload: {qty: 'many'}}),
      b.publish({channel: 'app.a', type: 'ok', payload: {n: 1, pad: 'x'.repeat(300)}}),
      b.publish({channel: 'app.unknown', type: 'ok', payload: {n: 2}}),
      b.publish({channel: 'app.a', type: 'bad type!', payload: {n: 3}}),
      b.publish({channel: 'app.a', type: 'order', payload: {qty: 2, n: 4}}),
    ])
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'rejected',
      'rejected',
      'fulfilled',
    ])
    const reason = (i: number) => (results[i] as PromiseRejectedResult).reason as Error
    expect(reason(1)).toBeInstanceOf(SchemaViolationError)
    expect(reason(2)).toBeInstanceOf(PayloadTooLargeError)
    expect(reason(3)).toBeInstanceOf(RoutingError)
    expect(reason(4).message).toMatch(/^invalid event: type: type must be 1-128 characters/)
    expect(await streamOrder(b, 'app.a')).toEqual([0, 4])
    // The unknown channel's event is parked, not lost.
    expect(await b.redis.xlen(b.keys.dlq(ROUTING_DLQ_CHANNEL, 'routing_error'))).toBe(1)
  })

  it('fails exactly the publishes of a script call that Redis refuses', async () => {
    const b = await bus({
      channels: [
        {name: 'app.a', retention: '1h'},
        {name: 'app.b', retention: '1h'},
      ],
    })
    // app.b's stream key holds a string: every XADD to it fails (WRONGTYPE), app.a's succeed.
    await b.redis.set(b.keys.stream('app.b'), 'not a stream')
    const count = CALL_EVENTS * 2 + 3
    const results = await Promise.allSettled(
      Array.from({length: count}, (_, n) =>
        b.publish({channel: n % 2 ? 'app.b' : 'app.a', type: 'seq', payload: {n}}),
      ),
    )
    results.forEach((r, n) => {
      expect(r.status).toBe(n % 2 ? 'rejected' : 'fulfilled')
      if (r.status === 'rejected') expect(String(r.reason)).toMatch(/WRONGTYPE/)
    })
    expect(await streamOrder(b, 'app.a')).toEqual(
      Array.from({length: count}, (_, n) => n).filter((n) => n % 2 === 0),
    )
  })

  it('sends a lone publish at once, with no timer', async () => {
    const b = await bus({channels: [{name: 'app.a', retention: '1h'}]})
    await b.publish({channel: 'app.a', type: 'warm'})
    vi.useFakeTimers({toFake: ['setTimeout', 'setInterval', 'setImmediate']})
    try {
      const id = await b.publish({channel: 'app.a', type: 'lone', payload: {n: 7}})
      expect((await b.getEvent(id)).data).toEqual({n: 7})
    } finally {
      vi.useRealTimers()
    }
  })

  it('stores publishes issued right before close', async () => {
    const b = await bus({channels: [{name: 'app.a', retention: '1h'}]})
    const pending = [0, 1, 2].map((n) => b.publish({channel: 'app.a', type: 'seq', payload: {n}}))
    await b.close()
    await expect(Promise.all(pending)).resolves.toHaveLength(3)
  })
})
