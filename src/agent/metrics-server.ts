import {createServer} from 'node:http'

import type {ConsumeOutcome} from '../bus/consumer.js'
import {InvalidInputError} from '../bus/errors.js'
import type {ChannelMetrics} from '../bus/metrics.js'

/** The agent's HTTP endpoint: `/metrics` (Prometheus text format) and `/healthz`. */
export interface MetricsServer {
  port: number
  /** The address it is bound to. */
  host: string
  record(outcome: ConsumeOutcome): void
  close(): Promise<void>
}

/**
 * Serves the agent's own metrics with prom-client (imported only when the port is asked for, to
 * keep start-up light): the standard Node.js process metrics (`process_*`, `nodejs_*`, unprefixed so
 * that the usual dashboards find them), this agent's handler outcomes and attempt durations, and the
 * state of its handlers read from Redis at each scrape (`raptor_consumer_lag`,
 * `raptor_consumer_pending`, `raptor_requeue_length`, `raptor_dlq_depth` of their channels, named as
 * in `raptor metrics --format prometheus`). `/healthz` answers 200 while the agent is up and Redis
 * is connected, else 503.
 */
export async function startMetricsServer(
  port: number,
  host: string,
  health: () => {ok: boolean; detail: Record<string, unknown>},
  inFlight: () => number,
  state: () => Promise<ChannelMetrics[]>,
): Promise<MetricsServer> {
  const [{Registry, Counter, Gauge, Histogram, collectDefaultMetrics}, {stateGauges}] = await Promise.all([
    import('prom-client'),
    import('../bus/prometheus.js'),
  ])
  const registry = new Registry()
  collectDefaultMetrics({register: registry})
  const events = new Counter({
    name: 'raptor_agent_events_total',
    help: 'Handler attempts by outcome (acked, retrying, dead-lettered with its reason, lost, skipped).',
    labelNames: ['handler', 'channel', 'outcome', 'reason'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'raptor_agent_handler_duration_seconds',
    help: 'How long one handler attempt ran (attempts that never reached the handler are not counted).',
    labelNames: ['handler'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [registry],
  })
  new Gauge({
    name: 'raptor_agent_in_flight',
    help: 'Events being handled right now.',
    registers: [registry],
    collect() {
      this.set(inFlight())
    },
  })
  /** The agent's registry and, read now, the state of its handlers and their DLQs. */
  const scrape = async () => {
    const current = new Registry()
    stateGauges(current, await state())
    return Registry.merge([registry, current]).metrics()
  }
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/metrics') {
      scrape().then(
        (text) => {
          res.writeHead(200, {'content-type': registry.contentType})
          res.end(text)
        },
        (error: Error) => {
          res.writeHead(500)
          res.end(error.message)
        },
      )
      return
    }
    if (path === '/healthz') {
      const {ok, detail} = health()
      res.writeHead(ok ? 200 : 503, {'content-type': 'application/json'})
      res.end(JSON.stringify({status: ok ? 'ok' : 'unavailable', ...detail}))
      return
    }
    res.writeHead(404, {'content-type': 'text/plain'})
    res.end('not found: try /metrics or /healthz\n')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new InvalidInputError(`--metrics-port ${port} is already in use: pick another port`)
          : error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN'
            ? new InvalidInputError(
                `--metrics-host ${host} is not an address of this machine (${error.code}): use 127.0.0.1, 0.0.0.0 or one of its interfaces`,
              )
            : error,
      ),
    )
    server.listen(port, host, () => resolve())
  })
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : port,
    host: typeof address === 'object' && address ? address.address : host,
    record(o) {
      const labels = {handler: o.handler, channel: o.channel, outcome: o.outcome}
      events.inc(o.outcome === 'dead-lettered' && o.reason ? {...labels, reason: o.reason} : labels)
      if (o.ran) duration.observe({handler: o.handler}, o.durationMs / 1000)
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
