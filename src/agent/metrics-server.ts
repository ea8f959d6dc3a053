import {createServer} from 'node:http'

import type {ConsumeOutcome} from '../bus/consumer.js'
import {InvalidInputError} from '../bus/errors.js'

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
 * keep start-up light). `/healthz` answers 200 while the agent is up and Redis is connected, else 503.
 */
export async function startMetricsServer(
  port: number,
  host: string,
  health: () => {ok: boolean; detail: Record<string, unknown>},
  inFlight: () => number,
): Promise<MetricsServer> {
  const {Registry, Counter, Gauge, Histogram, collectDefaultMetrics} = await import('prom-client')
  const registry = new Registry()
  collectDefaultMetrics({register: registry, prefix: 'raptor_agent_process_'})
  const events = new Counter({
    name: 'raptor_agent_events_total',
    help: 'Handler attempts by outcome (acked, retrying, dead-lettered, lost, skipped).',
    labelNames: ['handler', 'outcome', 'channel'] as const,
    registers: [registry],
  })
  const deadLettered = new Counter({
    name: 'raptor_agent_dead_lettered_total',
    help: 'Events dead-lettered by this agent, by reason.',
    labelNames: ['handler', 'reason'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'raptor_agent_handler_duration_seconds',
    help: 'Duration of handler attempts.',
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
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/metrics') {
      registry.metrics().then(
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
      events.inc({handler: o.handler, outcome: o.outcome, channel: o.channel})
      if (o.outcome === 'dead-lettered' && o.reason) deadLettered.inc({handler: o.handler, reason: o.reason})
      if (o.outcome !== 'skipped') duration.observe({handler: o.handler}, o.durationMs / 1000)
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
