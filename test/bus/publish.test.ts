import {Redis} from 'ioredis'
import {describe, expect, it} from 'vitest'

import {
  InvalidInputError,
  PayloadTooLargeError,
  RaptorBus,
  RoutingError,
  SchemaViolationError,
} from '../../src/bus/index.js'
import {parseEnvelope} from '../../src/bus/envelope.js'
import {z} from 'zod'
import {redisUrl, testBuses} from '../helpers/index.js'

const bus = testBuses()

async function keysOf(prefix: string): Promise<string[]> {
  const redis = new Redis(redisUrl())
  try {
    return (await redis.keys(`${prefix}:*`)).sort()
  } finally {
    redis.disconnect()
  }
}

describe('publish', () => {
  it('writes a CloudEvents envelope to the channel stream, counted, with a time-ordered id', async () => {
    const b = await bus()
    const id = await b.publish({
      channel: 'sys.alert.warning',
      type: 'disk_low',
      payload: {free: 0.05},
      source: 'RES-001',
    })
    expect(id).toMatch(/^evt-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    const entries = await b.redis.xrange(b.keys.stream('sys.alert.warning'), '-', '+')
    expect(entries).toHaveLength(1)
    const parsed = parseEnvelope(entries[0][1][1])
    expect(parsed.ok).toBe(true)
    if (!parsed.ok) return
    expect(parsed.event).toMatchObject({
      specversion: '1.0',
      id,
      type: 'disk_low',
      source: 'RES-001',
      datacontenttype: 'application/json',
      channel: 'sys.alert.warning',
      priority: 'normal',
      data: {free: 0.05},
    })
    // The id tells get where to look: no key per event.
    expect(await b.redis.exists(b.keys.eventIndex('sys.alert.warning', id))).toBe(0)
    expect(await b.redis.hget(b.keys.stats('sys.alert.warning'), 'published')).toBe('1')
    expect((await b.getEvent(id)).data).toEqual({free: 0.05})
  })

  it('indexes a producer id for get, expiring with the channel retention (from Redis server time)', async () => {
    const b = await bus()
    const id = await b.publish({channel: 'sys.global.heartbeat', type: 'beat', id: 'beat/42'})
    const [[streamId]] = await b.redis.xrange(b.keys.stream('sys.global.heartbeat'), '-', '+')
    expect(await b.redis.get(b.keys.eventIndex('sys.global.heartbeat', id))).toBe(streamId)
    const ttl = await b.redis.pttl(b.keys.eventIndex('sys.global.heartbeat', id))
    expect(ttl).toBeGreaterThan(55_000)
    expect(ttl).toBeLessThanOrEqual(60_000)
  })

  it('trims history older than the retention by server time', async () => {
    const b = await bus({channels: [{name: 'app.short', retention: 1000}]})
    const stream = b.keys.stream('app.short')
    // Entries written as if 10 minutes old (ids are server-time ms), in more than one macro node.
    const old = Date.now() - 600_000
    for (let i = 0; i < 300; i++) await b.redis.xadd(stream, `${old}-${i}`, 'e', '{}')
    await b.publish({channel: 'app.short', type: 'fresh'})
    const length = await b.redis.xlen(stream)
    expect(length).toBeLessThan(301)
    const events = []
    for await (const e of b.replay('app.short')) events.push(e)
    expect(events.map((e) => e.type)).toEqual(['fresh'])
  })

  it('rejects invalid input and writes nothing', async () => {
    const b = await bus({
      maxPayloadBytes: 100,
      schemas: {order_created: z.object({orderId: z.string()})},
      channels: [{name: 'app.orders.*', retention: '1h'}],
    })
    await expect(b.publish({channel: 'Bad Channel', type: 't'})).rejects.toBeInstanceOf(InvalidInputError)
    await expect(b.publish({channel: 'sys.alert.warning', type: 'bad type!'})).rejects.toBeInstanceOf(
      InvalidInputError,
    )
    await expect(
      b.publish({
        channel: 'sys.alert.warning',
        type: 't',
        payload: [1] as unknown as Record<string, unknown>,
      }),
    ).rejects.toBeInstanceOf(InvalidInputError)
    await expect(
      b.publish({channel: 'sys.alert.warning', type: 't', payload: {x: 'y'.repeat(200)}}),
    ).rejects.toBeInstanceOf(PayloadTooLargeError)
    const violation = await b
      .publish({channel: 'app.orders.eu', type: 'order_created', payload: {orderId: 7}})
      .catch((e) => e)
    expect(violation).toBeInstanceOf(SchemaViolationError)
    expect(violation.issues[0].path).toBe('orderId')
    expect(await keysOf(b.keys.prefix)).toEqual([])
    await b.publish({channel: 'app.orders.eu', type: 'order_created', payload: {orderId: 'o-1'}})
    expect(await b.redis.xlen(b.keys.stream('app.orders.eu'))).toBe(1)
  })

  it('parks an event for an unknown channel in DLQ routing_error and names the nearest channel', async () => {
    const b = await bus()
    const error = await b.publish({channel: 'sys.alert.critcal', type: 'fire'}).catch((e) => e)
    expect(error).toBeInstanceOf(RoutingError)
    expect(error.suggestion).toBe('sys.alert.critical')
    expect(error.message).toContain("did you mean 'sys.alert.critical'")
    const parked = await b.redis.xrange(b.keys.dlq('sys.dlq.routing_error', 'routing_error'), '-', '+')
    expect(parked).toHaveLength(1)
    const fields = Object.fromEntries(
      parked[0][1].reduce<string[][]>((acc, v, i, all) => (i % 2 ? acc : [...acc, [v, all[i + 1]]]), []),
    )
    expect(fields.reason).toBe('routing_error')
    expect(fields.channel).toBe('sys.alert.critcal')
    expect(JSON.parse(fields.e).type).toBe('fire')
    expect(await b.redis.exists(b.keys.stream('sys.alert.critcal'))).toBe(0)
  })

  it('publishMany parks every event addressed to an unknown channel and writes none of the batch', async () => {
    const b = await bus()
    const error = await b
      .publishMany([
        {channel: 'sys.state.update', type: 'ok'},
        {channel: 'sys.alert.critcal', type: 'fire', payload: {n: 1}},
        {channel: 'app.nowhere', type: 'fire', payload: {n: 2}},
      ])
      .catch((e) => e)
    expect(error).toBeInstanceOf(RoutingError)
    expect(error.parked).toBe(true)
    expect(error.message).toContain("unknown channel 'sys.alert.critcal' (event parked in DLQ routing_error)")
    const parked = await b.redis.xrange(b.keys.dlq('sys.dlq.routing_error', 'routing_error'), '-', '+')
    expect(parked.map(([, f]) => JSON.parse(f[f.indexOf('e') + 1]).data)).toEqual([{n: 1}, {n: 2}])
    expect(await b.redis.exists(b.keys.stream('sys.state.update'))).toBe(0)
  })

  it('publishes many in one pipeline, and nothing when one of them is invalid', async () => {
    const b = await bus()
    const ids = await b.publishMany(
      Array.from({length: 2500}, (_, i) => ({channel: 'sys.state.update', type: 'tick', payload: {i}})),
    )
    expect(new Set(ids).size).toBe(2500)
    expect(await b.redis.xlen(b.keys.stream('sys.state.update'))).toBe(2500)
    await expect(
      b.publishMany([
        {channel: 'sys.state.update', type: 'ok'},
        {channel: 'sys.state.update', type: 'bad type'},
      ]),
    ).rejects.toThrow(/event 2/)
    expect(await b.redis.xlen(b.keys.stream('sys.state.update'))).toBe(2500)
  })

  it('keeps two prefixes apart', async () => {
    const a = await bus()
    const c = await bus()
    await a.publish({channel: 'sys.state.update', type: 'x'})
    expect(await c.redis.xlen(c.keys.stream('sys.state.update'))).toBe(0)
  })

  it('fails fast with a ConnectionError when Redis is unreachable, without printing the password', async () => {
    const started = Date.now()
    const error = await RaptorBus.connect({redisUrl: 'redis://user:hunter2@127.0.0.1:1/0'}).catch((e) => e)
    expect(error.code).toBe('CONNECTION_ERROR')
    expect(error.message).not.toContain('hunter2')
    expect(error.message).toContain('ECONNREFUSED')
    expect(Date.now() - started).toBeLessThan(3500)
  })
})
