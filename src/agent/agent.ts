import {hostname} from 'node:os'

import type {RaptorBus} from '../bus/bus.js'
import {HEARTBEAT_CHANNEL} from '../bus/channels.js'
import type {ConsumeOutcome, Consumer} from '../bus/consumer.js'
import {setLongInterval, type LongTimer} from '../bus/timers.js'
import type {AgentLog} from './log.js'
import type {LoadedHandler} from './plugins.js'
import {startMetricsServer, type MetricsServer} from './metrics-server.js'

declare module '../bus/scripts.js' {
  interface ScriptCommands {
    /** lua/heartbeat.lua: returns the server time in ms. */
    raptorHeartbeat(agents: string, id: string, json: string, pruneMs: number): Promise<number>
  }
}

/**
 * The metrics server binds every IPv4 interface by default, as Prometheus exporters do (node_exporter
 * listens on `:9100`): the scraper usually runs on another host. `--metrics-host 127.0.0.1` keeps it
 * local.
 */
export const DEFAULT_METRICS_HOST = '0.0.0.0'

/** Agents silent for a day are forgotten by the next heartbeat of any agent. */
const PRUNE_AFTER_MS = 24 * 3600 * 1000

/** Options of an agent. */
export interface AgentOptions {
  /** Agent id, in heartbeats and as the consumers' names. @defaultValue `<hostname>-<pid>` */
  id?: string
  /** Overrides every handler's `concurrency`. */
  concurrency?: number
  /** How often to publish a heartbeat on `sys.global.heartbeat`. @defaultValue 30000 */
  heartbeatIntervalMs?: number
  /** Serve `/metrics` (Prometheus) and `/healthz` on this port. */
  metricsPort?: number
  /** Address the metrics server binds. @defaultValue `0.0.0.0` (every IPv4 interface, as exporters do) */
  metricsHost?: string
  /** Events held by a dead consumer are reclaimed after this idle time. @defaultValue 20000 */
  reclaimAfterMs?: number
  log: AgentLog
}

/** Counts per handler, reported in heartbeats. */
export interface HandlerCounts {
  processed: number
  failed: number
  retried: number
  deadLettered: number
}

/** A long-lived host of handler plugins: one durable consumer per handler, heartbeats, metrics. */
export class Agent {
  readonly id: string
  private readonly consumers: Consumer[] = []
  private readonly counts = new Map<string, HandlerCounts>()
  private readonly started = Date.now()
  private heartbeatTimer?: LongTimer
  private metrics?: MetricsServer
  private stopping = false

  constructor(
    private readonly bus: RaptorBus,
    private readonly handlers: LoadedHandler[],
    private readonly options: AgentOptions,
  ) {
    this.id = options.id ?? `${hostname()}-${process.pid}`
    for (const h of handlers) this.counts.set(h.name, {processed: 0, failed: 0, retried: 0, deadLettered: 0})
  }

  /** Events being handled now, over all handlers. */
  get inFlight(): number {
    return this.consumers.reduce((n, c) => n + c.inFlightCount, 0)
  }

  /** Starts every consumer, the heartbeat and the metrics server. */
  async start(): Promise<void> {
    const {log} = this.options
    if (this.options.metricsPort !== undefined) {
      this.metrics = await startMetricsServer(
        this.options.metricsPort,
        this.options.metricsHost ?? DEFAULT_METRICS_HOST,
        () => this.healthy(),
        () => this.inFlight,
      )
      log.write('info', `metrics on http://${this.metrics.host}:${this.metrics.port}/metrics`, {
        metricsHost: this.metrics.host,
        metricsPort: this.metrics.port,
      })
    }
    for (const handler of this.handlers) {
      const definition = {...handler, concurrency: this.options.concurrency ?? handler.concurrency}
      const consumer = await this.bus.consume(definition, {
        consumerId: `${this.id}:${handler.name}`,
        reclaimAfterMs: this.options.reclaimAfterMs,
        logger: log.forHandler(handler.name),
        onOutcome: (o) => this.record(o),
        onError: (e) => log.write('warn', `consumer ${handler.name}: ${e.message}`, {handler: handler.name}),
      })
      this.consumers.push(consumer)
      log.write('info', `consuming ${handler.name}`, {
        handler: handler.name,
        channels: handler.channels,
        concurrency: definition.concurrency,
        plugin: handler.plugin,
      })
    }
    await this.heartbeat()
    const interval = this.options.heartbeatIntervalMs ?? 30_000
    // Chained timers: an interval past ~24.8 days (what one Node timer holds) is honoured too.
    this.heartbeatTimer = setLongInterval(
      () =>
        void this.heartbeat().catch((e) => log.write('warn', `heartbeat failed: ${(e as Error).message}`)),
      interval,
    )
    log.write('info', `agent ${this.id} started`, {
      agent: this.id,
      handlers: this.handlers.map((h) => h.name),
    })
  }

  private healthy(): {ok: boolean; detail: Record<string, unknown>} {
    const redis = this.bus.redis.status
    return {
      ok: !this.stopping && redis === 'ready',
      detail: {
        agent: this.id,
        redis,
        stopping: this.stopping,
        inFlight: this.inFlight,
        uptimeMs: Date.now() - this.started,
      },
    }
  }

  private record(o: ConsumeOutcome): void {
    const counts = this.counts.get(o.handler)
    if (!counts) return
    if (o.outcome === 'acked') counts.processed++
    if (o.outcome === 'retrying') {
      counts.failed++
      counts.retried++
    }
    if (o.outcome === 'dead-lettered') {
      counts.deadLettered++
      if (o.reason === 'max_retries_exceeded' || o.reason === 'processing_timeout') counts.failed++
    }
    this.metrics?.record(o)
    const fields = {handler: o.handler, event: o.eventId, type: o.type, attempt: o.attempt, ms: o.durationMs}
    const {log} = this.options
    if (o.outcome === 'acked') log.write('info', 'handled', fields)
    else if (o.outcome === 'retrying')
      log.write('warn', 'handler failed; retrying', {...fields, error: o.error, retryInMs: o.retryInMs})
    else if (o.outcome === 'dead-lettered')
      log.write('error', `dead-lettered (${o.reason})`, {...fields, error: o.error})
    else if (o.outcome === 'lost')
      log.write('warn', 'event taken over by another consumer; not acknowledged here', fields)
  }

  /** Totals over all handlers. */
  totals(): HandlerCounts {
    const t = {processed: 0, failed: 0, retried: 0, deadLettered: 0}
    for (const c of this.counts.values()) {
      t.processed += c.processed
      t.failed += c.failed
      t.retried += c.retried
      t.deadLettered += c.deadLettered
    }
    return t
  }

  /** Publishes a heartbeat event and registers this agent (stamped with Redis server time). */
  async heartbeat(): Promise<void> {
    const totals = this.totals()
    const payload = {
      agentId: this.id,
      handlers: this.handlers.map((h) => h.name),
      uptimeMs: Date.now() - this.started,
      processed: totals.processed,
      failed: totals.failed,
      inFlight: this.inFlight,
      pid: process.pid,
      hostname: hostname(),
    }
    const registration = {...payload, intervalMs: this.options.heartbeatIntervalMs ?? 30_000}
    await this.bus.redis.raptorHeartbeat(
      this.bus.keys.agents(),
      this.id,
      JSON.stringify(registration),
      PRUNE_AFTER_MS,
    )
    await this.bus.publish({channel: HEARTBEAT_CHANNEL, type: 'agent.heartbeat', source: this.id, payload})
  }

  /**
   * Drains: stops taking work, lets in-flight handlers finish and acks them within `graceMs`, then
   * unregisters. Events still running after the grace stay pending and are reclaimed elsewhere.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.heartbeatTimer?.clear()
    const inFlight = this.inFlight
    this.options.log.write('info', `draining: ${inFlight} in flight, grace ${graceMs} ms`, {
      agent: this.id,
      inFlight,
    })
    await Promise.all(this.consumers.map((c) => c.stop(graceMs)))
    await this.bus.redis.hdel(this.bus.keys.agents(), this.id).catch(() => {})
    await this.metrics?.close()
    this.options.log.write('info', `agent ${this.id} stopped`, {agent: this.id, ...this.totals()})
  }
}
