import {randomBytes} from 'node:crypto'

import {Queue} from 'bullmq'
import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {nowMicros} from '../src/cli/histogram.js'
import {payloadMaker, progress, windowed, type Settings} from './lib.js'

/** One throughput row: `setup` connects and warms up; `measure` returns events per second. */
export interface ThroughputCase {
  key: string
  label: string
  setup(): Promise<{measure(events: number): Promise<number>; teardown(): Promise<void>}>
}

const RAW_SCRIPT = `
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'published', 1)
return id`

/** Events per publishMany / addBulk call. */
export const BATCH = 1000

export function throughputCases(url: string, s: Settings): ThroughputCase[] {
  const payload = payloadMaker(s.payloadBytes, nowMicros)
  const tag = () => randomBytes(4).toString('hex')
  const W = s.window
  const raptor =
    (batch: boolean): ThroughputCase['setup'] =>
    async () => {
      const channel = `bench.tp${tag()}`
      const bus = await RaptorBus.connect({
        redisUrl: url,
        prefix: `bench-${tag()}`,
        channels: [{name: channel, retention: '1h'}],
      })
      const one = () => bus.publish({channel, type: 'bench', payload: payload()})
      const many = () =>
        bus.publishMany(Array.from({length: BATCH}, () => ({channel, type: 'bench', payload: payload()})))
      await windowed(1000, W, one)
      return {
        measure: async (events) =>
          batch ? (await windowed(events / BATCH, 1, many)) * BATCH : windowed(events, W, one),
        teardown: () => bus.close(),
      }
    }
  return [
    {
      key: 'rawPublish',
      label: 'raw ioredis PUBLISH',
      setup: async () => {
        const redis = new Redis(url)
        const ch = `bench:raw:${tag()}`
        const op = () => redis.publish(ch, JSON.stringify(payload()))
        await windowed(1000, W, op)
        return {measure: (events) => windowed(events, W, op), teardown: async () => void (await redis.quit())}
      },
    },
    {
      key: 'rawScript',
      label: 'raw one-script XADD+PUBLISH+HINCRBY (EVALSHA)',
      setup: async () => {
        const redis = new Redis(url) as Redis & {rawPublish(...args: string[]): Promise<string>}
        redis.defineCommand('rawPublish', {numberOfKeys: 2, lua: RAW_SCRIPT})
        const t = tag()
        const op = () =>
          redis.rawPublish(
            `bench:{${t}}:stream`,
            `bench:{${t}}:stats`,
            JSON.stringify(payload()),
            `bench:live:${t}`,
          )
        await windowed(1000, W, op)
        return {measure: (events) => windowed(events, W, op), teardown: async () => void (await redis.quit())}
      },
    },
    {key: 'raptorPublish', label: 'raptor bus.publish', setup: raptor(false)},
    {
      key: 'raptorPublishMany',
      label: `raptor bus.publishMany (batches of ${BATCH}, 1 in flight)`,
      setup: raptor(true),
    },
    {
      key: 'bullAdd',
      label: 'BullMQ Queue.add',
      setup: bull(url, W, payload, false),
    },
    {
      key: 'bullAddBulk',
      label: `BullMQ Queue.addBulk (batches of ${BATCH}, 1 in flight)`,
      setup: bull(url, W, payload, true),
    },
    {key: 'nats', label: 'NATS JetStream js.publish (memory stream, awaited)', setup: nats(W, payload)},
  ]
}

function bull(url: string, window: number, payload: () => object, bulk: boolean): ThroughputCase['setup'] {
  return async () => {
    const connection = new Redis(url, {maxRetriesPerRequest: null})
    const queue = new Queue(`tp${randomBytes(4).toString('hex')}`, {connection, prefix: 'bench-bull'})
    const one = () => queue.add('bench', payload())
    const many = () => queue.addBulk(Array.from({length: BATCH}, () => ({name: 'bench', data: payload()})))
    await windowed(1000, window, one)
    return {
      measure: async (events) =>
        bulk ? (await windowed(events / BATCH, 1, many)) * BATCH : windowed(events, window, one),
      teardown: async () => {
        await queue.obliterate({force: true}).catch(() => {})
        await queue.close()
        await connection.quit()
      },
    }
  }
}

/** NATS JetStream on 127.0.0.1:4222 (NATS_URL), or an error with `skip` set when it is not reachable. */
function nats(window: number, payload: () => object): ThroughputCase['setup'] {
  return async () => {
    const {connect, StorageType} = await import('nats')
    const server = process.env.NATS_URL ?? '127.0.0.1:4222'
    const nc = await connect({servers: server, timeout: 1000}).catch((error: Error) => {
      throw Object.assign(new Error(`NATS not reachable at ${server} (${error.message})`), {skip: true})
    })
    const jsm = await nc.jetstreamManager()
    const name = `BENCH_${randomBytes(4).toString('hex')}`
    const subject = `bench.${name.toLowerCase()}`
    await jsm.streams.add({name, subjects: [subject], storage: StorageType.Memory})
    const js = nc.jetstream()
    const encoder = new TextEncoder()
    const op = () => js.publish(subject, encoder.encode(JSON.stringify(payload())))
    await windowed(1000, window, op)
    return {
      measure: (events) => windowed(events, window, op),
      teardown: async () => {
        await jsm.streams.delete(name).catch(() => {})
        await nc.close()
      },
    }
  }
}

export interface ThroughputResult {
  key: string
  label: string
  /** Events/s of each run. */
  runs: number[]
  skipped?: string
}

/** Runs every case `s.runs` times, interleaved (case A, B, C, A, B, C…) so that noise spreads evenly. */
export async function runThroughput(url: string, s: Settings): Promise<ThroughputResult[]> {
  const cases = throughputCases(url, s)
  const results = new Map<string, ThroughputResult>(
    cases.map((c) => [c.key, {key: c.key, label: c.label, runs: []}]),
  )
  for (let run = 0; run < s.runs; run++) {
    for (const c of cases) {
      const result = results.get(c.key)!
      if (result.skipped) continue
      let instance
      try {
        instance = await c.setup()
      } catch (error) {
        result.skipped = (error as Error).message
        progress(`${c.label}: skipped (${result.skipped})`)
        continue
      }
      try {
        const rate = await instance.measure(s.events)
        result.runs.push(rate)
        progress(`run ${run + 1}/${s.runs} ${c.label}: ${Math.round(rate)} events/s`)
      } finally {
        await instance.teardown()
      }
    }
  }
  return [...results.values()]
}
