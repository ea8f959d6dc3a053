import {expect, it} from 'vitest'

import type {RaptorEvent} from '../../src/bus/index.js'
import {describeTargets, testBuses, waitFor} from '../helpers/index.js'

const CHANNEL = 'sys.guild.research.broadcast'
const newBus = testBuses()

describeTargets('dead letter → requeue → the failed handler only', () => {
  it('redelivers a requeued event to the handler that failed it, keeping its id; the handler that succeeded never sees it again', async () => {
    const bus = await newBus()
    let broken = true
    const audited: string[] = []
    const indexed: {id: string; attempt: number}[] = []
    await bus.consume({
      name: 'auditor',
      channels: [CHANNEL],
      handle: (e: RaptorEvent) => void audited.push(e.id),
    })
    await bus.consume({
      name: 'indexer',
      channels: [CHANNEL],
      maxRetries: 1,
      backoff: {initialMs: 5, maxMs: 10, factor: 2, jitter: false},
      handle: (e: RaptorEvent, ctx) => {
        if (broken) throw new Error('index unavailable')
        indexed.push({id: e.id, attempt: ctx.attempt})
      },
    })
    const ids = await bus.publishMany(
      Array.from({length: 5}, (_, n) => ({channel: CHANNEL, type: 'research_complete', payload: {n}})),
    )
    await waitFor(
      async () => (await bus.dlq.list({reasons: ['max_retries_exceeded']})).length === 5,
      10_000,
      'five dead letters',
    )
    await waitFor(() => audited.length === 5, 5000)
    const listed = await bus.dlq.list({handlers: ['indexer']})
    expect(listed.map((e) => (e.event as RaptorEvent).id).sort()).toEqual([...ids].sort())
    expect(listed[0]).toMatchObject({
      reason: 'max_retries_exceeded',
      handler: 'indexer',
      originalChannel: CHANNEL,
      attempts: 2,
    })

    broken = false
    const result = await bus.dlq.requeue({reasons: ['max_retries_exceeded']})
    expect(result.requeued).toBe(5)
    await waitFor(() => indexed.length === 5, 10_000, 'redelivery to the indexer')
    expect(indexed.map((i) => i.id).sort()).toEqual([...ids].sort())
    // The auditor succeeded the first time and never sees the events again.
    await new Promise((r) => setTimeout(r, 300))
    expect(audited.sort()).toEqual([...ids].sort())
    expect(await bus.dlq.list({})).toHaveLength(0)
    // The requeue stream is emptied as the handler acknowledges.
    await waitFor(async () => (await bus.redis.xlen(bus.keys.requeue(CHANNEL, 'indexer'))) === 0, 5000)
  })

  it('carries the requeue count into a second dead letter', async () => {
    const bus = await newBus()
    await bus.consume({
      name: 'always',
      channels: [CHANNEL],
      maxRetries: 0,
      handle: () => {
        throw new Error('still broken')
      },
    })
    await bus.publish({channel: CHANNEL, type: 'x'})
    await waitFor(async () => (await bus.dlq.list({})).length === 1, 5000)
    await bus.dlq.requeue({})
    const again = await waitFor(async () => {
      const entries = await bus.dlq.list({})
      return entries.length === 1 && entries[0].requeues === 1 && entries
    }, 5000)
    expect(again[0]).toMatchObject({handler: 'always', error: 'still broken'})
  })

  it('moves only the entries present when it started, each once, while the handler keeps re-dead-lettering them', async () => {
    const bus = await newBus()
    const failures: string[] = []
    await bus.consume({
      name: 'broken',
      channels: [CHANNEL],
      maxRetries: 0,
      concurrency: 16,
      handle: (e: RaptorEvent) => {
        failures.push(e.id)
        throw new Error('still broken')
      },
    })
    const total = 1200
    await bus.publishMany(
      Array.from({length: total}, (_, n) => ({channel: CHANNEL, type: 'research_complete', payload: {n}})),
    )
    const dlq = bus.keys.dlq(CHANNEL, 'max_retries_exceeded')
    await waitFor(async () => (await bus.redis.xlen(dlq)) === total, 20_000, 'every event dead-lettered')
    // Small batches: the requeue runs long enough for the handler to fail the first ones again meanwhile.
    const result = await bus.dlq.requeue({reasons: ['max_retries_exceeded'], batchSize: 10})
    expect(result.requeued).toBe(total)
    await waitFor(() => failures.length === 2 * total, 20_000, 'every requeued event failed once more')
    await waitFor(async () => (await bus.redis.xlen(dlq)) === total, 10_000, 'all back in the DLQ')
    const entries = await bus.dlq.list({})
    expect(entries).toHaveLength(total)
    expect(entries.every((e) => e.requeues === 1)).toBe(true)
    expect(new Set(failures).size).toBe(total)
  })
})
