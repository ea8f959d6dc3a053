import {Redis, type RedisOptions} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {InvalidInputError, RaptorBus, type RaptorEvent} from '../../src/bus/index.js'
import {randomPrefix, redisUrl, waitFor} from '../helpers/index.js'

const clients: Redis[] = []
const buses: RaptorBus[] = []
afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
  for (const c of clients.splice(0)) c.disconnect()
})

function client(options: RedisOptions = {}): Redis {
  const c = new Redis(redisUrl(), options)
  clients.push(c)
  return c
}

async function connect(redis: Redis): Promise<RaptorBus> {
  const bus = await RaptorBus.connect({redis, prefix: randomPrefix()})
  buses.push(bus)
  return bus
}

describe('RaptorBus.connect({redis}): an ioredis client the application already has', () => {
  it('publishes, subscribes and consumes through it, and leaves it open on close', async () => {
    const redis = client()
    const bus = await connect(redis)
    expect(bus.redis).toBe(redis)
    const live: RaptorEvent[] = []
    const handled: RaptorEvent[] = []
    await bus.subscribe('sys.**', (e) => void live.push(e))
    await bus.consume({name: 'h', channels: ['sys.state.update'], handle: (e) => void handled.push(e)})
    const id = await bus.publish({channel: 'sys.state.update', type: 't', payload: {n: 1}})
    await waitFor(() => live.length === 1 && handled.length === 1, 5000, 'delivery')
    expect(await redis.xlen(bus.keys.stream('sys.state.update'))).toBe(1)
    expect([live[0].id, handled[0].id]).toEqual([id, id])
    // The subscriber and the blocking reader are duplicates of the client, named for the bus.
    const names = (await redis.client('LIST')) as string
    expect(names).toContain(` name=${bus.keys.subscriberClientName()} `)
    await bus.close()
    expect(await redis.ping()).toBe('PONG')
    await waitFor(
      async () => !((await redis.client('LIST')) as string).includes(bus.keys.prefix),
      5000,
      'the bus connections closed',
    )
  })

  it('connects a lazyConnect client', async () => {
    const redis = client({lazyConnect: true})
    expect(redis.status).toBe('wait')
    const bus = await connect(redis)
    expect(bus.redis).toBe(redis)
    expect(redis.status).toBe('ready')
    await bus.publish({channel: 'sys.state.update', type: 't'})
    expect(await redis.xlen(bus.keys.stream('sys.state.update'))).toBe(1)
  })

  it('refuses a client with a keyPrefix, and a client together with redisUrl', async () => {
    await expect(connect(client({keyPrefix: 'app:'}))).rejects.toThrow(
      /has keyPrefix 'app:': remove it and pass the bus option prefix/,
    )
    await expect(RaptorBus.connect({redis: client(), redisUrl: redisUrl()})).rejects.toThrow(
      InvalidInputError,
    )
  })
})
