import {afterEach, describe, expect, it} from 'vitest'

import {InvalidInputError, RaptorBus, getBus, type RaptorEvent} from '../../src/bus/index.js'
import {randomPrefix, redisUrl, testBus, waitFor} from '../helpers/index.js'

const buses: RaptorBus[] = []
async function bus(options = {}) {
  const b = await testBus(options)
  buses.push(b)
  return b
}

/** A second bus on the same prefix: a publisher separate from the subscriber. */
async function peer(of: RaptorBus, options = {}) {
  const b = await RaptorBus.connect({redisUrl: redisUrl(), prefix: of.keys.prefix, ...options})
  buses.push(b)
  return b
}

afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
})

/** Receivers counted by publish.lua (PUBLISH's return value): how many live subscriptions Redis saw. */
async function liveDelivered(b: RaptorBus, channel: string): Promise<number> {
  return Number((await b.redis.hget(b.keys.stats(channel), 'liveDelivered')) ?? 0)
}

describe('live subscribe', () => {
  it('matches globs by segment: sys.alert.* takes sys.alert.critical, not sys.alertx.y; ** takes all', async () => {
    const channels = [{name: 'sys.alertx.y', retention: '1h'}]
    const sub = await bus({channels})
    const pub = await peer(sub, {channels})
    const alerts: string[] = []
    const all: string[] = []
    const both: string[] = []
    await sub.subscribe('sys.alert.*', (e) => void alerts.push(`${e.channel}/${e.type}`))
    await sub.subscribe('**', (e) => void all.push(`${e.channel}/${e.type}`))
    // Overlapping patterns, in one subscription and across them: still one delivery each.
    await sub.subscribe(['sys.alert.*', 'sys.**'], (e) => void both.push(`${e.channel}/${e.type}`))
    await pub.publish({channel: 'sys.alertx.y', type: 'a'})
    await pub.publish({channel: 'sys.state.update', type: 'b'})
    await pub.publish({channel: 'sys.alert.critical', type: 'c'})
    await pub.publish({channel: 'sys.state.update', type: 'end'})
    // Pub/sub keeps order on one connection: once the last event is in, the earlier ones were seen.
    await waitFor(() => all.includes('sys.state.update/end'), 5000, 'live events')
    expect(alerts).toEqual(['sys.alert.critical/c'])
    const expected = ['sys.alertx.y/a', 'sys.state.update/b', 'sys.alert.critical/c', 'sys.state.update/end']
    expect(all).toEqual(expected)
    expect(both).toEqual(expected)
  })

  it('rejects a pattern that is not a channel glob', async () => {
    const sub = await bus()
    await expect(sub.subscribe('Sys Alert', () => {})).rejects.toBeInstanceOf(InvalidInputError)
    await expect(sub.subscribe(['sys.alert.*', 'a:b'], () => {})).rejects.toBeInstanceOf(InvalidInputError)
  })

  it('shares a pattern between subscriptions and releases it with the last one', async () => {
    const sub = await bus()
    const pub = await peer(sub)
    const channel = 'sys.alert.warning'
    const first: string[] = []
    const second: string[] = []
    const s1 = await sub.subscribe('sys.alert.*', (e) => void first.push(e.type))
    const s2 = await sub.subscribe('sys.alert.*', (e) => void second.push(e.type))
    await pub.publish({channel, type: 'one'})
    await waitFor(() => first.length === 1 && second.length === 1, 5000, 'both subscriptions')
    // One Redis pattern subscription serves both.
    expect(await liveDelivered(pub, channel)).toBe(1)

    await s1.unsubscribe()
    await pub.publish({channel, type: 'two'})
    await waitFor(() => second.length === 2, 5000, 'the remaining subscription')
    expect(first).toEqual(['one'])
    expect(await liveDelivered(pub, channel)).toBe(2)

    await s2.unsubscribe()
    await pub.publish({channel, type: 'three'})
    // Redis no longer has a subscriber for it: PUBLISH reached nobody.
    expect(await liveDelivered(pub, channel)).toBe(2)
    expect(second).toEqual(['one', 'two'])
  })

  it('drops events for a slow async handler instead of buffering them, and counts them', async () => {
    const sub = await bus()
    const pub = await peer(sub)
    const gates: (() => void)[] = []
    let calls = 0
    const subscription = await sub.subscribe(
      'sys.state.update',
      () => {
        calls++
        return new Promise<void>((resolve) => gates.push(resolve))
      },
      {maxInFlight: 5},
    )
    await pub.publishMany(Array.from({length: 20}, (_, i) => ({channel: 'sys.state.update', type: `t${i}`})))
    await waitFor(() => calls + subscription.dropped === 20, 5000, 'every event handled or dropped')
    expect(calls).toBe(5)
    expect(subscription.dropped).toBe(15)
    // Once the handler catches up, delivery resumes.
    for (const open of gates) open()
    await new Promise((r) => setImmediate(r))
    await pub.publish({channel: 'sys.state.update', type: 'after'})
    await waitFor(() => calls === 6, 5000, 'delivery after catching up')
    expect(subscription.dropped).toBe(15)
  })

  it('backfills with since: no gap and no duplicate while a publisher runs through the subscribe', async () => {
    const sub = await bus()
    const pub = await peer(sub)
    const channels = ['sys.state.update', 'sys.alert.warning']
    const sent = new Map(channels.map((c) => [c, 0]))
    let publishing = true
    let subscribed = false
    let afterSubscribe = 0
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        const channel = channels[i % 2]
        const seq = sent.get(channel)!
        await pub.publish({channel, type: 'seq', payload: {seq}})
        sent.set(channel, seq + 1)
        if (subscribed && ++afterSubscribe >= 200) publishing = false
      }
    })()
    await waitFor(() => sent.get('sys.state.update')! >= 100, 5000, 'history before subscribing')

    const received = new Map<string, number[]>(channels.map((c) => [c, []]))
    const times: number[] = []
    await sub.subscribe(
      'sys.**',
      (e: RaptorEvent, meta) => {
        received.get(e.channel)!.push(e.data.seq as number)
        times.push(Number(meta.streamId.split('-')[0]))
      },
      {since: 60_000},
    )
    subscribed = true
    await publisher
    const total = () => [...received.values()].reduce((n, list) => n + list.length, 0)
    const published = [...sent.values()].reduce((n, v) => n + v, 0)
    await waitFor(() => total() >= published, 10_000, `all ${published} events`)
    // Across channels, history comes merged in time order, then live in publish order.
    expect(times).toEqual([...times].sort((a, b) => a - b))
    for (const channel of channels) {
      const n = sent.get(channel)!
      expect(received.get(channel), channel).toEqual(Array.from({length: n}, (_, i) => i))
    }
  })

  it("resumes from a cursor: after each channel's last seen id, and from a time for the others", async () => {
    const sub = await bus()
    const pub = await peer(sub)
    // Seen before the cursor: a1 on sys.alert.warning; sys.state.update never seen.
    await pub.publish({channel: 'sys.alert.warning', type: 'a0'})
    await pub.publish({channel: 'sys.alert.warning', type: 'a1'})
    const [seen] = (await pub.redis.xrevrange(
      pub.keys.stream('sys.alert.warning'),
      '+',
      '-',
      'COUNT',
      1,
    )) as [string, string[]][]
    const from = await pub.history.serverTime()
    await pub.publish({channel: 'sys.alert.warning', type: 'a2'})
    await pub.publish({channel: 'sys.state.update', type: 's1'})
    const got: string[] = []
    let publishing = true
    let n = 0
    const subscribing = sub.subscribe('sys.**', (e) => void got.push(e.type), {
      resume: {after: {'sys.alert.warning': seen[0]}, from},
    })
    // Publishes run through the subscribe: each must come exactly once, history or live.
    const publisher = (async () => {
      while (publishing && n < 300) await pub.publish({channel: 'sys.state.update', type: `live${n++}`})
    })()
    await subscribing
    await waitFor(() => n >= 20, 5000, 'publishes after the subscribe')
    publishing = false
    await publisher
    await waitFor(() => got.length >= n + 2, 5000, 'every event')
    // a2 and s1 are on different streams: when Redis gives them the same millisecond, their ids do not
    // say which came first (each stream counts its own sequence), so the history merge may give either.
    expect([...got.slice(0, 2)].sort()).toEqual(['a2', 's1'])
    expect(got.slice(2)).toEqual(Array.from({length: n}, (_, i) => `live${i}`))
  })

  it('a backfill aborted by its signal ends the subscription and holds nothing', async () => {
    const sub = await bus()
    const pub = await peer(sub)
    await pub.publishMany(Array.from({length: 5}, (_, i) => ({channel: 'sys.state.update', type: `h${i}`})))
    const controller = new AbortController()
    const got: string[] = []
    const subscribing = sub.subscribe(
      'sys.state.update',
      (e) => {
        got.push(e.type)
        if (got.length === 2) controller.abort(new Error('client went away'))
      },
      {since: 60_000, signal: controller.signal},
    )
    await expect(subscribing).rejects.toThrow('client went away')
    expect(got).toEqual(['h0', 'h1'])
    await pub.publish({channel: 'sys.state.update', type: 'after'})
    // Nobody is subscribed any more: Redis counted no live receiver.
    expect(await liveDelivered(pub, 'sys.state.update')).toBe(0)
  })

  it('offers the seed conveniences: guild, alerts, state updates, unsubscribeAll', async () => {
    const sub = await bus()
    const pub = await peer(sub)
    const got: string[] = []
    await sub.subscribeToGuild('research', (e) => void got.push(`guild:${e.type}`))
    await sub.subscribeToAlerts((e) => void got.push(`alert:${e.type}`))
    await sub.subscribeToStateUpdates((e) => void got.push(`state:${e.type}`))
    await pub.publish({channel: 'sys.guild.muse.broadcast', type: 'not-mine'})
    await pub.publish({channel: 'sys.guild.research.broadcast', type: 'r'})
    await pub.publish({channel: 'sys.alert.critical', type: 'c'})
    await pub.publish({channel: 'sys.alert.warning', type: 'w'})
    await pub.publish({channel: 'sys.state.update', type: 's'})
    await waitFor(() => got.length === 4, 5000, 'four events')
    expect(got).toEqual(['guild:r', 'alert:c', 'alert:w', 'state:s'])

    await sub.unsubscribeAll()
    await pub.publish({channel: 'sys.state.update', type: 'late'})
    expect(await liveDelivered(pub, 'sys.state.update')).toBe(1)
    expect(got).toHaveLength(4)
  })

  it('getBus connects once from REDIS_URL and RAPTOR_PREFIX, and afresh after close', async () => {
    const prefix = randomPrefix()
    const saved = {url: process.env.REDIS_URL, prefix: process.env.RAPTOR_PREFIX}
    process.env.REDIS_URL = redisUrl()
    process.env.RAPTOR_PREFIX = prefix
    try {
      const a = await getBus()
      expect(await getBus()).toBe(a)
      expect(a.keys.prefix).toBe(prefix)
      const id = await a.publish({channel: 'sys.state.update', type: 'x'})
      await a.close()
      const b = await getBus()
      buses.push(b)
      expect(b).not.toBe(a)
      expect((await b.getEvent(id)).type).toBe('x')
    } finally {
      process.env.REDIS_URL = saved.url
      process.env.RAPTOR_PREFIX = saved.prefix
      if (saved.url === undefined) delete process.env.REDIS_URL
      if (saved.prefix === undefined) delete process.env.RAPTOR_PREFIX
    }
  })
})
