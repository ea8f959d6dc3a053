import {randomUUID} from 'node:crypto'

import {anySlotPipeline, masters} from '../../src/bus/cluster.js'
import type {RaptorBus} from '../../src/bus/index.js'
import {runCli, redisUrl, type CliOptions} from './index.js'

/** Runs the CLI against the test Redis under the bus's prefix. */
export function cli(bus: RaptorBus, args: string[], options: CliOptions = {}) {
  return runCli([...args, '--redis-url', redisUrl(), '--prefix', bus.keys.prefix], options)
}

/** Publishes `total` events numbered `payload.n` = 0… on a channel, 1000 to a pipelined call. */
export async function publishBurst(
  bus: RaptorBus,
  channel: string,
  total: number,
  type = 'tick',
  payload: Record<string, unknown> = {},
): Promise<void> {
  for (let i = 0; i < total; i += 1000) {
    const n = Math.min(1000, total - i)
    await bus.publishMany(
      Array.from({length: n}, (_, k) => ({channel, type, payload: {...payload, n: i + k}})),
    )
  }
}

/** A valid envelope (not stored anywhere). */
export function envelope(
  channel: string,
  type: string,
  data: Record<string, unknown> = {},
  time = new Date(),
) {
  return {
    specversion: '1.0',
    id: `evt-${randomUUID()}`,
    type,
    source: 'test',
    time: time.toISOString(),
    datacontenttype: 'application/json',
    data,
    channel,
    priority: 'normal',
  }
}

export interface DlqSeed {
  channel: string
  reason?: string
  handler?: string
  error?: string
  attempts?: number
  requeues?: number
  /** Server ms of the failure; also the stream id's time. @defaultValue now (auto id) */
  failedAt?: number
  /** The stored `e`: an envelope object, or raw text. @defaultValue a fresh envelope on `channel` */
  event?: Record<string, unknown> | string
}

/**
 * Writes DLQ entries with exactly the fields of docs/design.md, as the dead-letter script does.
 * @returns the entries' stream ids
 */
export async function addDlq(bus: RaptorBus, seeds: DlqSeed[]): Promise<string[]> {
  // Entries of several channels: on a cluster each goes to its own master.
  const pipeline = anySlotPipeline(bus.redis)
  const now = Date.now()
  for (const s of seeds) {
    const reason = s.reason ?? 'max_retries_exceeded'
    const dlqChannel = reason === 'routing_error' ? 'sys.dlq.routing_error' : s.channel
    const e = s.event ?? envelope(s.channel, 'failed_thing')
    const failedAt = s.failedAt ?? now
    pipeline.xadd(
      bus.keys.dlq(dlqChannel, reason as 'max_retries_exceeded'),
      s.failedAt === undefined ? '*' : `${s.failedAt}-*`,
      'e',
      typeof e === 'string' ? e : JSON.stringify(e),
      'reason',
      reason,
      'channel',
      s.channel,
      'handler',
      s.handler ?? '',
      'error',
      s.error ?? 'boom',
      'attempts',
      String(s.attempts ?? 3),
      'failedAt',
      String(failedAt),
      'sid',
      '',
      'requeues',
      String(s.requeues ?? 0),
    )
  }
  const results = (await pipeline.exec()) ?? []
  return results.map(([error, id]) => {
    if (error) throw error
    return id as string
  })
}

/** Every key under the prefix with its serialized value (DUMP): equal dumps mean nothing changed. */
export async function keyDump(bus: RaptorBus): Promise<Record<string, string>> {
  const perMaster = await Promise.all(masters(bus.redis).map((m) => m.keys(`${bus.keys.prefix}:*`)))
  const keys = perMaster.flat().sort()
  const dump: Record<string, string> = {}
  for (const key of keys) dump[key] = ((await bus.redis.dumpBuffer(key)) ?? Buffer.alloc(0)).toString('hex')
  return dump
}

/** Fields of a flat stream entry. */
export function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1]
  return out
}

/** A stream entry: its id and its fields. */
export type StreamEntry = {id: string} & Record<string, string>

/** Every entry of a stream as fields. */
export async function streamEntries(bus: RaptorBus, key: string): Promise<StreamEntry[]> {
  const entries = (await bus.redis.xrange(key, '-', '+')) as [string, string[]][]
  return entries.map(([id, flat]) => ({...fields(flat), id}))
}
