import {randomBytes} from 'node:crypto'

import {Queue, Worker} from 'bullmq'
import {Redis} from 'ioredis'

import {RaptorBus, type RaptorEvent} from '../src/bus/index.js'
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
 * The raptor row: `bus.consume` with one handler that only counts. It runs only when this build has
 * `bus.consume`; until then the table shows the row as pending. The shape follows SPEC §5
 * (`consume(handler definition)`); adjust the stop call to what `consume` returns.
 */
export const raptorConsume: DurableCase = async ({bus, channel, events}) => {
  type Consume = (definition: {
    name: string
    channels: string[]
    handle: (event: RaptorEvent) => Promise<void>
  }) => Promise<{stop?: () => Promise<void>; close?: () => Promise<void>} | undefined>
  const consume = (bus as unknown as {consume: Consume}).consume.bind(bus)
  let done = 0
  let resolveAll!: () => void
  const all = new Promise<void>((r) => (resolveAll = r))
  const started = performance.now()
  const handle = await consume({
    name: 'bench',
    channels: [channel],
    handle: async () => {
      if (++done === events) resolveAll()
    },
  })
  await all
  const rate = events / ((performance.now() - started) / 1000)
  await (handle?.stop ?? handle?.close)?.call(handle)
  return rate
}

/** True when this build of raptorbus has `bus.consume`. */
export function consumeMerged(): boolean {
  return typeof (RaptorBus.prototype as unknown as {consume?: unknown}).consume === 'function'
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
    consumeMerged()
      ? {key: 'raptorConsume', label: 'raptor bus.consume', run: raptorConsume}
      : {key: 'raptorConsume', label: 'raptor bus.consume', pending: 'pending: bus.consume not merged yet'},
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
