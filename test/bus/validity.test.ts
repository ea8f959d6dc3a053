import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'
import {z} from 'zod'

import {
  InvalidInputError,
  MalformedEntryError,
  SchemaViolationError,
  type RaptorBus,
  type RaptorEvent,
} from '../../src/bus/index.js'
import {tempDir, testBuses, waitFor} from '../helpers/index.js'

const bus = testBuses()
const CHANNEL = 'sys.state.update'

/** Writes envelopes straight into a channel's stream, as a foreign producer's XADD would. */
async function foreignXadd(b: RaptorBus, envelopes: (Record<string, unknown> | string)[]): Promise<void> {
  await b.redis.sadd(b.keys.channelRegistry(), CHANNEL)
  for (const e of envelopes) {
    const json = typeof e === 'string' ? e : JSON.stringify(e)
    const sid = await b.redis.xadd(b.keys.stream(CHANNEL), '*', 'e', json)
    const id = typeof e === 'string' ? /"id":"([^"]+)"/.exec(e)?.[1] : (e.id as string)
    if (id && sid) await b.redis.set(b.keys.eventIndex(CHANNEL, id), sid, 'PX', 3_600_000)
  }
}

function cloudEvent(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    specversion: '1.0',
    id,
    type: 'thing',
    source: '/foreign',
    time: '2026-11-29T07:00:00.000Z',
    channel: CHANNEL,
    data: {id},
    ...extra,
  }
}

/** A payload nested `depth` levels deep, as JSON text (built without recursion). */
function deepJson(depth: number): string {
  return '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1)
}

/** Consumes the channel with a handler that records what it got, and the outcomes. */
async function consumeAll(b: RaptorBus) {
  const handled: RaptorEvent[] = []
  const outcomes: string[] = []
  await b.consume(
    {name: 'reader', channels: [CHANNEL], handle: (event) => void handled.push(event)},
    {onOutcome: (o) => outcomes.push(`${o.eventId ?? '?'} ${o.outcome} ${o.reason ?? ''}`.trim())},
  )
  return {handled, outcomes}
}

describe('one rule of validity: what get and replay accept, a consumer handles', () => {
  it('handles valid CloudEvents a fast check used to dead-letter: no priority, any time, a producer id', async () => {
    const b = await bus()
    const {handled, outcomes} = await consumeAll(b)
    const events = [
      cloudEvent('no-priority'),
      cloudEvent('seconds', {time: '2026-11-29T07:00:00Z', priority: 'high'}),
      cloudEvent('offset', {time: '2026-11-29T07:00:00+00:00'}),
      cloudEvent('nanos', {time: '2026-11-29T09:00:00.123456789+02:00'}),
      cloudEvent('2b0f0e1c-7c1a-4c1e-9a7e-5d3c2b1a0f9e', {subject: 's', tenant: 'acme', n: 3, flag: false}),
      cloudEvent('no content type', {datacontenttype: undefined}),
    ]
    await foreignXadd(b, events)
    await waitFor(() => handled.length === events.length, 10_000, `all handled (${outcomes.join('; ')})`)
    expect(await b.redis.xlen(b.keys.dlq(CHANNEL, 'schema_violation'))).toBe(0)
    const expected = events.map((e) => JSON.parse(JSON.stringify(e)))
    expect(handled).toEqual(expected)
    const replayed: RaptorEvent[] = []
    for await (const e of b.replay(CHANNEL)) replayed.push(e)
    expect(replayed).toEqual(expected)
    for (const e of expected) expect(await b.getEvent(e.id)).toEqual(e)
  })

  it('dead-letters what readers skip, and says why: 20,000 levels deep, an unsafe integer, a bad time', async () => {
    const b = await bus()
    const {handled, outcomes} = await consumeAll(b)
    const good = cloudEvent('good')
    const deep = JSON.stringify(cloudEvent('deep')).replace('{"id":"deep"}', deepJson(20_000))
    const big = JSON.stringify(cloudEvent('big')).replace('{"id":"big"}', '{"n":12345678901234567890}')
    const huge = JSON.stringify(cloudEvent('huge')).replace('{"id":"huge"}', '{"n":1e400}')
    await foreignXadd(b, [deep, big, huge, cloudEvent('bad-time', {time: '2026-13-01T00:00:00Z'}), good])
    await waitFor(() => handled.length === 1 && outcomes.length === 5, 10_000, 'all outcomes')
    expect(handled.map((e) => e.id)).toEqual(['good'])
    const dead = await b.dlq.list({reasons: ['schema_violation']})
    expect(dead.map((e) => e.error)).toEqual([
      expect.stringMatching(/data\.a\.a.*nests deeper than 128 levels/),
      expect.stringMatching(/data\.n: integer 12345678901234567000 is beyond ±2\^53/),
      expect.stringMatching(/data\.n: Infinity is not a finite number/),
      expect.stringMatching(/time: must be an RFC 3339 timestamp/),
    ])
    // Readers skip the same entries, count them, and give the rest.
    const skipped: MalformedEntryError[] = []
    const replayed: string[] = []
    for await (const e of b.replay(CHANNEL, {}, {onMalformed: (error) => skipped.push(error)}))
      replayed.push(e.id)
    expect(replayed).toEqual(['good'])
    expect(skipped).toHaveLength(4)
    await expect(b.getEvent('deep')).rejects.toThrow(MalformedEntryError)
    await expect(b.getEvent('deep')).rejects.toThrow(
      /event deep is stored as a malformed entry .*nests deeper/,
    )
  })

  it('publishes and consumes event types named like object methods', async () => {
    const b = await bus({schemas: {order: z.object({id: z.string()})}})
    const {handled, outcomes} = await consumeAll(b)
    const types = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', '__defineGetter__']
    for (const type of types) await b.publish({channel: CHANNEL, type, payload: {}})
    await waitFor(() => handled.length === types.length, 10_000, `handled (${outcomes.join('; ')})`)
    expect(handled.map((e) => e.type)).toEqual(types)
    await expect(b.publish({channel: CHANNEL, type: 'order', payload: {}})).rejects.toThrow(
      SchemaViolationError,
    )
  })

  it('keeps a config schema for type "__proto__" as a schema, not as the prototype of the map', async () => {
    const dir = tempDir()
    const config = join(dir, 'raptor.config.json')
    writeFileSync(
      config,
      // Written as text: a JS object literal cannot hold an own "__proto__" key, a JSON file can.
      '{"schemas":{"__proto__":{"type":"object","properties":{"p":{"type":"number"}},"required":["p"]},' +
        '"order":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}}}',
    )
    const b = await bus({config})
    await expect(b.publish({channel: CHANNEL, type: '__proto__', payload: {}})).rejects.toThrow(
      /payload of type '__proto__' fails its schema/,
    )
    await expect(b.publish({channel: CHANNEL, type: 'order', payload: {}})).rejects.toThrow(
      SchemaViolationError,
    )
    expect(await b.publish({channel: CHANNEL, type: 'other', payload: {}})).toMatch(/^evt-/)
    expect(await b.publish({channel: CHANNEL, type: '__proto__', payload: {p: 1}})).toMatch(/^evt-/)
  })
})

describe('nothing silently changed: a payload is checked as it is serialized', () => {
  const refused: [string, unknown, RegExp][] = [
    ['a toJSON that returns a string', {toJSON: () => 'x'}, /payload serializes to "x", not a JSON object/],
    ['a toJSON that returns an array', {toJSON: () => [1]}, /payload serializes to \[1\], not a JSON object/],
    ['a toJSON that returns nothing', {toJSON: () => undefined}, /payload serializes to nothing/],
    ['Infinity', {a: {b: Infinity}}, /payload holds a number JSON cannot carry \(b: Infinity\)/],
    ['NaN in an array', {a: [1, NaN]}, /payload holds a number JSON cannot carry/],
    ['an integer beyond 2^53', {n: 2 ** 60}, /payload data\.n: integer 1152921504606847000 is beyond ±2\^53/],
    [
      'a BigInt',
      {n: BigInt(1)},
      /payload cannot be serialized as JSON: Do not know how to serialize a BigInt/,
    ],
    ['200 levels deep', JSON.parse(deepJson(200)), /payload data\.a\.a.*nests deeper than 128 levels/],
  ]
  for (const [what, payload, message] of refused) {
    it(`refuses ${what} and writes nothing`, async () => {
      const b = await bus()
      const error = await b
        .publish({channel: CHANNEL, type: 't', payload: payload as Record<string, unknown>})
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(InvalidInputError)
      expect((error as Error).message).toMatch(message)
      expect(await b.redis.keys(`${b.keys.prefix}:*`)).toEqual([])
    })
  }

  it('publishes what toJSON returns when it is an object, and every reader sees that', async () => {
    const b = await bus()
    const id = await b.publish({
      channel: CHANNEL,
      type: 't',
      payload: {toJSON: () => ({a: 1})} as unknown as Record<string, unknown>,
    })
    expect((await b.getEvent(id)).data).toEqual({a: 1})
  })
})
