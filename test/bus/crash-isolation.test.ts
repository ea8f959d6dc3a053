import {expect, it} from 'vitest'

import {describeTargets, redisUrl, testBuses, waitFor} from '../helpers/index.js'
import {childProcesses, fixture, type NdjsonChild} from '../helpers/child.js'
import {streamEntries} from '../helpers/ops.js'

const CHANNEL = 'sys.state.update'
const FIXTURE = fixture('poison-consumer.mjs')
const bus = testBuses()
const spawnChild = childProcesses()

/** Seq numbers of the lines with `key` over every process. */
function seqs(children: NdjsonChild[], key: string): Set<number> {
  const out = new Set<number>()
  for (const c of children) for (const l of c.lines) if (key in l) out.add(l.seq as number)
  return out
}

describeTargets('crash isolation (real processes killed by their poison events)', () => {
  it('dead-letters only the poison events: every innocent neighbour is handled, none dead-lettered', async () => {
    const b = await bus()
    const poison = new Set([15, 45, 75, 105])
    const total = 120
    const ids = await b.publishMany(
      Array.from({length: total}, (_, seq) => ({
        channel: CHANNEL,
        type: poison.has(seq) ? 'poison' : 'work',
        payload: poison.has(seq) ? {seq, poison: true} : {seq},
      })),
    )
    const config = {
      redisUrl: redisUrl(),
      prefix: b.keys.prefix,
      concurrency: 8,
      maxRetries: 2,
      reclaimAfterMs: 500,
      handlerMs: 60,
    }
    // Two consumer processes at all times: each one that a poison event kills is replaced.
    const children: NdjsonChild[] = []
    let stopped = false
    const start = () => {
      const c = spawnChild([FIXTURE, JSON.stringify(config)])
      children.push(c)
      void c.exit.then(() => {
        if (!stopped && children.length < 80) start()
      })
    }
    start()
    start()
    const dlqKey = b.keys.dlq(CHANNEL, 'max_retries_exceeded')
    try {
      await waitFor(
        async () => {
          const dead = await b.redis.xlen(dlqKey)
          const done = seqs(children, 'done')
          // Resolved: every event handled or dead-lettered.
          return done.size + dead >= total
        },
        100_000,
        'every event handled or dead-lettered',
      )
    } finally {
      stopped = true
    }
    const dead = (await streamEntries(b, dlqKey)).map((e) => JSON.parse(e.e) as {data: {seq: number}})
    const deadSeqs = dead.map((e) => e.data.seq).sort((x, y) => x - y)
    const innocentDead = deadSeqs.filter((s) => !poison.has(s))
    expect(innocentDead).toEqual([])
    expect(deadSeqs).toEqual([...poison])
    const done = seqs(children, 'done')
    const unhandled = ids.map((_, seq) => seq).filter((s) => !poison.has(s) && !done.has(s))
    expect(unhandled).toEqual([])
    // Each poison event ran exactly maxRetries + 1 times (some runs were cut short by another poison).
    const starts = new Map<number, number>()
    for (const c of children)
      for (const l of c.lines)
        if ('started' in l && poison.has(l.seq as number))
          starts.set(l.seq as number, (starts.get(l.seq as number) ?? 0) + 1)
    expect([...starts.values()]).toEqual([3, 3, 3, 3])
  }, 120_000)

  it('acknowledges an event whose handler finished before a neighbour crashes the process in the next macrotask', async () => {
    const b = await bus()
    // `a` finishes; `b` waits for it and kills the process in the very next macrotask (setImmediate).
    await b.publishMany([
      {channel: CHANNEL, type: 'b', payload: {seq: 1, crashAfter: 'a'}},
      {channel: CHANNEL, type: 'a', payload: {seq: 0}},
    ])
    const config = {
      redisUrl: redisUrl(),
      prefix: b.keys.prefix,
      concurrency: 8,
      reclaimAfterMs: 300,
      handlerMs: 20,
    }
    const first = spawnChild([FIXTURE, JSON.stringify(config)])
    expect(await first.exit).toBe(3)
    expect(first.lines.filter((l) => 'done' in l).map((l) => l.seq)).toEqual([0])
    // A second process takes over what the first left pending: only `b`, which then succeeds.
    const second = spawnChild([FIXTURE, JSON.stringify(config)])
    await waitFor(() => second.lines.some((l) => l.done !== undefined && l.seq === 1), 15_000, 'b handled')
    await waitFor(
      async () => Number(((await b.redis.xpending(b.keys.stream(CHANNEL), 'poisoned')) as [number])[0]) === 0,
      5000,
      'nothing pending',
    )
    expect(second.lines.filter((l) => 'started' in l).map((l) => l.seq)).toEqual([1])
    const stats = await b.redis.hgetall(b.keys.handlerStats(CHANNEL, 'poisoned'))
    expect(stats.acked).toBe('2')
  })
})

describeTargets('reclaim under a backlog', () => {
  it('redelivers the events of a consumer killed -9 while the others are saturated, ahead of the backlog', async () => {
    const b = await bus()
    // A backlog that three consumers need ~10 s for (far longer than the reclaim takes).
    await b.publishMany(
      Array.from({length: 600}, (_, seq) => ({channel: CHANNEL, type: 'work', payload: {seq}})),
    )
    const config = {
      redisUrl: redisUrl(),
      prefix: b.keys.prefix,
      concurrency: 8,
      reclaimAfterMs: 1000,
      handlerMs: 400,
    }
    const [victim, ...others] = [0, 1, 2].map(() => spawnChild([FIXTURE, JSON.stringify(config)]))
    await waitFor(() => victim.lines.filter((l) => 'started' in l).length >= 8, 10_000, 'victim busy')
    victim.child.kill('SIGKILL')
    await victim.exit
    const done = new Set(victim.lines.filter((l) => 'done' in l).map((l) => l.seq as number))
    const held = victim.lines.filter((l) => 'started' in l && !done.has(l.seq as number)).map((l) => l.seq)
    expect(held.length).toBeGreaterThan(0)
    const redelivered = () => {
      const seen = new Set<unknown>()
      for (const c of others) for (const l of c.lines) if ('started' in l) seen.add(l.seq)
      return held.every((s) => seen.has(s))
    }
    await waitFor(redelivered, 60_000, 'the killed consumer’s events redelivered')
    // When they were redelivered, the backlog was still there: reclaimed events went ahead of new reads.
    const groups = (await b.redis.xinfo('GROUPS', b.keys.stream(CHANNEL))) as unknown[][]
    const lag = Number(groups[0][groups[0].indexOf('lag') + 1])
    expect(lag).toBeGreaterThan(100)
  }, 90_000)
})
