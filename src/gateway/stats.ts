import {Counter, Gauge, Registry} from 'prom-client'

/** The live-stream transports. */
export type Transport = 'sse' | 'ws'

/**
 * The gateway's own figures (appended to the bus metrics on `/metrics`): open streams, events sent,
 * clients dropped and why, requests by route and status.
 */
export class GatewayStats {
  readonly registry = new Registry()
  // Per-event figures are plain numbers, read by prom-client only when scraped: a fan-out to a
  // thousand clients must not pay for a labelled metric update per event and client.
  private readonly open = {sse: 0, ws: 0}
  private readonly sentCount = {sse: 0, ws: 0}
  private readonly dropped = new Counter({
    name: 'raptor_gateway_clients_dropped_total',
    help: 'Live clients dropped by the gateway, by reason (slow_consumer, unresponsive).',
    labelNames: ['transport', 'reason'] as const,
    registers: [this.registry],
  })
  private readonly requests = new Counter({
    name: 'raptor_gateway_requests_total',
    help: 'HTTP requests answered, by route and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  })

  constructor() {
    const {open, sentCount} = this
    new Gauge({
      name: 'raptor_gateway_streams',
      help: 'Open live connections (SSE responses, WebSockets).',
      labelNames: ['transport'] as const,
      registers: [this.registry],
      collect() {
        for (const t of ['sse', 'ws'] as const) this.set({transport: t}, open[t])
      },
    })
    new Counter({
      name: 'raptor_gateway_stream_events_total',
      help: 'Events sent to live clients.',
      labelNames: ['transport'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const t of ['sse', 'ws'] as const) this.inc({transport: t}, sentCount[t])
      },
    })
  }

  /** Open live connections of both transports. */
  get openStreams(): number {
    return this.open.sse + this.open.ws
  }

  opened(transport: Transport): void {
    this.open[transport]++
  }

  closed(transport: Transport): void {
    this.open[transport]--
  }

  eventSent(transport: Transport, n = 1): void {
    this.sentCount[transport] += n
  }

  clientDropped(transport: Transport, reason: 'slow_consumer' | 'unresponsive'): void {
    this.dropped.inc({transport, reason})
  }

  request(method: string, route: string, status: number): void {
    this.requests.inc({method, route, status: String(status)})
  }

  /** Prometheus text of the gateway's figures. */
  text(): Promise<string> {
    return this.registry.metrics()
  }
}
