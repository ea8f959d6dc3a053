import type {Cluster, Redis} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus, type LiveGap, type RaptorEvent} from '../../src/bus/index.js'
import {clusterUrl, randomPrefix, waitFor} from '../helpers/index.js'

const open: RaptorBus[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

/** A bus on the test cluster (3 masters), given the URL of one node as a user would. */
async function clusterBus(prefix = randomPrefix()): Promise<RaptorBus> {
  const bus = await RaptorBus.connect({
    redisUrl: clusterUrl(),
    prefix,
    channels: [{name: 'app.**', retention: '1h'}],
  })
  open.push(bus)
  return bus
}

const cluster = (bus: RaptorBus) => bus.redis as unknown as Cluster

/** The master that owns a key's slot. */
async function ownerOf(bus: RaptorBus, key: string): Promise<Redis> {
  const c = cluster(bus)
  const [nodeKey] = c.slots[(await c.call('CLUSTER', 'KEYSLOT', key)) as number]
  return c.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey)!
}

/** Channels named `<base>.<n>` until one lands on each master. */
async function channelsOnEveryMaster(bus: RaptorBus, base: string): Promise<string[]> {
  const byNode = new Map<Redis, string>()
  for (let n = 0; byNode.size < cluster(bus).nodes('master').length; n++) {
    const channel = `${base}.c${n}`
    const node = await ownerOf(bus, bus.keys.stream(channel))
    if (!byNode.has(node)) byNode.set(node, channel)
  }
  return [...byNode.values()]
}

describe('live fan-out on a Redis Cluster (sharded pub/sub)', () => {
  it('holds an exact channel with SSUBSCRIBE on its shard and counts liveDelivered exactly', async () => {
    const bus = await clusterBus()
    const other = await clusterBus(bus.keys.prefix)
    const got: RaptorEvent[] = []
    const alsoGot: RaptorEvent[] = []
    await bus.subscribe('sys.alert.warning', (e) => void got.push(e))
    await other.subscribe('sys.alert.warning', (e) => void alsoGot.push(e))
    await other.subscribe('sys.alert.critical', () => {})
    const name = bus.keys.live('sys.alert.warning')
    expect(name).toBe(`${bus.keys.prefix}:live@0:{sys.alert.warning}`)
    const owner = await ownerOf(bus, bus.keys.stream('sys.alert.warning'))
    expect(await owner.call('PUBSUB', 'SHARDNUMSUB', name)).toEqual([name, 2])

    const ids = [
      await bus.publish({channel: 'sys.alert.warning', type: 't', payload: {n: 1}}),
      await bus.publish({channel: 'sys.alert.warning', type: 't', payload: {n: 2}}),
    ]
    await waitFor(() => got.length === 2 && alsoGot.length === 2)
    expect(got.map((e) => e.id)).toEqual(ids)
    expect(alsoGot.map((e) => e.id)).toEqual(ids)
    // SPUBLISH counts the receivers on the shard: exactly the two subscriptions, per event.
    expect(await bus.redis.hget(bus.keys.stats('sys.alert.warning'), 'liveDelivered')).toBe('4')
  })

  it('publishes with SPUBLISH: a classic subscriber on another master hears nothing', async () => {
    const bus = await clusterBus()
    const channel = 'sys.alert.warning'
    const owner = await ownerOf(bus, bus.keys.stream(channel))
    const elsewhere = cluster(bus)
      .nodes('master')
      .find((n) => n !== owner)!
    const spy = elsewhere.duplicate()
    try {
      const heard: string[] = []
      spy.on('pmessage', (_p: string, name: string) => heard.push(name))
      await spy.psubscribe(`${bus.keys.prefix}:*`)
      await bus.publish({channel, type: 't', payload: {}})
      // A classic PUBLISH from the owner reaches every node over the cluster bus, in order: once the
      // marker arrives, an event sent the classic way would have arrived before it.
      const marker = `${bus.keys.prefix}:marker`
      await owner.publish(marker, 'm')
      await waitFor(() => heard.includes(marker))
      expect(heard).toEqual([marker])
    } finally {
      spy.disconnect()
    }
  })

  it('expands a glob to channels on every master and follows a channel created after it started', async () => {
    const bus = await clusterBus()
    const [a, b, c] = await channelsOnEveryMaster(bus, 'app.shard')
    const before = [a, b]
    for (const ch of before) await bus.publish({channel: ch, type: 't', payload: {}})
    const got: string[] = []
    const sub = await bus.subscribe('app.shard.*', (e) => void got.push(e.channel))
    for (const ch of before) await bus.publish({channel: ch, type: 'live', payload: {}})
    await waitFor(() => got.length === 2)
    expect(got.sort()).toEqual([...before].sort())

    // `c` did not exist when the subscription started: it is picked up within the follow delay.
    await waitFor(async () => {
      await bus.publish({channel: c, type: 'live', payload: {}})
      return got.includes(c)
    }, 10_000)
    expect(sub.patterns).toEqual(['app.shard.*'])
    // Only its own channels: a channel outside the glob is never subscribed.
    await bus.publish({channel: 'app.other.x', type: 't', payload: {}})
    const owner = await ownerOf(bus, bus.keys.stream(c))
    expect(await owner.call('PUBSUB', 'SHARDNUMSUB', bus.keys.live(c))).toEqual([bus.keys.live(c), 1])
    const x = await ownerOf(bus, bus.keys.stream('app.other.x'))
    expect(await x.call('PUBSUB', 'SHARDNUMSUB', bus.keys.live('app.other.x'))).toEqual([
      bus.keys.live('app.other.x'),
      0,
    ])

    // Unsubscribing releases every shard channel it held.
    await sub.unsubscribe()
    for (const ch of [a, b, c]) {
      const node = await ownerOf(bus, bus.keys.stream(ch))
      expect(await node.call('PUBSUB', 'SHARDNUMSUB', bus.keys.live(ch))).toEqual([bus.keys.live(ch), 0])
    }
  })

  it('stitches history and live (since) across masters with no gap and no duplicate', async () => {
    const bus = await clusterBus()
    const channels = await channelsOnEveryMaster(bus, 'app.stitch')
    const early: string[] = []
    for (const ch of channels) early.push(await bus.publish({channel: ch, type: 'early', payload: {}}))
    const got: string[] = []
    await bus.subscribe('app.stitch.*', (e) => void got.push(e.id), {since: 60_000})
    const late: string[] = []
    for (const ch of channels) late.push(await bus.publish({channel: ch, type: 'late', payload: {}}))
    await waitFor(() => got.length >= 6)
    expect(got.sort()).toEqual([...early, ...late].sort())
  })

  it('reports a gap after Redis drops the shard subscribers, and resubscribes', async () => {
    const bus = await clusterBus()
    const [ch] = await channelsOnEveryMaster(bus, 'app.gap')
    const gaps: LiveGap[] = []
    const got: string[] = []
    await bus.subscribe(ch, (e) => void got.push(e.id), {onGap: (g) => gaps.push(g)})
    // Only this bus's shard subscriber (tests in other files share the cluster).
    const owner = await ownerOf(bus, bus.keys.stream(ch))
    const name = `ioredis-cluster(ssubscriber):${bus.keys.subscriberClientName()}`
    const line = ((await owner.client('LIST')) as string)
      .split('\n')
      .find((l) => l.includes(` name=${name} `))
    expect(line).toBeDefined()
    await owner.client('KILL', 'ID', /^id=(\d+)/.exec(line!)![1])
    await waitFor(() => gaps.length >= 1, 10_000, 'the gap reported')
    // Delivered again once resubscribed: an event published after the gap arrives.
    const sent: string[] = []
    await waitFor(
      async () => {
        sent.push(await bus.publish({channel: ch, type: 't', payload: {}}))
        return got.some((id) => sent.includes(id))
      },
      10_000,
      'delivery after the resubscribe',
    )
  })
})
