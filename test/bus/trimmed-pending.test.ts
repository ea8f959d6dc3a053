import {describe, expect, it} from 'vitest'

import type {ConsumeOutcome, RaptorBus} from '../../src/bus/index.js'
import {toPrometheus} from '../../src/bus/prometheus.js'
import {redisUrl, testBuses, waitFor} from '../helpers/index.js'
import {childProcesses, fixture} from '../helpers/child.js'
import {cli, streamEntries} from '../helpers/ops.js'

const CHANNEL = 'sys.state.update'
const bus = testBuses()
const spawnChild = childProcesses()
const FIXTURE = fixture('poison-consumer.mjs')

/** Trims a channel's history up to and including one entry, as retention does. */
async function trimThrough(b: RaptorBus, entryId: string): Promise<void> {
  const [ms, seq] = entryId.split('-')
  await b.redis.xtrim(b.keys.stream(CHANNEL), 'MINID', `${ms}-${Number(seq) + 1}`)
  expect(await b.redis.xrange(b.keys.stream(CHANNEL), entryId, entryId)).toEqual([])
}

async function entryIdOf(b: RaptorBus, eventId: string): Promise<string> {
  const entries = await streamEntries(b, b.keys.stream(CHANNEL))
  return entries.find((e) => JSON.parse(e.e).id === eventId)!.id
}

describe('an event whose history is trimmed while it is pending', () => {
  it('still ends in the DLQ with its reason and its envelope when it keeps failing', async () => {
    const b = await bus()
    const outcomes: ConsumeOutcome[] = []
    const attempts: number[] = []
    await b.consume(
      {
        name: 'h1',
        channels: [CHANNEL],
        maxRetries: 2,
        backoff: {initialMs: 700, maxMs: 700, factor: 1, jitter: false},
        handle: (_e, ctx) => {
          attempts.push(ctx.attempt)
          throw new Error(`still failing (attempt ${ctx.attempt})`)
        },
      },
      {reclaimAfterMs: 200, onOutcome: (o) => outcomes.push(o)},
    )
    const id = await b.publish({channel: CHANNEL, type: 'doomed', payload: {x: 1}})
    const entryId = await entryIdOf(b, id)
    await waitFor(() => outcomes.some((o) => o.outcome === 'retrying'), 5000, 'first failure')
    await trimThrough(b, entryId)
    const dlq = b.keys.dlq(CHANNEL, 'max_retries_exceeded')
    const [entry] = await waitFor(async () => {
      const e = await streamEntries(b, dlq)
      return e.length > 0 && e
    }, 10_000)
    expect(JSON.parse(entry.e)).toMatchObject({id, type: 'doomed', data: {x: 1}})
    expect(entry).toMatchObject({reason: 'max_retries_exceeded', handler: 'h1', attempts: '3', sid: entryId})
    expect(entry.error).toContain('still failing (attempt 3)')
    expect(attempts).toEqual([1, 2, 3])
    expect(outcomes.map((o) => o.outcome)).toEqual(['retrying', 'retrying', 'dead-lettered'])
    expect(outcomes[2].note).toContain('history trimmed')
    expect(Number(((await b.redis.xpending(b.keys.stream(CHANNEL), 'h1')) as [number])[0])).toBe(0)
    // The counter, in the library's metrics, in Prometheus and through the CLI.
    const metrics = await b.metrics()
    expect(metrics.global.counters.trimmedWhilePending).toBe(1)
    const ch = metrics.channels.find((c) => c.channel === CHANNEL)!
    expect(ch.handlers.find((h) => h.handler === 'h1')!.counters.trimmedWhilePending).toBe(1)
    expect(await toPrometheus(metrics)).toMatch(
      /raptor_trimmed_while_pending_total\{channel="sys.state.update"\} 1/,
    )
    const r = await cli(b, ['metrics', '--json'])
    expect(JSON.parse(r.stdout).global.counters.trimmedWhilePending).toBe(1)
  })

  it('is handled and acknowledged when its slow handler succeeds', async () => {
    const b = await bus()
    const outcomes: ConsumeOutcome[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let running = false
    await b.consume(
      {
        name: 'h1',
        channels: [CHANNEL],
        timeoutMs: 20_000,
        handle: async () => {
          running = true
          await gate
        },
      },
      {reclaimAfterMs: 200, onOutcome: (o) => outcomes.push(o)},
    )
    const id = await b.publish({channel: CHANNEL, type: 'slow'})
    const entryId = await entryIdOf(b, id)
    await waitFor(() => running, 5000, 'handler running')
    await trimThrough(b, entryId)
    // Several keep-alive and reclaim periods pass while the handler still runs: the entry stays pending.
    await waitFor(
      async () =>
        ((await b.redis.xpending(b.keys.stream(CHANNEL), 'h1', 'IDLE', 1000, '-', '+', 10)) as unknown[])
          .length === 1,
      5000,
      'the entry pending, idle past five reclaim periods',
    )
    release()
    await waitFor(() => outcomes.length > 0, 5000, 'outcome')
    expect(outcomes.map((o) => o.outcome)).toEqual(['acked'])
    expect((await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'h1'))).trimmedWhilePending).toBe('1')
    expect(Number(((await b.redis.xpending(b.keys.stream(CHANNEL), 'h1')) as [number])[0])).toBe(0)
  })

  it('is dead-lettered from the held copy when its consumer dies holding it', async () => {
    const b = await bus()
    const child = spawnChild([
      FIXTURE,
      JSON.stringify({redisUrl: redisUrl(), prefix: b.keys.prefix, name: 'h1', reclaimAfterMs: 400}),
    ])
    await waitFor(() => child.lines.some((l) => 'ready' in l), 10_000, 'child ready')
    const id = await b.publish({channel: CHANNEL, type: 'stuck', payload: {hang: true}})
    await waitFor(() => child.lines.some((l) => 'started' in l), 10_000, 'handler running')
    const entryId = await entryIdOf(b, id)
    await trimThrough(b, entryId)
    // The owner notices at its next keep-alive and stores its copy in Redis; then it dies.
    const held = b.keys.heldCopies(CHANNEL, 'h1', false)
    await waitFor(async () => (await b.redis.hexists(held, `${entryId}:e`)) === 1, 5000, 'copy held')
    child.child.kill('SIGKILL')
    await child.exit
    const outcomes: ConsumeOutcome[] = []
    await b.consume(
      {name: 'h1', channels: [CHANNEL], handle: () => {}},
      {reclaimAfterMs: 400, onOutcome: (o) => outcomes.push(o)},
    )
    const dlq = b.keys.dlq(CHANNEL, 'max_retries_exceeded')
    const [entry] = await waitFor(async () => {
      const e = await streamEntries(b, dlq)
      return e.length > 0 && e
    }, 10_000)
    expect(JSON.parse(entry.e)).toMatchObject({id, type: 'stuck'})
    expect(entry).toMatchObject({reason: 'max_retries_exceeded', handler: 'h1', sid: entryId, attempts: '1'})
    expect(entry.error).toContain('stopped while holding it and its history was trimmed by retention')
    expect(outcomes.map((o) => o.outcome)).toEqual(['dead-lettered'])
    expect(outcomes[0].note).toContain('history trimmed')
    expect(Number(((await b.redis.xpending(b.keys.stream(CHANNEL), 'h1')) as [number])[0])).toBe(0)
    expect(await b.redis.exists(held)).toBe(0)
    const stats = await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'h1'))
    expect(stats).toMatchObject({trimmedWhilePending: '1', deadLettered: '1'})
    // A requeue runs it again, from the copy.
    expect((await b.dlq.requeue({})).requeued).toBe(1)
  })
})
