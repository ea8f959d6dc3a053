import {spawn, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'

import {afterEach, expect, it} from 'vitest'
import {z} from 'zod'

import {
  RaptorBus,
  type ConsumeOutcome,
  type Consumer,
  type HandlerDefinition,
  type RaptorEvent,
} from '../../src/bus/index.js'
import {ConsumeScripts, type Source} from '../../src/bus/consumer-scripts.js'
import {describeTargets, randomPrefix, redisUrl, testBus, waitFor} from '../helpers/index.js'
import {RedisServer} from '../helpers/redis-server.js'

const CHANNEL = 'sys.state.update'
const buses: RaptorBus[] = []
const children: ChildProcess[] = []

async function bus(options = {}) {
  const b = await testBus(options)
  buses.push(b)
  return b
}

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  while (buses.length > 0) await buses.pop()!.close()
})

function handler(
  overrides: Partial<HandlerDefinition> & Pick<HandlerDefinition, 'handle'>,
): HandlerDefinition {
  return {
    name: 'h1',
    channels: [CHANNEL],
    backoff: {initialMs: 10, maxMs: 50, factor: 2, jitter: false},
    ...overrides,
  }
}

async function dlqEntries(
  b: RaptorBus,
  channel: string,
  reason: Parameters<RaptorBus['keys']['dlq']>[1],
): Promise<Record<string, string>[]> {
  const raw = (await b.redis.xrange(b.keys.dlq(channel, reason), '-', '+')) as [string, string[]][]
  return raw.map(([id, flat]) => {
    const f: Record<string, string> = {}
    for (let i = 0; i < flat.length; i += 2) f[flat[i]] = flat[i + 1]
    return {id, ...f}
  })
}

/** A fenced ack through the script façade: the ids not acknowledged. */
async function ack(scripts: ConsumeScripts, source: Source, ids: string[]): Promise<string[]> {
  const pipeline = scripts.pipeline()
  scripts.ack(pipeline, source, ids, true)
  const [[error, lost]] = (await pipeline.exec()) as [Error | null, string[]][]
  if (error) throw error
  return lost
}

/** A keep-alive through the script façade: {lost, trimmed with no copy}. */
async function touch(scripts: ConsumeScripts, source: Source, ids: string[]): Promise<unknown> {
  const pipeline = scripts.pipeline()
  scripts.touch(pipeline, source, ids)
  const [[error, reply]] = (await pipeline.exec()) as [Error | null, unknown][]
  if (error) throw error
  return reply
}

async function pending(b: RaptorBus, group: string, channel = CHANNEL): Promise<number> {
  const summary = (await b.redis.xpending(b.keys.stream(channel), group)) as [number, ...unknown[]]
  return Number(summary[0])
}

describeTargets('bus.consume', (t) => {
  it('processes every event exactly once and acks it', async () => {
    const b = await bus()
    const seen: string[] = []
    await b.consume(handler({concurrency: 5, handle: (e) => void seen.push(e.id)}))
    const ids = await b.publishMany(
      Array.from({length: 200}, (_, i) => ({channel: CHANNEL, type: 'tick', payload: {i}})),
    )
    await waitFor(() => seen.length >= 200, 10_000, '200 events')
    expect(seen.sort()).toEqual([...ids].sort())
    await waitFor(async () => (await pending(b, 'h1')) === 0, 5000, 'acks')
    const stats = await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'h1'))
    expect(stats).toMatchObject({delivered: '200', acked: '200'})
  })

  it('gives every handler every event, and shares one handler between consumers without duplicates', async () => {
    const b = await bus()
    const b2 = await RaptorBus.connect({redisUrl: redisUrl(), prefix: b.keys.prefix})
    buses.push(b2)
    const audit: string[] = []
    const shared: Record<string, string[]> = {one: [], two: []}
    await b.consume(handler({name: 'audit', handle: (e) => void audit.push(e.id)}))
    await b.consume(handler({name: 'work', concurrency: 4, handle: (e) => void shared.one.push(e.id)}))
    await b2.consume(handler({name: 'work', concurrency: 4, handle: (e) => void shared.two.push(e.id)}))
    const ids = await b.publishMany(
      Array.from({length: 300}, (_, i) => ({channel: CHANNEL, type: 'job', payload: {i}})),
    )
    await waitFor(
      () => audit.length >= 300 && shared.one.length + shared.two.length >= 300,
      10_000,
      'all events',
    )
    expect(audit.sort()).toEqual([...ids].sort())
    const work = [...shared.one, ...shared.two]
    expect(new Set(work).size).toBe(300)
    expect(work.length).toBe(300)
    expect(shared.one.length).toBeGreaterThan(0)
    expect(shared.two.length).toBeGreaterThan(0)
  })

  it('skips events of other types without running the handler', async () => {
    const b = await bus()
    const seen: string[] = []
    await b.consume(handler({types: ['wanted'], handle: (e) => void seen.push(e.type)}))
    await b.publish({channel: CHANNEL, type: 'unwanted'})
    await b.publish({channel: CHANNEL, type: 'wanted'})
    await waitFor(() => seen.length === 1, 5000)
    await waitFor(async () => (await pending(b, 'h1')) === 0, 5000)
    expect(seen).toEqual(['wanted'])
  })

  it('retries a throwing handler with exponential backoff and then succeeds', async () => {
    const b = await bus()
    const attempts: {attempt: number; at: number}[] = []
    const outcomes: ConsumeOutcome[] = []
    await b.consume(
      handler({
        maxRetries: 3,
        backoff: {initialMs: 100, maxMs: 1000, factor: 2, jitter: false},
        handle: (_e, ctx) => {
          attempts.push({attempt: ctx.attempt, at: Date.now()})
          if (ctx.attempt < 3) throw new Error(`boom ${ctx.attempt}`)
        },
      }),
      {onOutcome: (o) => outcomes.push(o)},
    )
    await b.publish({channel: CHANNEL, type: 'flaky'})
    await waitFor(() => outcomes.some((o) => o.outcome === 'acked'), 5000)
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3])
    expect(attempts[1].at - attempts[0].at).toBeGreaterThanOrEqual(95)
    expect(attempts[2].at - attempts[1].at).toBeGreaterThanOrEqual(195)
    expect(outcomes.map((o) => o.outcome)).toEqual(['retrying', 'retrying', 'acked'])
    const stats = await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'h1'))
    expect(stats).toMatchObject({delivered: '3', failed: '2', retried: '2', acked: '1'})
  })

  it('dead-letters after maxRetries with the error, attempts and handler', async () => {
    const b = await bus()
    const attempts: number[] = []
    await b.consume(
      handler({
        maxRetries: 2,
        handle: (_e, ctx) => {
          attempts.push(ctx.attempt)
          throw new Error('always fails')
        },
      }),
    )
    const id = await b.publish({channel: CHANNEL, type: 'doomed', payload: {x: 1}})
    const [entry] = await waitFor(async () => {
      const entries = await dlqEntries(b, CHANNEL, 'max_retries_exceeded')
      return entries.length > 0 && entries
    })
    expect(attempts).toEqual([1, 2, 3])
    expect(entry).toMatchObject({
      reason: 'max_retries_exceeded',
      channel: CHANNEL,
      handler: 'h1',
      error: 'always fails',
      attempts: '3',
    })
    expect(JSON.parse(entry.e as string).id).toBe(id)
    expect(await pending(b, 'h1')).toBe(0)
    const stats = await b.redis.hgetall(b.keys.stats(CHANNEL))
    expect(stats).toMatchObject({deadLettered: '1', failed: '3', retried: '2'})
  })

  it('aborts a handler past timeoutMs, frees the slot, dead-letters it, and a late completion does not ack', async () => {
    const b = await bus()
    let aborted = false
    let lateFinished = false
    const seen: string[] = []
    await b.consume(
      handler({
        timeoutMs: 200,
        concurrency: 1,
        handle: async (e, ctx) => {
          if (e.type === 'slow') {
            ctx.signal.addEventListener('abort', () => (aborted = true))
            await new Promise((r) => setTimeout(r, 600))
            lateFinished = true
            return
          }
          seen.push(e.type)
        },
      }),
    )
    await b.publish({channel: CHANNEL, type: 'slow'})
    await b.publish({channel: CHANNEL, type: 'fast'})
    // The fast event runs while the slow handler is still sleeping: its slot was freed at the timeout.
    await waitFor(() => seen.includes('fast'), 3000, 'fast event')
    expect(lateFinished).toBe(false)
    expect(aborted).toBe(true)
    const entries = await dlqEntries(b, CHANNEL, 'processing_timeout')
    expect(entries).toHaveLength(1)
    expect(entries[0].error).toContain('timeoutMs 200')
    await waitFor(() => lateFinished, 3000)
    expect(await pending(b, 'h1')).toBe(0)
    expect((await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'h1'))).acked).toBe('1')
  })

  it('sends entries that are not envelopes, and payloads failing their schema, to schema_violation and keeps going', async () => {
    const b = await bus({schemas: {order: z.object({orderId: z.string()})}})
    const seen: string[] = []
    await b.consume(handler({handle: (e) => void seen.push(e.type)}))
    await b.redis.xadd(b.keys.stream(CHANNEL), '*', 'foreign', 'client')
    await b.redis.xadd(b.keys.stream(CHANNEL), '*', 'e', '{not json')
    // A valid envelope whose payload breaks its type's schema, written by a client that skipped validation.
    const envelope = {
      specversion: '1.0',
      id: 'evt-0b5e7c9a-1d2f-4a3b-8c4d-5e6f7a8b9c0d',
      type: 'order',
      source: 'foreign',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: {orderId: 42},
      channel: CHANNEL,
      priority: 'normal',
    }
    await b.redis.xadd(b.keys.stream(CHANNEL), '*', 'e', JSON.stringify(envelope))
    await b.publish({channel: CHANNEL, type: 'after'})
    await waitFor(() => seen.includes('after'), 5000)
    const entries = await waitFor(async () => {
      const e = await dlqEntries(b, CHANNEL, 'schema_violation')
      return e.length === 3 && e
    })
    expect(entries[0].error).toContain('not a valid envelope')
    expect(JSON.parse(entries[0].e as string)).toEqual({foreign: 'client'})
    expect(entries[2].error).toContain('orderId')
    expect(seen).toEqual(['after'])
  })

  it('fences: a stale consumer cannot ack, retry, start, keep alive or dead-letter an event another consumer now owns', async () => {
    const b = await bus()
    const source = {channel: CHANNEL, stream: b.keys.stream(CHANNEL), requeue: false}
    await b.redis.xgroup('CREATE', source.stream, 'g', '0', 'MKSTREAM')
    const id = await b.publish({channel: CHANNEL, type: 'x'})
    const [[, [[entryId]]]] = (await b.redis.xreadgroup(
      'GROUP',
      'g',
      'stale',
      'STREAMS',
      source.stream,
      '>',
    )) as [string, [string, string[]][]][]
    await b.redis.xclaim(source.stream, 'g', 'fresh', 0, entryId)
    const stale = new ConsumeScripts(b.redis, b.keys, 'g', 'stale')
    const fresh = new ConsumeScripts(b.redis, b.keys, 'g', 'fresh')
    const dead = {
      json: '{}',
      reason: 'max_retries_exceeded',
      error: 'e',
      attempts: 1,
      requeues: '0',
      ran: true,
    } as const
    expect(await ack(stale, source, [entryId])).toEqual([entryId])
    expect(await stale.deadLetter(source, entryId, dead)).toBe(false)
    expect(await stale.retry(source, entryId)).toBe('lost')
    expect(await stale.begin(source, entryId)).toBeUndefined()
    expect(await stale.hold(source, entryId, '{}', '0')).toBe(-1)
    expect(await touch(stale, source, [entryId])).toEqual([[entryId], []])
    expect(await b.redis.xlen(b.keys.dlq(CHANNEL, 'max_retries_exceeded'))).toBe(0)
    expect(await pending(b, 'g')).toBe(1)
    expect(await ack(fresh, source, [entryId])).toEqual([])
    expect(await pending(b, 'g')).toBe(0)
    expect(id).toMatch(/^evt-/)
  })

  it('fences acks correctly however many entries a consumer holds', async () => {
    const b = await bus()
    const source = {channel: CHANNEL, stream: b.keys.stream(CHANNEL), requeue: false}
    await b.redis.xgroup('CREATE', source.stream, 'g', '0', 'MKSTREAM')
    await b.publishMany(Array.from({length: 30}, (_, i) => ({channel: CHANNEL, type: 'x', payload: {i}})))
    const [[, entries]] = (await b.redis.xreadgroup('GROUP', 'g', 'c', 'STREAMS', source.stream, '>')) as [
      string,
      [string, string[]][],
    ][]
    const ids = entries.map(([id]) => id)
    const c = new ConsumeScripts(b.redis, b.keys, 'g', 'c')
    // The first and the last of 30 entries held by this consumer: both are its own.
    expect(await ack(c, source, [ids[0], ids[29]])).toEqual([])
    // Another consumer takes one in the middle: only that one is refused.
    await b.redis.xclaim(source.stream, 'g', 'other', 0, ids[10])
    expect(await ack(c, source, ids.slice(1, 29))).toEqual([ids[10]])
    expect(await pending(b, 'g')).toBe(1)
  })

  it('forgets consumers that hold nothing and were silent long enough, never one that holds an entry', async () => {
    const b = await bus()
    const source = {channel: CHANNEL, stream: b.keys.stream(CHANNEL), requeue: false}
    await b.redis.xgroup('CREATE', source.stream, 'g', '0', 'MKSTREAM')
    await b.publishMany([
      {channel: CHANNEL, type: 'x'},
      {channel: CHANNEL, type: 'y'},
    ])
    const read = (consumer: string) =>
      b.redis.xreadgroup('GROUP', 'g', consumer, 'COUNT', 1, 'STREAMS', source.stream, '>') as Promise<
        [string, [string, string[]][]][]
      >
    const [[, [[done]]]] = await read('gone')
    await read('busy')
    const gone = new ConsumeScripts(b.redis, b.keys, 'g', 'gone')
    expect(await ack(gone, source, [done])).toEqual([])
    expect(await gone.forget(source, 60_000)).toBe(0)
    await waitFor(async () => (await gone.forget(source, 1)) === 1, 2000, 'the empty consumer forgotten')
    const left = (await b.redis.xinfo('CONSUMERS', source.stream, 'g')) as unknown[][]
    expect(left.map((c) => c[c.indexOf('name') + 1])).toEqual(['busy'])
  })

  it("leaves the agents' heartbeats out of glob handlers unless a handler names sys.global.heartbeat", async () => {
    const b = await bus()
    await b.publish({channel: 'sys.global.heartbeat', type: 'agent.heartbeat', payload: {n: 0}})
    const glob: string[] = []
    const named: string[] = []
    await b.consume(
      handler({name: 'everything', channels: ['sys.**'], handle: (e) => void glob.push(e.channel)}),
    )
    await b.consume(
      handler({name: 'star', channels: ['sys.global.*'], handle: (e) => void glob.push(e.channel)}),
    )
    await b.consume(
      handler({
        name: 'beats',
        channels: ['sys.global.heartbeat'],
        handle: (e) => void named.push(e.channel),
      }),
    )
    await b.publish({channel: 'sys.global.heartbeat', type: 'agent.heartbeat', payload: {n: 1}})
    await b.publish({channel: CHANNEL, type: 'after'})
    await waitFor(() => glob.includes(CHANNEL) && named.length === 1, 5000, 'deliveries')
    expect(glob).toEqual([CHANNEL])
    expect(named).toEqual(['sys.global.heartbeat'])
    const groups = (await b.redis.xinfo('GROUPS', b.keys.stream('sys.global.heartbeat'))) as unknown[][]
    expect(groups.map((g) => g[g.indexOf('name') + 1])).toEqual(['beats'])
  })

  it('keeps a slow in-flight handler alive: it is never reclaimed by another consumer', async () => {
    const b = await bus()
    const b2 = await RaptorBus.connect({redisUrl: redisUrl(), prefix: b.keys.prefix})
    buses.push(b2)
    const runs: string[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const slow = handler({
      timeoutMs: 10_000,
      handle: async () => {
        runs.push('slow')
        await gate
      },
    })
    await b.consume(slow, {reclaimAfterMs: 300})
    await b.publish({channel: CHANNEL, type: 'long'})
    await waitFor(() => runs.length === 1, 3000)
    await b2.consume(handler({handle: () => void runs.push('thief')}), {reclaimAfterMs: 300})
    // Many reclaim periods pass while the first handler still runs.
    await new Promise((r) => setTimeout(r, 1500))
    expect(runs).toEqual(['slow'])
    release()
    await waitFor(async () => (await pending(b, 'h1')) === 0, 3000)
    expect(runs).toEqual(['slow'])
  })

  it('redelivers an event held by a consumer killed -9 mid-handler to a live consumer', async () => {
    const b = await bus()
    const prefix = b.keys.prefix
    const child = spawnConsumer(prefix, 'hang', 500)
    await waitForLine(child, 'ready')
    // Listen before publishing: the child may start the handler before publish() returns.
    const started = waitForLine(child, 'started')
    const id = await b.publish({channel: CHANNEL, type: 'work'})
    await started
    child.kill('SIGKILL')
    const done: {id: string; attempt: number}[] = []
    const outcomes: ConsumeOutcome[] = []
    await b.consume(
      {
        name: 'crashy',
        channels: [CHANNEL],
        handle: (e, ctx) => void done.push({id: e.id, attempt: ctx.attempt}),
      },
      {reclaimAfterMs: 500, onOutcome: (o) => outcomes.push(o)},
    )
    await waitFor(() => done.length === 1, 10_000, 'redelivery')
    expect(done[0]).toEqual({id, attempt: 2})
    await waitFor(async () => (await pending(b, 'crashy')) === 0, 3000)
    expect((await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'crashy'))).duplicates).toBe('1')
  })

  it('dead-letters a poison event that kills its process on every delivery', async () => {
    const b = await bus()
    const prefix = b.keys.prefix
    const id = await b.publish({channel: CHANNEL, type: 'poison'})
    let starts = 0
    for (let i = 0; i < 8; i++) {
      if ((await dlqEntries(b, CHANNEL, 'max_retries_exceeded')).length > 0) break
      const child = spawnConsumer(prefix, 'die', 300, 2)
      const exit = new Promise((r) => child.on('exit', r))
      // Each process either gets the event and dies, or (past maxRetries) dead-letters it and lives on.
      const started = waitForLine(child, 'started').then(
        () => true,
        () => false,
      )
      const parked = waitFor(
        async () => (await dlqEntries(b, CHANNEL, 'max_retries_exceeded')).length > 0,
        15_000,
      )
      if (await Promise.race([started, parked.then(() => false)])) starts++
      child.kill('SIGKILL')
      await exit
      // Let the dead consumer's entry go idle past reclaimAfterMs before the next process starts.
      await new Promise((r) => setTimeout(r, 350))
    }
    const entries = await waitFor(async () => {
      const e = await dlqEntries(b, CHANNEL, 'max_retries_exceeded')
      return e.length > 0 && e
    }, 10_000)
    expect(starts).toBe(3)
    expect(JSON.parse(entries[0].e as string).id).toBe(id)
    expect(entries[0].error).toContain('gave up after 3 attempts')
  })

  // Its own one-node Redis, restarted: the same on both targets.
  it.skipIf(t.name === 'cluster')('resumes by itself after Redis restarts under it', async () => {
    const server = await RedisServer.start()
    try {
      const b = await RaptorBus.connect({redisUrl: server.url, prefix: randomPrefix()})
      buses.push(b)
      const seen: string[] = []
      const errors: Error[] = []
      await b.consume(handler({handle: (e) => void seen.push(e.type)}), {
        blockMs: 200,
        onError: (e) => errors.push(e),
      })
      await b.publish({channel: CHANNEL, type: 'before'})
      await waitFor(() => seen.includes('before'), 5000)
      await server.restart()
      await waitFor(
        async () => {
          await b.publish({channel: CHANNEL, type: 'after'}).catch(() => undefined)
          return seen.includes('after')
        },
        20_000,
        'delivery after restart',
      )
      expect(seen).toContain('after')
    } finally {
      while (buses.length > 0) await buses.pop()!.close()
      await server.stop()
    }
  })

  it('answers requests through ctx.reply and times out without a handler', async () => {
    const b = await bus()
    await b.consume(
      handler({
        name: 'adder',
        types: ['add'],
        handle: async (e: RaptorEvent, ctx) => {
          await ctx.reply({sum: (e.data.a as number) + (e.data.b as number)})
        },
      }),
    )
    const reply = await b.request({channel: CHANNEL, type: 'add', payload: {a: 2, b: 3}, timeoutMs: 5000})
    expect(reply.data).toEqual({sum: 5})
    expect(reply.type).toBe('add.reply')
    expect(reply.correlationid).toMatch(/^req-/)
    const error = await b
      .request({channel: 'sys.alert.warning', type: 'nobody', timeoutMs: 200})
      .catch((e) => e)
    expect(error.code).toBe('TIMEOUT')
  })

  it('rejects an invalid definition naming the field', async () => {
    const b = await bus()
    await expect(b.consume({name: 'x', channels: [], handle: () => {}})).rejects.toThrow(/channels/)
    await expect(b.consume({name: 'x', channels: [CHANNEL]} as unknown as HandlerDefinition)).rejects.toThrow(
      /handle/,
    )
  })
})

const FIXTURE = fileURLToPath(new URL('../fixtures/crash-consumer.mjs', import.meta.url))

function spawnConsumer(prefix: string, mode: string, reclaimAfterMs: number, maxRetries = 3): ChildProcess {
  const child = spawn(
    process.execPath,
    [FIXTURE, redisUrl(), prefix, mode, String(reclaimAfterMs), String(maxRetries)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  children.push(child)
  return child
}

function waitForLine(child: ChildProcess, key: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    const onData = (d: Buffer) => {
      buffer += d
      for (const line of buffer.split('\n')) {
        if (!line.trim()) continue
        try {
          const value = JSON.parse(line)
          if (key in value) {
            child.stdout?.off('data', onData)
            resolve(value)
            return
          }
        } catch {
          // partial line
        }
      }
    }
    child.stdout?.on('data', onData)
    child.once('exit', () => reject(new Error(`child exited before '${key}'`)))
  })
}

export type {Consumer}
