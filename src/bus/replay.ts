import {assertChannelName, type Topology} from './channels.js'
import {RoutingError} from './errors.js'
import type {RaptorEvent} from './envelope.js'
import type {History, ReplayWindow} from './history.js'
import type {PreparedEvent, Publisher} from './publisher.js'

/** Options of `bus.replayTo`. */
export interface ReplayToOptions {
  /** Most events published per second; unlimited events go out in pipelined batches. @defaultValue unlimited */
  rate?: number
  /** Called after each write with the number of events published so far. */
  onProgress?: (published: number) => void
  /** Stops the replay (between events) when aborted; what was published stays published. */
  signal?: AbortSignal
}

/** Outcome of `bus.replayTo`. */
export interface ReplayToResult {
  /** The channel read. */
  channel: string
  /** The channel written to. */
  toChannel: string
  /** Events published anew. */
  republished: number
  /** Entries in the window that were not valid events (skipped). */
  skipped: number
}

/** Events per pipelined round trip when no rate is set. */
const BATCH = 500

/**
 * Re-publishes a channel's history onto another channel: each event becomes a new event (new id,
 * same type, payload, priority, source and correlation id). The window's end is pinned to the
 * server time at the start, so replaying a channel onto itself terminates.
 * @throws RoutingError when `toChannel` is outside the topology (nothing is published or parked)
 */
export async function replayTo(
  history: History,
  publisher: Publisher,
  topology: Topology,
  channel: string,
  toChannel: string,
  window: ReplayWindow,
  options: ReplayToOptions = {},
): Promise<ReplayToResult> {
  assertChannelName(toChannel)
  if (!topology.resolve(toChannel)) throw new RoutingError(toChannel, topology.nearest(toChannel), false)
  const now = await history.serverTime()
  const until = window.until === undefined ? now : Math.min(now, +window.until)
  const result: ReplayToResult = {channel, toChannel, republished: 0, skipped: 0}
  const intervalMs = options.rate && options.rate > 0 ? 1000 / options.rate : 0
  let started: number | undefined
  let batch: PreparedEvent[] = []
  const flush = async () => {
    if (batch.length === 0) return
    const ids = await publisher.write(batch)
    batch = []
    result.republished += ids.length
    options.onProgress?.(result.republished)
  }
  const copy = async (event: RaptorEvent) =>
    (await publisher.prepare({
      channel: toChannel,
      type: event.type,
      payload: event.data,
      priority: event.priority,
      source: event.source,
      correlationId: event.correlationid,
    })) as PreparedEvent
  for await (const event of history.events(channel, {...window, until}, () => result.skipped++)) {
    if (options.signal?.aborted) break
    batch.push(await copy(event))
    if (intervalMs > 0) {
      // Pace against the first event's time, not the previous event's, so that slow writes do not
      // lower the rate, and a slow first read does not cause a burst to catch up.
      started ??= Date.now()
      const due = started + (result.republished + batch.length - 1) * intervalMs
      const wait = due - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      await flush()
    } else if (batch.length >= BATCH) await flush()
  }
  await flush()
  return result
}
