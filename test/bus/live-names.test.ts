import {Redis} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {randomPrefix, redisUrl, testBus, waitFor} from '../helpers/index.js'

const buses: RaptorBus[] = []
async function bus(options = {}) {
  const b = await testBus(options)
  buses.push(b)
  return b
}

afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
})

/** The `sub=` and `psub=` counts of a bus's live subscriber connection (CLIENT LIST). */
async function held(b: RaptorBus): Promise<{sub: number; psub: number}> {
  const admin = new Redis(redisUrl())
  try {
    const list = (await admin.client('LIST')) as string
    const line = list.split('\n').find((l) => l.includes(` name=${b.keys.subscriberClientName()} `))
    if (!line) throw new Error('no live subscriber connection')
    const field = (name: string) => Number(new RegExp(` ${name}=(\\d+)`).exec(line)?.[1])
    return {sub: field('sub'), psub: field('psub')}
  } finally {
    admin.disconnect()
  }
}

describe('live subscriptions to exact channel names', () => {
  it('hold the name with SUBSCRIBE (globs with PSUBSCRIBE), shared, released with the last', async () => {
    const b = await bus()
    const got: string[] = []
    const s1 = await b.subscribe('sys.alert.warning', (e) => void got.push(`1:${e.type}`))
    const s2 = await b.subscribe(
      ['sys.alert.warning', 'sys.state.update'],
      (e) => void got.push(`2:${e.type}`),
    )
    expect(await held(b)).toEqual({sub: 2, psub: 0})
    const s3 = await b.subscribe('sys.alert.*', (e) => void got.push(`3:${e.type}`))
    expect(await held(b)).toEqual({sub: 2, psub: 1})

    await b.publish({channel: 'sys.alert.warning', type: 'w'})
    await b.publish({channel: 'sys.state.update', type: 's'})
    await waitFor(() => got.length === 4, 5000, 'deliveries')
    // Held by name and by pattern, the message comes twice on the connection: each subscription gets it once.
    expect(got.sort()).toEqual(['1:w', '2:s', '2:w', '3:w'])

    await s1.unsubscribe()
    expect(await held(b)).toEqual({sub: 2, psub: 1})
    await s2.unsubscribe()
    expect(await held(b)).toEqual({sub: 0, psub: 1})
    await s3.unsubscribe()
    expect(await held(b)).toEqual({sub: 0, psub: 0})
  })

  it('see the subscriptions made after a channel was first routed, and not those removed', async () => {
    const b = await bus()
    const first: string[] = []
    const later: string[] = []
    const s1 = await b.subscribe('sys.state.update', (e) => void first.push(e.type))
    await b.publish({channel: 'sys.state.update', type: 'one'})
    await waitFor(() => first.length === 1, 5000, 'first')
    await b.subscribe('sys.**', (e) => void later.push(e.type))
    await s1.unsubscribe()
    await b.publish({channel: 'sys.state.update', type: 'two'})
    await waitFor(() => later.length === 1, 5000, 'later')
    expect(first).toEqual(['one'])
    expect(later).toEqual(['two'])
  })

  it('keep prefixes and databases apart', async () => {
    const prefix = randomPrefix()
    const a = await bus({prefix})
    const nested = await bus({prefix: `${prefix}:live`})
    const db5 = await bus({redisUrl: redisUrl().replace(/\/0$/, '/5'), prefix})
    const got: string[] = []
    await a.subscribe('sys.state.update', (e) => void got.push(`a:${e.type}`))
    await nested.subscribe('sys.state.update', (e) => void got.push(`nested:${e.type}`))
    await db5.subscribe('sys.state.update', (e) => void got.push(`db5:${e.type}`))
    await a.publish({channel: 'sys.state.update', type: 'x'})
    await nested.publish({channel: 'sys.state.update', type: 'y'})
    await db5.publish({channel: 'sys.state.update', type: 'z'})
    await waitFor(() => got.length >= 3, 5000, 'deliveries')
    expect(got.sort()).toEqual(['a:x', 'db5:z', 'nested:y'])
  })
})
