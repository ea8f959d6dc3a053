import {randomBytes} from 'node:crypto'

import {RaptorBus, type BusOptions} from '../bus/bus.js'
import type {Consumer} from '../bus/consumer.js'
import {InvalidInputError} from '../bus/errors.js'
import type {RaptorEvent} from '../bus/envelope.js'
import {Histogram, nowMicros, type LatencySummary} from './histogram.js'

/** What `raptor bench` runs. */
export interface BenchOptions {
  /** Connection and config, as for every command; `prefix` is the base under which a random one is made. */
  bus: BusOptions
  publishers: number
  subscribers: number
  consumers: number
  /** Payload size in bytes (the JSON of `data`). */
  size: number
  /** Events to publish in all (split across publishers); exclusive with `durationMs`. */
  count?: number
  /** Publish for this long instead of a count. */
  durationMs?: number
  /** Total publish rate in events/s; 0 = as fast as the window allows. */
  rate: number
  /** Publishes in flight per publisher. */
  window: number
  /** Channel; defaults to a fresh `bench.<random>` channel with 5 m retention. */
  channel?: string
  /** How long receivers may stay idle after the last publish before the rest count as lost. */
  drainMs?: number
  /** Progress lines (stderr). */
  log?: (line: string) => void
}

/** One client's figures. */
export interface ClientResult {
  events: number
  seconds: number
  eventsPerSec: number
}

/** The figures of one role (publishers, subscribers or consumers). */
export interface RoleResult {
  clients: number
  events: number
  /** Sum of the clients' rates (the aggregate throughput). */
  eventsPerSec: number
  perClient: ClientResult[]
}

/** What `raptor bench --json` prints. */
export interface BenchResult {
  channel: string
  prefix: string
  size: number
  rate: number
  window: number
  publishers: RoleResult
  subscribers?: RoleResult & {lost: number; latencyMs: LatencySummary}
  consumers?: RoleResult & {lost: number; latencyMs: LatencySummary}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A payload of `size` bytes of JSON carrying the send time (µs, monotonic clock). */
export function makePayload(size: number): () => {ts: number; pad: string} {
  const overhead = JSON.stringify({ts: nowMicros(), pad: ''}).length
  const pad = 'x'.repeat(Math.max(0, size - overhead))
  return () => ({ts: nowMicros(), pad})
}

function role(clients: ClientResult[]): RoleResult {
  return {
    clients: clients.length,
    events: clients.reduce((n, c) => n + c.events, 0),
    eventsPerSec: Math.round(clients.reduce((n, c) => n + c.eventsPerSec, 0)),
    perClient: clients,
  }
}

function client(events: number, seconds: number): ClientResult {
  return {
    events,
    seconds: Math.round(seconds * 1000) / 1000,
    eventsPerSec: seconds > 0 ? Math.round(events / seconds) : 0,
  }
}

/** A receiver (live subscriber or durable consumer): counts events and their latency from publication. */
class Receiver {
  readonly histogram = new Histogram()
  received = 0
  first = 0
  last = 0

  onEvent = (event: RaptorEvent): void => {
    const now = nowMicros()
    const ts = (event.data as {ts?: unknown}).ts
    if (typeof ts === 'number') this.histogram.record(now - ts)
    if (this.received === 0) this.first = now
    this.last = now
    this.received++
  }

  result(fallbackSeconds: number): ClientResult {
    const seconds = this.received > 1 ? (this.last - this.first) / 1e6 : fallbackSeconds
    return client(this.received, seconds || fallbackSeconds)
  }
}

/**
 * Runs a benchmark in the manner of `nats bench`: publishers, live subscribers and durable consumers
 * on one channel under a fresh random prefix, whose keys are deleted afterwards.
 */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {})
  if (options.count !== undefined && options.durationMs !== undefined)
    throw new InvalidInputError('--count and --duration are exclusive')
  const tag = randomBytes(4).toString('hex')
  const prefix = `${options.bus.prefix ?? 'raptor'}:bench-${tag}`
  const channel = options.channel ?? `bench.${tag}`
  const busOptions: BusOptions = {
    ...options.bus,
    prefix,
    channels: [
      ...(options.bus.channels ?? []),
      ...(options.channel ? [] : [{name: channel, retention: '5m'}]),
    ],
  }
  const buses: RaptorBus[] = []
  let control: RaptorBus | undefined
  const connect = async () => {
    const bus = await RaptorBus.connect(busOptions)
    buses.push(bus)
    return bus
  }
  try {
    control = await connect()
    const subscribers = Array.from({length: options.subscribers}, () => new Receiver())
    for (const receiver of subscribers) await (await connect()).subscribe(channel, receiver.onEvent)
    const consumers = Array.from({length: options.consumers}, () => new Receiver())
    const consumerHandles: Consumer[] = []
    for (const receiver of consumers) {
      const bus = await connect()
      // Consumers share one handler (one consumer group), so they split the events between them.
      consumerHandles.push(
        await bus.consume({
          name: `bench-${tag}`,
          channels: [channel],
          concurrency: Math.max(1, options.window),
          handle: receiver.onEvent,
        }),
      )
    }
    const publisherBuses = await Promise.all(Array.from({length: options.publishers}, connect))

    const count = options.durationMs === undefined ? (options.count ?? 10_000) : Infinity
    const deadline = options.durationMs === undefined ? Infinity : Date.now() + options.durationMs
    const payload = makePayload(options.size)
    log(
      `bench: ${options.publishers} publisher(s), ${options.subscribers} subscriber(s), ${options.consumers} consumer(s) on ${channel}, ` +
        `${options.size} B, ${options.durationMs === undefined ? `${count} events` : `${options.durationMs} ms`}` +
        `${options.rate > 0 ? ` at ${options.rate}/s` : ''}`,
    )
    const pubResults = await Promise.all(
      publisherBuses.map(async (bus, p) => {
        const quota =
          count === Infinity
            ? Infinity
            : Math.floor(count / options.publishers) + (p < count % options.publishers ? 1 : 0)
        const perSecond = options.rate > 0 ? options.rate / options.publishers : 0
        let next = 0
        let done = 0
        const started = performance.now()
        const worker = async () => {
          while (true) {
            const i = next++
            if (i >= quota || Date.now() >= deadline) return
            if (perSecond > 0) {
              const wait = started + (i * 1000) / perSecond - performance.now()
              if (wait > 1) await sleep(wait)
            }
            await bus.publish({channel, type: 'bench', payload: payload(), source: `bench-pub-${p}`})
            done++
          }
        }
        await Promise.all(Array.from({length: Math.max(1, options.window)}, worker))
        return client(done, (performance.now() - started) / 1000)
      }),
    )
    const published = pubResults.reduce((n, r) => n + r.events, 0)
    const publishSeconds = Math.max(...pubResults.map((r) => r.seconds), 0)

    // Receivers finish when they have every event, or when none arrives for drainMs (the rest is lost).
    const receivers = [...subscribers, ...consumers]
    const drainMs = options.drainMs ?? 2000
    const total = (list: Receiver[]) => list.reduce((n, r) => n + r.received, 0)
    let progress = total(receivers)
    let idleSince = Date.now()
    const pending = () =>
      subscribers.some((r) => r.received < published) ||
      (consumers.length > 0 && total(consumers) < published)
    while (pending() && Date.now() - idleSince < drainMs) {
      await sleep(10)
      const now = total(receivers)
      if (now !== progress) {
        progress = now
        idleSince = Date.now()
      }
    }
    for (const handle of consumerHandles) await handle.stop(5000)

    const result: BenchResult = {
      channel,
      prefix,
      size: options.size,
      rate: options.rate,
      window: options.window,
      publishers: role(pubResults),
    }
    const summarize = (list: Receiver[], expected: number) => {
      const merged = new Histogram()
      for (const r of list) merged.merge(r.histogram)
      const results = list.map((r) => r.result(publishSeconds))
      return {
        ...role(results),
        lost: Math.max(0, expected - results.reduce((n, r) => n + r.events, 0)),
        latencyMs: merged.summary(),
      }
    }
    if (subscribers.length > 0) result.subscribers = summarize(subscribers, published * subscribers.length)
    // Consumers of one handler share the work: together they should see every event once.
    if (consumers.length > 0) result.consumers = summarize(consumers, published)
    return result
  } finally {
    if (control) await cleanup(control, prefix).catch(() => {})
    for (const bus of buses) await bus.close().catch(() => {})
  }
}

/** Deletes every key under the bench prefix (SCAN + UNLINK, master by master on a cluster). */
async function cleanup(bus: RaptorBus, prefix: string): Promise<number> {
  const {scanKeys, unlinkKeys} = await import('../bus/cluster.js')
  let deleted = 0
  for await (const {node, keys} of scanKeys(bus.redis, `${prefix}:*`))
    deleted += await unlinkKeys(bus.redis, node, keys)
  return deleted
}
