/**
 * The bus's metrics in the Prometheus text exposition format, through prom-client (loaded only by
 * the code that renders them: `raptor metrics --format prometheus`, the agent's `/metrics`).
 * Published as `raptorbus/prometheus`.
 */
import {Counter, Gauge, Registry} from 'prom-client'

import {DLQ_REASONS, ROUTING_DLQ_CHANNEL, type DlqReason} from './channels.js'
import {COUNTERS, type BusMetrics, type ChannelMetrics, type CounterName} from './metrics.js'

export {COUNTERS} from './metrics.js'

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
}

const COUNTER_HELP: Record<CounterName, string> = {
  published: 'Events published',
  liveDelivered: 'Live (pub/sub) deliveries',
  delivered: 'Events handed to handlers, redeliveries included',
  acked: 'Events acknowledged by handlers',
  failed: 'Handler attempts that threw or timed out',
  retried: 'Handler retries',
  deadLettered: 'Events dead-lettered',
  duplicates: 'Deliveries after a reclaim from another consumer',
  requeued: 'Dead letters requeued',
  trimmedWhilePending: 'Pending events whose history retention trimmed before their outcome',
}

/** Counters a handler has: publishing and live fan-out belong to the channel alone. */
const HANDLER_COUNTERS = COUNTERS.filter((c) => c !== 'published' && c !== 'liveDelivered')

/**
 * The DLQ reasons a channel can have entries of: routing errors are parked under their own
 * pseudo-channel only; the other reasons come from handlers, so a channel has them once a handler
 * consumes it (or an entry is there anyway).
 */
function dlqReasons(m: ChannelMetrics): DlqReason[] {
  if (m.channel === ROUTING_DLQ_CHANNEL) return ['routing_error']
  return DLQ_REASONS.filter(
    (r) => r !== 'routing_error' && (m.handlers.length > 0 || m.dlqDepth[r] > 0),
  ).concat(m.dlqDepth.routing_error > 0 ? ['routing_error'] : [])
}

/** A registry with the gauges of handler state (lag, pending, requeue length) and DLQ depth. */
export function stateGauges(registry: Registry, channels: readonly ChannelMetrics[]): void {
  const registers = [registry]
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({name, help, labelNames, registers})
  const lag = gauge('raptor_consumer_lag', 'Entries not yet delivered to the handler.', [
    'channel',
    'handler',
  ])
  const pending = gauge('raptor_consumer_pending', 'Entries delivered, not yet acknowledged.', [
    'channel',
    'handler',
  ])
  const requeue = gauge('raptor_requeue_length', 'Entries in the handler requeue stream.', [
    'channel',
    'handler',
  ])
  const dlq = gauge('raptor_dlq_depth', 'Entries in the dead-letter queue.', ['channel', 'reason'])
  for (const m of channels) {
    for (const h of m.handlers) {
      const labels = {channel: m.channel, handler: h.handler}
      if (h.lag !== null) lag.set(labels, h.lag)
      pending.set(labels, h.pending)
      requeue.set(labels, h.requeueLength)
    }
    for (const r of dlqReasons(m)) dlq.set({channel: m.channel, reason: r}, m.dlqDepth[r])
  }
}

/**
 * Renders metrics in the Prometheus text exposition format (with `# HELP` and `# TYPE`). Labels:
 * `channel`, and `handler` or `reason` where they apply. Every series means something: handler
 * counters are the ones handlers move, and a DLQ depth is given for the reasons a channel can have.
 */
export async function toPrometheus(metrics: BusMetrics | {channels: ChannelMetrics[]}): Promise<string> {
  const registry = new Registry()
  const registers = [registry]
  const hasHandlers = metrics.channels.some((m) => m.handlers.length > 0)
  for (const c of COUNTERS) {
    const channel = new Counter({
      name: `raptor_${snake(c)}_total`,
      help: `${COUNTER_HELP[c]}, per channel.`,
      labelNames: ['channel'],
      registers,
    })
    for (const m of metrics.channels) channel.inc({channel: m.channel}, m.counters[c])
  }
  if (hasHandlers) {
    for (const c of HANDLER_COUNTERS) {
      const handler = new Counter({
        name: `raptor_handler_${snake(c)}_total`,
        help: `${COUNTER_HELP[c]}, per channel and handler.`,
        labelNames: ['channel', 'handler'],
        registers,
      })
      for (const m of metrics.channels)
        for (const h of m.handlers) handler.inc({channel: m.channel, handler: h.handler}, h.counters[c])
    }
  }
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({name, help, labelNames, registers})
  const length = gauge('raptor_stream_length', 'Entries in the channel history stream.', ['channel'])
  const retention = gauge('raptor_retention_seconds', 'History retention of the channel.', ['channel'])
  for (const m of metrics.channels) {
    length.set({channel: m.channel}, m.streamLength)
    if (m.retentionMs !== null) retention.set({channel: m.channel}, m.retentionMs / 1000)
  }
  stateGauges(registry, metrics.channels)
  if ('subscribers' in metrics) {
    // Unknown to a user without CLIENT LIST (ACL): left out rather than reported as 0.
    if (metrics.subscribers !== null)
      gauge('raptor_live_subscribers', 'Live subscriber connections.', []).set(metrics.subscribers)
    const agents = gauge('raptor_agents', 'Registered agents by heartbeat state.', ['state'])
    agents.set({state: 'live'}, metrics.agents.live)
    agents.set({state: 'stale'}, metrics.agents.stale)
  }
  return registry.metrics()
}
