import {expect, it} from 'vitest'

import {InvalidInputError, RoutingError, formatDlqId, parseDlqId} from '../../src/bus/index.js'
import {describeTargets, testBuses} from '../helpers/index.js'
import {addDlq} from '../helpers/ops.js'

const bus = testBuses()

describeTargets('bus.dlq', () => {
  it('formats and parses entry ids, rejecting malformed ones', () => {
    const id = formatDlqId('sys.alert.warning', 'processing_timeout', '17-3')
    expect(id).toBe('sys.alert.warning/processing_timeout/17-3')
    expect(parseDlqId(id)).toEqual({
      channel: 'sys.alert.warning',
      reason: 'processing_timeout',
      streamId: '17-3',
    })
    expect(() => parseDlqId('sys.alert.warning/bogus/17-3')).toThrow(InvalidInputError)
    expect(() => parseDlqId('nope')).toThrow(/dlq list/)
  })

  it('lists the oldest entries across streams first, and purges by filter in batches', async () => {
    const b = await bus()
    const now = await b.history.serverTime()
    await b.redis.sadd(b.keys.channelRegistry(), 'sys.alert.warning', 'sys.state.update')
    await addDlq(b, [{channel: 'sys.state.update', handler: 'h', failedAt: now - 3000}])
    await addDlq(
      b,
      Array.from({length: 1200}, () => ({channel: 'sys.alert.warning', handler: 'h', failedAt: now - 1000})),
    )
    const [oldest] = await b.dlq.list({limit: 1})
    expect(oldest.originalChannel).toBe('sys.state.update')
    expect(await b.dlq.list({limit: 3})).toHaveLength(3)
    expect((await b.dlq.depths()).map((d) => d.depth).sort()).toEqual([1, 1200])
    expect(await b.dlq.purge({channels: ['sys.alert.*'], dryRun: true})).toEqual({purged: 1200, dryRun: true})
    expect(await b.dlq.purge({channels: ['sys.alert.*']})).toEqual({purged: 1200, dryRun: false})
    expect(await b.dlq.list()).toHaveLength(1)
  })

  it('requeues with a bounded batch size and refuses an unknown target channel', async () => {
    const b = await bus()
    await b.redis.sadd(b.keys.channelRegistry(), 'sys.alert.warning')
    await addDlq(
      b,
      Array.from({length: 7}, () => ({channel: 'sys.alert.warning', handler: 'h'})),
    )
    await expect(b.dlq.requeue({batchSize: 0})).rejects.toBeInstanceOf(InvalidInputError)
    await expect(b.dlq.requeue({toChannel: 'sys.alert.nope'})).rejects.toBeInstanceOf(RoutingError)
    const progress: number[] = []
    const r = await b.dlq.requeue({batchSize: 3, onProgress: (n) => progress.push(n)})
    expect(r).toMatchObject({
      requeued: 7,
      skipped: [],
      targets: [{channel: 'sys.alert.warning', handler: 'h', count: 7}],
    })
    expect(progress).toEqual([3, 6, 7])
    expect(await b.redis.xlen(b.keys.requeue('sys.alert.warning', 'h'))).toBe(7)
    // Running it again finds nothing left to move.
    expect((await b.dlq.requeue()).requeued).toBe(0)
  })
})
