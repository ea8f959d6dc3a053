/**
 * Operations: `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus),
 * `/api/v1/bus/health` (the seed's health document), `/v1/health` and `/v1/metrics` (the CLI's JSON).
 */
import type {FastifyInstance} from 'fastify'
import type {JsonSchemaToTsProvider} from '@fastify/type-provider-json-schema-to-ts'

import type {HealthReport} from '../../bus/health.js'
import {toPrometheus} from '../../bus/prometheus.js'
import type {GatewayContext} from '../context.js'
import {errorBody, withDeadline} from '../errors.js'

/**
 * The seed's `/api/v1/bus/health` document (snake_case, as the seed's `health_check()` and
 * `get_metrics()` wrote it).
 */
export interface SeedHealth {
  status: HealthReport['status']
  /** Null when the gateway's Redis user may not run INFO (ACL). */
  redis_version: string | null
  connected_clients: number | null
  latency_ms: number
  used_memory_human: string | null
  uptime_seconds: number | null
  agents: {live: number; stale: number}
  metrics: {
    published: number
    received: number
    failed: number
    dead_lettered: number
    dlq_depth: number
    /** Null when the gateway's Redis user may not run CLIENT LIST (ACL). */
    active_subscriptions: number | null
  }
  checks: HealthReport['checks']
  timestamp: string
  error?: string
}

export function opsRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const r = app.withTypeProvider<JsonSchemaToTsProvider>()
  const deadline = <T>(work: Promise<T>, ms = ctx.limits.redisDeadlineMs) => withDeadline(work, ms)

  r.get('/healthz', async () => ({status: 'ok'}))

  r.get('/readyz', async (_request, reply) => {
    if (ctx.shutdown.aborted) return reply.code(503).send({status: 'unavailable', reason: 'shutting down'})
    try {
      await deadline(ctx.bus.redis.ping(), 1000)
      return {status: 'ready'}
    } catch (error) {
      return reply.code(503).send({status: 'unavailable', reason: errorBody(error).error.message})
    }
  })

  r.get('/metrics', async (_request, reply) => {
    const [bus, own] = await Promise.all([deadline(ctx.bus.metrics()).then(toPrometheus), ctx.stats.text()])
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(bus + own)
  })

  r.get(
    '/v1/metrics',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {channel: {type: 'string'}, access_token: {type: 'string'}},
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const {channel} = request.query
      return channel === undefined ? deadline(ctx.bus.metrics()) : deadline(ctx.bus.channelMetrics(channel))
    },
  )

  const thresholds = {
    type: 'object',
    properties: {
      maxLatency: {type: 'integer', minimum: 1},
      maxDlq: {type: 'integer', minimum: 0},
      maxLag: {type: 'integer', minimum: 0},
      access_token: {type: 'string'},
    },
    additionalProperties: false,
  } as const

  // As `raptor health --json`: 200 when healthy, 503 otherwise (the report is the body either way).
  r.get('/v1/health', {schema: {querystring: thresholds}}, async (request, reply) => {
    const {maxLatency, maxDlq, maxLag} = request.query
    const report = await deadline(ctx.bus.health({maxLatencyMs: maxLatency, maxDlq, maxLag}))
    return reply.code(report.status === 'healthy' ? 200 : 503).send(report)
  })

  // The seed's document: 200 while Redis answers (healthy or degraded), 503 when unhealthy or unreachable.
  r.get('/api/v1/bus/health', {schema: {querystring: thresholds}}, async (request, reply) => {
    const {maxLatency, maxDlq, maxLag} = request.query
    try {
      const [report, metrics] = await Promise.all([
        deadline(ctx.bus.health({maxLatencyMs: maxLatency, maxDlq, maxLag})),
        deadline(ctx.bus.metrics()),
      ])
      const g = metrics.global
      const body: SeedHealth = {
        status: report.status,
        redis_version: report.redisVersion,
        connected_clients: report.connectedClients,
        latency_ms: report.latencyMs,
        used_memory_human: report.usedMemoryHuman,
        uptime_seconds: report.uptimeSeconds,
        agents: metrics.agents,
        metrics: {
          published: g.counters.published,
          received: g.counters.liveDelivered + g.counters.delivered,
          failed: g.counters.failed,
          dead_lettered: g.counters.deadLettered,
          dlq_depth: g.dlqTotal,
          active_subscriptions: metrics.subscribers,
        },
        checks: report.checks,
        timestamp: metrics.time,
      }
      return reply.code(report.status === 'unhealthy' ? 503 : 200).send(body)
    } catch (error) {
      return reply.code(503).send({
        status: 'unhealthy',
        error: errorBody(error).error.message,
        timestamp: new Date().toISOString(),
      })
    }
  })
}
