/**
 * The publishers the bench compares, each built the same way: connect, warm up, then `one()` (a
 * single publish) or `many(n)` (a batch of n), and `close()`. Every side builds its payload with
 * the same builder (lib.ts `payloadMaker`) and stores the same envelope attributes.
 */
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'

import {Queue} from 'bullmq'
import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {nowMicros} from '../src/cli/histogram.js'
import {skip} from './harness.js'
import {payloadMaker, rawEnvelope, tag} from './lib.js'

/** The RaptorBus class of this tree, or of another checkout's dist/ (`--vs DIR`). */
export async function busClass(vs?: string): Promise<typeof RaptorBus> {
  if (vs === undefined) return RaptorBus
  const url = pathToFileURL(join(vs, 'dist/bus/index.js')).href
  return ((await import(url)) as {RaptorBus: typeof RaptorBus}).RaptorBus
}

export interface Publisher {
  one(): Promise<unknown>
  many(n: number): Promise<unknown>
  close(): Promise<void>
}

/**
 * The raw one-script baseline: what a hand-written persisted, counted, fanned-out publish costs with
 * one EVALSHA — the event's JSON appended to a stream, published on a pub/sub channel, a counter
 * incremented. No validation, no get-by-id index, no retention trimming.
 */
export const RAW_SCRIPT = `
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'published', 1)
return id`

type RawClient = Redis & {
  rawPublish(stream: string, stats: string, json: string, live: string): Promise<string>
}

export function rawScriptClient(url: string): RawClient {
  const redis = new Redis(url) as RawClient
  redis.defineCommand('rawPublish', {numberOfKeys: 2, lua: RAW_SCRIPT})
  return redis
}

/** Raw stream key names of a channel (the raw side keeps its own keys). */
export const rawKeys = (channel: string) => ({
  stream: `raw:{${channel}}:stream`,
  stats: `raw:{${channel}}:stats`,
  live: `raw:live:${channel}`,
})

/**
 * The raw one-script publisher: `JSON.stringify` of the envelope per event (lib.ts `rawEnvelope`),
 * one EVALSHA per event; `many(n)` pipelines n of them in one round trip. `channels` > 1 spreads
 * the events round-robin over that many channels.
 */
export async function rawPublisher(
  url: string,
  opts: {payloadBytes: number; channels?: string[]},
): Promise<Publisher & {channels: string[]}> {
  const redis = rawScriptClient(url)
  const payload = payloadMaker(opts.payloadBytes, nowMicros)
  const channels = opts.channels ?? [`bench.raw${tag()}`]
  const keys = channels.map(rawKeys)
  let i = 0
  const send = (target: Pick<RawClient, 'rawPublish'>) => {
    const n = i++ % channels.length
    const k = keys[n]
    return target.rawPublish(k.stream, k.stats, rawEnvelope(channels[n], 'bench', payload()), k.live)
  }
  return {
    channels,
    one: () => send(redis),
    many: async (count) => {
      const pipeline = redis.pipeline() as unknown as Pick<RawClient, 'rawPublish'> & {
        exec(): Promise<unknown>
      }
      for (let j = 0; j < count; j++) void send(pipeline)
      const results = (await pipeline.exec()) as [Error | null, unknown][]
      const failed = results.find(([error]) => error)
      if (failed) throw failed[0]
    },
    close: async () => void (await redis.quit()),
  }
}

/** raptor `bus.publish` / `bus.publishMany` on a fresh prefix. */
export async function raptorPublisher(
  url: string,
  opts: {payloadBytes: number; channels?: string[]; retention?: string; vs?: string},
): Promise<Publisher & {bus: RaptorBus; channels: string[]}> {
  const channels = opts.channels ?? [`bench.rp${tag()}`]
  const Bus = await busClass(opts.vs)
  const bus = await Bus.connect({
    redisUrl: url,
    prefix: `bench-${tag()}`,
    channels: channels.map((name) => ({name, retention: opts.retention ?? '1h'})),
  })
  const payload = payloadMaker(opts.payloadBytes, nowMicros)
  let i = 0
  const input = () => ({channel: channels[i++ % channels.length], type: 'bench', payload: payload()})
  return {
    bus,
    channels,
    one: () => bus.publish(input()),
    many: (n) => bus.publishMany(Array.from({length: n}, input)),
    close: () => bus.close(),
  }
}

/** BullMQ `Queue.add` / `Queue.addBulk`. */
export async function bullPublisher(url: string, opts: {payloadBytes: number}): Promise<Publisher> {
  const connection = new Redis(url, {maxRetriesPerRequest: null})
  const queue = new Queue(`tp${tag()}`, {connection, prefix: 'bench-bull'})
  const payload = payloadMaker(opts.payloadBytes, nowMicros)
  return {
    one: () => queue.add('bench', payload()),
    many: (n) => queue.addBulk(Array.from({length: n}, () => ({name: 'bench', data: payload()}))),
    close: async () => {
      await queue.close()
      await connection.quit()
    },
  }
}

export const NATS_SERVER = process.env.NATS_URL ?? '127.0.0.1:4222'

/** A NATS connection, or an error that skips the case when no server answers. */
export async function natsConnect() {
  const nats = await import('nats')
  const nc = await nats.connect({servers: NATS_SERVER, timeout: 1000}).catch((error: Error) => {
    throw skip(`NATS not reachable at ${NATS_SERVER} (${error.message})`)
  })
  return {nats, nc}
}

/** NATS JetStream `js.publish` (awaited) into a fresh memory stream; `many(n)`: n in flight at once. */
export async function natsPublisher(opts: {payloadBytes: number}): Promise<Publisher> {
  const {nats, nc} = await natsConnect()
  const jsm = await nc.jetstreamManager()
  const name = `BENCH_${tag()}`
  const subject = `bench.${name.toLowerCase()}`
  await jsm.streams.add({name, subjects: [subject], storage: nats.StorageType.Memory})
  const js = nc.jetstream()
  const encoder = new TextEncoder()
  const payload = payloadMaker(opts.payloadBytes, nowMicros)
  const one = () => js.publish(subject, encoder.encode(rawEnvelope(subject, 'bench', payload())))
  return {
    one,
    many: (n) => Promise.all(Array.from({length: n}, one)),
    close: async () => {
      await jsm.streams.delete(name).catch(() => {})
      await nc.close()
    },
  }
}
