import {randomBytes} from 'node:crypto'

import {Queue, Worker} from 'bullmq'
import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {nowMicros} from '../src/cli/histogram.js'
import {payloadMaker, progress, sleep, type Settings} from './lib.js'

/**
 * One durable-consume row: given a connected bus whose `channel` already holds `events` events
 * (published with raptor), consume them all and return events per second.
 */
export type DurableCase = (ctx: {
  bus: RaptorBus
  channel: string
  events: number
  url: string
}) => Promise<number>

/**
 * The raptor row: `bus.consume` with one no-op handler (concurrency 100, the same window as the raw
 * loop's COUNT 100), acknowledging through the fenced ack script. The group starts from history, as
 * the events are already there.
 */
export const raptorConsume: DurableCase = async ({bus, channel, events}) => {
  let done = 0
  let resolveAll!: () => void
  const all = new Promise<void>((r) => (resolveAll = r))
  const started = performance.now()
  const consumer = await bus.consume({
    name: 'bench',
    channels: [channel],
    concurrency: 100,
    startFrom: 'history',
    handle: () => {
      if (++done === events) resolveAll()
    },
  })
  await all
  const rate = events / ((performance.now() - started) / 1000)
  await consumer.stop(5000)
  return rate
}

/** Raw Redis Streams: XREADGROUP COUNT 100, JSON.parse each envelope, XACK the batch; one loop. */
export const rawConsume: DurableCase = async ({bus, channel, events, url}) => {
  const redis = new Redis(url)
  const stream = bus.keys.stream(channel)
  await redis.xgroup('CREATE', stream, 'raw', '0')
  let done = 0
  const started = performance.now()
  while (done < events) {
    const reply = (await redis.xreadgroup(
      'GROUP',
      'raw',
      'c1',
      'COUNT',
      100,
      'BLOCK',
      1000,
      'STREAMS',
      stream,
      '>',
    )) as [string, [string, string[]][]][] | null
    const entries = reply?.[0]?.[1] ?? []
    if (entries.length === 0) continue
    for (const [, fields] of entries) JSON.parse(fields[1])
    await redis.xack(stream, 'raw', ...entries.map(([id]) => id))
    done += entries.length
  }
  const rate = events / ((performance.now() - started) / 1000)
  await redis.quit()
  return rate
}

/**
 * BullMQ: the same number of jobs (500-byte payloads, attempts 3, exponential backoff) added
 * beforehand with addBulk (not timed), then one Worker with concurrency 50 and a handler that only
 * counts; timed from the worker's start to the last completion.
 */
export const bullConsume =
  (payloadBytes: number): DurableCase =>
  async ({events, url}) => {
    const connection = new Redis(url, {maxRetriesPerRequest: null})
    const name = `dc${randomBytes(4).toString('hex')}`
    const queue = new Queue(name, {connection, prefix: 'bench-bull'})
    const payload = payloadMaker(payloadBytes, nowMicros)
    for (let i = 0; i < events; i += 1000)
      await queue.addBulk(
        Array.from({length: Math.min(1000, events - i)}, () => ({
          name: 'bench',
          data: payload(),
          opts: {attempts: 3, backoff: {type: 'exponential', delay: 200}},
        })),
      )
    let done = 0
    let resolveAll!: () => void
    const all = new Promise<void>((r) => (resolveAll = r))
    const started = performance.now()
    const workerConnection = new Redis(url, {maxRetriesPerRequest: null})
    const worker = new Worker(
      name,
      async () => {
        if (++done === events) resolveAll()
      },
      {connection: workerConnection, prefix: 'bench-bull', concurrency: 50},
    )
    await all
    const rate = events / ((performance.now() - started) / 1000)
    await worker.close()
    await workerConnection.quit()
    await queue.obliterate({force: true}).catch(() => {})
    await queue.close()
    await connection.quit()
    return rate
  }

export interface DurableResult {
  key: string
  label: string
  runs: number[]
  pending?: string
}

export async function runDurable(url: string, s: Settings): Promise<DurableResult[]> {
  const cases: {key: string; label: string; run?: DurableCase; pending?: string}[] = [
    {key: 'rawConsume', label: 'raw XREADGROUP COUNT 100 + XACK + JSON.parse', run: rawConsume},
    {
      key: 'bullConsume',
      label: 'BullMQ Worker (concurrency 50, attempts 3, exponential backoff)',
      run: bullConsume(s.payloadBytes),
    },
    {
      key: 'raptorConsume',
      label: 'raptor bus.consume (no-op handler, concurrency 100, fenced acks)',
      run: raptorConsume,
    },
  ]
  const results = cases.map((c) => ({key: c.key, label: c.label, runs: [] as number[], pending: c.pending}))
  const payload = payloadMaker(s.payloadBytes, nowMicros)
  for (let run = 0; run < s.runs; run++) {
    for (const [i, c] of cases.entries()) {
      if (!c.run) continue
      const tag = randomBytes(4).toString('hex')
      const channel = `bench.dc${tag}`
      const bus = await RaptorBus.connect({
        redisUrl: url,
        prefix: `bench-dc-${tag}`,
        channels: [{name: channel, retention: '1h'}],
      })
      try {
        for (let n = 0; n < s.events; n += 1000)
          await bus.publishMany(
            Array.from({length: Math.min(1000, s.events - n)}, () => ({
              channel,
              type: 'bench',
              payload: payload(),
            })),
          )
        await sleep(50)
        const rate = await c.run({bus, channel, events: s.events, url})
        results[i].runs.push(rate)
        progress(`run ${run + 1}/${s.runs} ${c.label}: ${Math.round(rate)} events/s`)
      } finally {
        await bus.close()
      }
    }
  }
  return results
}

/** Durable end-to-end latency: publish → handler start, at a fixed rate, one consumer. */
export interface DurableLatency {
  rate: number
  runs: {p50: number; p99: number; max: number; sent: number; received: number}[]
}

/**
 * Publishes at `rate` events/s for `s.liveMs` with `raptor bench`'s engine (one publisher, one durable
 * consumer in the same process) and reads the latency from the send timestamp in each payload to the
 * moment the handler starts.
 */
export async function runDurableLatency(url: string, s: Settings, rate = 1000): Promise<DurableLatency> {
  const {runBench} = await import('../src/cli/bench.js')
  const result: DurableLatency = {rate, runs: []}
  for (let run = 0; run < s.runs; run++) {
    const r = await runBench({
      bus: {redisUrl: url, prefix: 'bench-dl'},
      publishers: 1,
      subscribers: 0,
      consumers: 1,
      size: s.payloadBytes,
      durationMs: s.liveMs,
      rate,
      window: 100,
    })
    const c = r.consumers!
    result.runs.push({
      p50: c.latencyMs.p50,
      p99: c.latencyMs.p99,
      max: c.latencyMs.max,
      sent: r.publishers.events,
      received: c.events,
    })
    progress(
      `run ${run + 1}/${s.runs} durable latency at ${rate}/s: p50 ${c.latencyMs.p50.toFixed(3)} ms, p99 ${c.latencyMs.p99.toFixed(3)} ms`,
    )
  }
  return result
}

/**
 * Peak RSS of a real `raptor agent` process (no-op handler, concurrency 100) working through a
 * backlog of `events` queued events, sampled from /proc every 50 ms. Returns MB and events/s.
 */
export async function runAgentMemory(
  url: string,
  events: number,
): Promise<{peakMb: number; eventsPerSec: number}> {
  const {spawn} = await import('node:child_process')
  const {readFileSync, writeFileSync, mkdtempSync} = await import('node:fs')
  const {tmpdir} = await import('node:os')
  const {join} = await import('node:path')
  const tag = randomBytes(4).toString('hex')
  const prefix = `bench-mem-${tag}`
  const channel = 'sys.state.update'
  const dir = mkdtempSync(join(tmpdir(), 'raptor-bench-'))
  const plugin = join(dir, 'noop.mjs')
  writeFileSync(
    plugin,
    `export default {name: 'noop', channels: ['${channel}'], startFrom: 'history', concurrency: 100, handle() {}}\n`,
  )
  const bus = await RaptorBus.connect({redisUrl: url, prefix})
  try {
    const payload = payloadMaker(500, nowMicros)
    for (let n = 0; n < events; n += 1000)
      await bus.publishMany(
        Array.from({length: Math.min(1000, events - n)}, () => ({
          channel,
          type: 'bench',
          payload: payload(),
        })),
      )
    const bin = new URL('../../bin/run.js', import.meta.url).pathname
    // The same flags the `raptor` shebang gives node.
    const agent = spawn(
      process.execPath,
      ['--max-semi-space-size=4', bin, 'agent', '--plugin', plugin, '--redis-url', url, '--prefix', prefix],
      {
        stdio: 'ignore',
      },
    )
    const started = performance.now()
    let peak = 0
    const stream = bus.keys.stream(channel)
    for (;;) {
      try {
        const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))
        if (rss) peak = Math.max(peak, Number(rss[1]) / 1024)
      } catch {
        // not started yet, or gone
      }
      const groups = (await bus.redis.xinfo('GROUPS', stream).catch(() => [])) as unknown[][]
      const g = groups[0]
      const read = g ? Number(g[g.indexOf('entries-read') + 1]) : 0
      const pending = g ? Number(g[g.indexOf('pending') + 1]) : 1
      if (read >= events && pending === 0) break
      await sleep(50)
    }
    const seconds = (performance.now() - started) / 1000
    agent.kill('SIGTERM')
    await new Promise((r) => agent.once('exit', r))
    return {peakMb: peak, eventsPerSec: events / seconds}
  } finally {
    const keys = await bus.redis.keys(`${prefix}:*`)
    for (let i = 0; i < keys.length; i += 1000) await bus.redis.unlink(...keys.slice(i, i + 1000))
    await bus.close()
  }
}
