import {Redis} from 'ioredis'
import {describe, expect, it} from 'vitest'

import {PartialError, RaptorBus} from '../../src/bus/index.js'
import {randomPrefix, waitFor} from '../helpers/index.js'
import {RedisServer} from '../helpers/redis-server.js'

describe('a bulk publish when Redis dies half-way', () => {
  it('fails with a PartialError that names the events already written', async () => {
    const server = await RedisServer.start()
    const watcher = new Redis(server.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    watcher.on('error', () => {})
    const bus = await RaptorBus.connect({redisUrl: server.url, prefix: randomPrefix(), reconnect: false})
    try {
      await watcher.connect()
      const total = 60_000
      const inputs = Array.from({length: total}, (_, n) => ({
        channel: 'sys.state.update',
        type: 'bulk',
        payload: {n},
      }))
      const publishing = bus.publishMany(inputs).then(
        () => undefined,
        (error: unknown) => error,
      )
      // Kill Redis once some chunks have landed and before all of them have.
      await waitFor(
        async () => (await watcher.xlen(bus.keys.stream('sys.state.update'))) > 0,
        20_000,
        'first chunk',
      )
      await server.stop(true)
      const error = await publishing
      expect(error).toBeInstanceOf(PartialError)
      const partial = error as PartialError
      expect(partial.ids.length).toBeGreaterThan(0)
      expect(partial.ids.length).toBeLessThan(total)
      expect(partial.message).toMatch(new RegExp(`published ${partial.ids.length} of ${total} events`))
    } finally {
      watcher.disconnect()
      await bus.close()
      await server.stop()
    }
  })
})
