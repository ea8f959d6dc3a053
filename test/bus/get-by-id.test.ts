import {randomUUID} from 'node:crypto'

import {describe, expect, it} from 'vitest'

import {NotFoundError} from '../../src/bus/index.js'
import {ID_EARLY_MS, ID_LATE_MS, eventIdTime, newEventId} from '../../src/bus/event-ids.js'
import {testBuses} from '../helpers/index.js'

const bus = testBuses()
const channels = [
  {name: 'app.a', retention: '1h'},
  {name: 'app.b', retention: '1h'},
]

/** Server time of the test Redis, ms. */
async function serverNow(b: Awaited<ReturnType<typeof bus>>): Promise<number> {
  const [s, us] = await b.redis.time()
  return Number(s) * 1000 + Math.floor(Number(us) / 1000)
}

/** Events that fill a channel's history around the one looked for. */
async function filler(b: Awaited<ReturnType<typeof bus>>, channel: string, count: number): Promise<void> {
  await b.publishMany(Array.from({length: count}, (_, n) => ({channel, type: 'filler', payload: {n}})))
}

describe('get by id', () => {
  it('makes time-ordered ids (evt-<uuid v7>) that carry their time', () => {
    const id = newEventId(1_764_400_000_123)
    expect(id).toMatch(/^evt-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(eventIdTime(id)).toBe(1_764_400_000_123)
    expect(newEventId()).not.toBe(newEventId())
    expect(eventIdTime(`evt-${randomUUID()}`)).toBeUndefined()
    expect(eventIdTime('order-42')).toBeUndefined()
  })

  it('finds a raptor id by its time in the right channel, with no key per event', async () => {
    const b = await bus({channels})
    await filler(b, 'app.b', 300)
    const id = await b.publish({channel: 'app.a', type: 'target', payload: {n: 1}})
    await filler(b, 'app.a', 300)
    expect(await b.redis.keys(b.keys.eventIndex('app.a', '*'))).toEqual([])
    expect(await b.getEvent(id)).toMatchObject({id, channel: 'app.a', type: 'target', data: {n: 1}})
  })

  it('reads outwards from the id time, both ways, over many rounds, within the window', async () => {
    const b = await bus({channels})
    const now = await serverNow(b)
    // Made 3 s before it was stored (a slow clock): thousands of entries lie between.
    const behind = newEventId(now - 3000)
    // Made 0.8 s after it was stored (a fast clock): found reading backwards.
    const ahead = newEventId(now + 800)
    await b.publish({channel: 'app.a', type: 'ahead', id: ahead})
    await filler(b, 'app.a', 2500)
    await b.publish({channel: 'app.a', type: 'behind', id: behind})
    expect(await b.redis.keys(b.keys.eventIndex('app.a', '*'))).toEqual([])
    expect((await b.getEvent(behind)).type).toBe('behind')
    expect((await b.getEvent(ahead)).type).toBe('ahead')
  })

  it('indexes a raptor id made outside the window of its entry time, and finds it by the key', async () => {
    const b = await bus({channels})
    const now = await serverNow(b)
    const late = newEventId(now - ID_LATE_MS - 60_000)
    const early = newEventId(now + ID_EARLY_MS + 60_000)
    await b.publish({channel: 'app.a', type: 'late', id: late})
    await b.publish({channel: 'app.b', type: 'early', id: early})
    expect(await b.redis.exists(b.keys.eventIndex('app.a', late))).toBe(1)
    expect(await b.redis.exists(b.keys.eventIndex('app.b', early))).toBe(1)
    expect((await b.getEvent(late)).type).toBe('late')
    expect((await b.getEvent(early)).type).toBe('early')
  })

  it('finds producer ids and old evt-<uuid v4> ids by their index keys', async () => {
    const b = await bus({channels})
    const producer = await b.publish({channel: 'app.a', type: 'producer', id: 'order/42'})
    // An event stored by an earlier version: a v4 id, its entry and index key as the old script wrote them.
    const old = `evt-${randomUUID()}`
    const envelope = {
      specversion: '1.0',
      id: old,
      type: 'old',
      source: 'raptorbus',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      channel: 'app.b',
      priority: 'normal',
      data: {},
    }
    const streamId = await b.redis.xadd(b.keys.stream('app.b'), '*', 'e', JSON.stringify(envelope))
    await b.redis.set(b.keys.eventIndex('app.b', old), streamId!, 'PX', 3_600_000)
    expect((await b.getEvent(producer)).type).toBe('producer')
    expect(await b.getEvent(old)).toEqual(envelope)
  })

  it('is not fooled by a payload that holds the id', async () => {
    const b = await bus({channels})
    const id = newEventId()
    await b.publish({channel: 'app.a', type: 'mention', payload: {ref: id}})
    await expect(b.getEvent(id)).rejects.toBeInstanceOf(NotFoundError)
    await b.publish({channel: 'app.a', type: 'target', id})
    expect((await b.getEvent(id)).type).toBe('target')
  })

  it('does not find an event trimmed from history, nor one never published', async () => {
    const b = await bus({channels})
    const id = await b.publish({channel: 'app.a', type: 'gone'})
    const producer = await b.publish({channel: 'app.a', type: 'gone', id: 'order/43'})
    await b.redis.xtrim(b.keys.stream('app.a'), 'MAXLEN', 0)
    await expect(b.getEvent(id)).rejects.toBeInstanceOf(NotFoundError)
    await expect(b.getEvent(producer)).rejects.toBeInstanceOf(NotFoundError)
    await expect(b.getEvent(newEventId())).rejects.toThrow(/not found/)
  })
})
