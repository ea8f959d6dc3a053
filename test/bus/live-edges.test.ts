import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus, type RaptorEvent} from '../../src/bus/index.js'
import {randomPrefix, redisUrl, waitFor} from '../helpers/index.js'
import {RedisServer} from '../helpers/redis-server.js'

const buses: RaptorBus[] = []
const servers: RedisServer[] = []

afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
  for (const s of servers.splice(0)) await s.stop(true)
})

async function connect(prefix: string, db = 0, url = redisUrl()): Promise<RaptorBus> {
  const b = await RaptorBus.connect({redisUrl: url.replace(/\/\d+$/, `/${db}`), prefix})
  buses.push(b)
  return b
}

/** Subscribes to everything and collects the event types received. */
async function listen(b: RaptorBus): Promise<string[]> {
  const got: string[] = []
  await b.subscribe('**', (e: RaptorEvent) => void got.push(e.type))
  return got
}

describe('live isolation: two prefixes, or two databases, never see each other', () => {
  it("prefix 'a' does not receive events published under prefix 'a:live' (nor the reverse)", async () => {
    const a = randomPrefix()
    const [busA, busALive] = [await connect(a), await connect(`${a}:live`)]
    const [gotA, gotALive] = [await listen(busA), await listen(busALive)]
    await busALive.publish({channel: 'sys.alert.warning', type: 'from_a_live'})
    await busA.publish({channel: 'sys.alert.warning', type: 'from_a'})
    // Redis delivers in the order it ran the publishes: once the second arrives, the first would have.
    await waitFor(() => gotA.includes('from_a') && gotALive.includes('from_a_live'), 5000, 'own events')
    expect(gotA).toEqual(['from_a'])
    expect(gotALive).toEqual(['from_a_live'])
  })

  it('a subscriber on db 5 does not receive events published on db 0 (pub/sub ignores databases)', async () => {
    const prefix = randomPrefix()
    const [db0, db5] = [await connect(prefix, 0), await connect(prefix, 5)]
    const [got0, got5] = [await listen(db0), await listen(db5)]
    await db0.publish({channel: 'sys.alert.warning', type: 'on_db0'})
    await db5.publish({channel: 'sys.alert.warning', type: 'on_db5'})
    await waitFor(() => got0.includes('on_db0') && got5.includes('on_db5'), 5000, 'own events')
    expect(got0).toEqual(['on_db0'])
    expect(got5).toEqual(['on_db5'])
  })

  it('requests and replies stay within their database', async () => {
    const prefix = randomPrefix()
    const [db0, db5] = [await connect(prefix, 0), await connect(prefix, 5)]
    expect(db0.keys.reply('c1')).not.toBe(db5.keys.reply('c1'))
    expect(db0.keys.live('sys.alert.warning')).not.toBe(db5.keys.live('sys.alert.warning'))
  })
})

describe('bus.subscribe counts what a subscriber missed', () => {
  it('dropped: events past maxInFlight while the handler is busy', async () => {
    const b = await connect(randomPrefix())
    let release!: () => void
    const busy = new Promise<void>((r) => (release = r))
    let calls = 0
    const sub = await b.subscribe(
      'sys.alert.*',
      () => {
        calls++
        return busy
      },
      {maxInFlight: 1},
    )
    await b.publishMany(Array.from({length: 10}, () => ({channel: 'sys.alert.warning', type: 't'})))
    await waitFor(() => sub.dropped === 9, 5000, '9 dropped')
    expect(calls).toBe(1)
    release()
  })

  it('lost and disconnects: events published while Redis had cut the subscriber off, reported on reconnect', async () => {
    const server = await RedisServer.start()
    servers.push(server)
    const b = await connect(randomPrefix(), 0, server.url)
    const got: string[] = []
    const gaps: number[] = []
    const sub = await b.subscribe('sys.alert.*', (e) => void got.push(e.type), {
      onGap: ({lost}) => gaps.push(lost),
    })
    await b.publish({channel: 'sys.alert.warning', type: 'before'})
    await waitFor(() => got.includes('before'), 5000, 'the first event')
    // Redis cuts off every subscriber; 20 events go out before the bus has resubscribed.
    await b.redis.client('KILL', 'TYPE', 'pubsub')
    await b.publishMany(Array.from({length: 20}, () => ({channel: 'sys.alert.warning', type: 'during'})))
    await waitFor(() => gaps.length === 1, 10_000, 'the gap report')
    expect(gaps).toEqual([20])
    expect(sub.lost).toBe(20)
    expect(sub.disconnects).toBe(1)
    // Still subscribed.
    await b.publish({channel: 'sys.alert.warning', type: 'after'})
    await waitFor(() => got.includes('after'), 5000, 'an event after the reconnect')
    expect(got.filter((t) => t === 'during')).toEqual([])
  })

  it('a --since backfill whose hold overflows reads history again: no gap, no duplicate', async () => {
    const b = await connect(randomPrefix())
    const publisher = await connect(b.keys.prefix)
    await publisher.publishMany(
      Array.from({length: 50}, (_, n) => ({channel: 'sys.state.update', type: 'old', payload: {n}})),
    )
    const seen: number[] = []
    let live = 50
    // A slow handler during the backfill, while 5 events at a time are held at most.
    const sub = await b.subscribe(
      'sys.state.update',
      async (e) => {
        seen.push(e.data.n as number)
        if (live < 120)
          await publisher.publishMany(
            Array.from({length: 3}, () => ({channel: 'sys.state.update', type: 'new', payload: {n: live++}})),
          )
      },
      {since: 3_600_000, maxHeld: 5},
    )
    await waitFor(() => seen.length >= live && live >= 120, 10_000, 'every event')
    expect(seen).toEqual(Array.from({length: live}, (_, n) => n))
    await sub.unsubscribe()
  })
})

describe('timeouts beyond what one Node timer holds', () => {
  it('bus.request with a 30-day timeout waits for the reply instead of timing out at once', async () => {
    const b = await connect(randomPrefix())
    await b.subscribe('sys.guild.research.broadcast', (e) => {
      if (e.type === 'lookup') void b.reply(e, {answer: 42})
    })
    const reply = await b.request({
      channel: 'sys.guild.research.broadcast',
      type: 'lookup',
      payload: {},
      timeoutMs: 30 * 24 * 3600 * 1000,
    })
    expect(reply.data).toEqual({answer: 42})
  })
})
