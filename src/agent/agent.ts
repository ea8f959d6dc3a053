import {randomBytes} from 'node:crypto'
import {hostname} from 'node:os'

import type {RaptorBus} from '../bus/bus.js'
import {HEARTBEAT_CHANNEL} from '../bus/channels.js'
import type {ConsumeOutcome, Consumer} from '../bus/consumer.js'
import {InvalidInputError} from '../bus/errors.js'
import {checkHandlerChannels} from '../bus/handler.js'
import type {ChannelMetrics} from '../bus/metrics.js'
import {setLongInterval, type LongTimer} from '../bus/timers.js'
import type {AgentLog} from './log.js'
import type {LoadedHandler} from './plugins.js'
import {startMetricsServer, type MetricsServer} from './metrics-server.js'

declare module '../bus/scripts.js' {
  interface ScriptCommands {
    /** lua/heartbeat.lua: returns the server time in ms. */
    raptorHeartbeat(agents: string, id: string, json: string, pruneMs: number): Promise<number>
    /** lua/lease.lua: null when taken (or dropped), else [holder value, ms left]. */
    raptorLease(
      key: string,
      mode: 'take' | 'drop',
      value: string,
      ttlMs: number,
    ): Promise<[string, number] | null>
  }
}

/**
 * The metrics server binds every IPv4 interface by default, as Prometheus exporters do (node_exporter
 * listens on `:9100`): the scraper usually runs on another host. `--metrics-host 127.0.0.1` keeps it
 * local.
 */
export const DEFAULT_METRICS_HOST = '0.0.0.0'

/** How long an agent id stays taken after its agent stops renewing it (dies). */
export const ID_LEASE_MS = 15_000

/** The longest agent id. */
const MAX_ID_LENGTH = 256

/**
 * Checks an agent id: 1 to 256 characters, none of them whitespace or a control or format character.
 * The id names the agent in heartbeats, logs and consumer names, so a line break or an escape
 * sequence in it could forge log lines.
 * @throws InvalidInputError naming the flag
 */
export function checkAgentId(id: string, flag = '--id'): void {
  const chars = [...id]
  if (chars.length >= 1 && chars.length <= MAX_ID_LENGTH && /^[^\s\p{Cc}\p{Cf}]+$/u.test(id)) return
  const shown = JSON.stringify(chars.length > 40 ? chars.slice(0, 40).join('') + '…' : id)
  const why =
    chars.length === 0
      ? 'it is empty'
      : chars.length > MAX_ID_LENGTH
        ? `it is ${chars.length} characters long`
        : 'it contains whitespace or control characters'
  throw new InvalidInputError(
    `invalid ${flag} ${shown}: ${why}; use 1 to ${MAX_ID_LENGTH} printable characters without spaces (e.g. worker-1)`,
    {flag},
  )
}

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
  /** Called when the agent must stop: another agent took its id (e.g. after a long Redis outage). */
  onFatal?: (message: string) => void
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
  private leaseTimer?: NodeJS.Timeout
  private metrics?: MetricsServer
  private stopping = false
  /** This process's claim on the id (unique: a restarted agent is another holder). */
  private readonly lease: string

  constructor(
    private readonly bus: RaptorBus,
    private readonly handlers: LoadedHandler[],
    private readonly options: AgentOptions,
  ) {
    this.id = options.id ?? `${hostname()}-${process.pid}`
    checkAgentId(this.id)
    this.lease = JSON.stringify({
      pid: process.pid,
      host: hostname(),
      since: new Date(this.started).toISOString(),
      token: randomBytes(6).toString('hex'),
    })
    for (const h of handlers) this.counts.set(h.name, {processed: 0, failed: 0, retried: 0, deadLettered: 0})
  }

  /** Events being handled now, over all handlers. */
  get inFlight(): number {
    return this.consumers.reduce((n, c) => n + c.inFlightCount, 0)
  }

  /**
   * Starts every consumer, the heartbeat and the metrics server. Nothing is written to Redis before
   * the handlers' channels are checked and the id is taken.
   * @throws PluginError for a handler channel outside the topology; InvalidInputError when another
   *   live agent holds the id
   */
  async start(): Promise<void> {
    for (const h of this.handlers) checkHandlerChannels(h, this.bus.topology, `plugin ${h.plugin}`)
    await this.takeId()
    try {
      await this.startWork()
    } catch (error) {
      clearInterval(this.leaseTimer)
      await this.dropId().catch(() => {})
      throw error
    }
  }

  /** Takes the id lease, or refuses naming the live agent that holds it; then keeps renewing it. */
  private async takeId(): Promise<void> {
    const holder = await this.bus.redis.raptorLease(this.leaseKey(), 'take', this.lease, ID_LEASE_MS)
    if (holder) throw new InvalidInputError(this.inUse(holder), {agent: this.id})
    this.leaseTimer = setInterval(() => void this.renewId(), Math.floor(ID_LEASE_MS / 3))
    this.leaseTimer.unref()
  }

  private async renewId(): Promise<void> {
    try {
      const holder = await this.bus.redis.raptorLease(this.leaseKey(), 'take', this.lease, ID_LEASE_MS)
      if (!holder || this.stopping) return
      clearInterval(this.leaseTimer)
      const message = `${this.inUse(holder)} — it took the id while this agent could not renew it; stopping`
      this.options.log.write('error', message, {agent: this.id})
      this.options.onFatal?.(message)
    } catch (error) {
      this.options.log.write('warn', `cannot renew the lease on agent id: ${(error as Error).message}`)
    }
  }

  private dropId(): Promise<unknown> {
    return this.bus.redis.raptorLease(this.leaseKey(), 'drop', this.lease, 0)
  }

  private leaseKey(): string {
    return this.bus.keys.agentLease(this.id)
  }

  private inUse([value, msLeft]: [string, number]): string {
    let who = 'another agent'
    try {
      const h = JSON.parse(value) as {pid?: number; host?: string; since?: string}
      who = `a live agent: pid ${h.pid} on host ${h.host}, up since ${h.since}`
    } catch {
      // a foreign value: name no details
    }
    const lapse = Math.ceil(Math.max(0, Number(msLeft)) / 1000)
    return (
      `agent id '${this.id}' is in use by ${who}. Give this agent another --id; ` +
      `if that agent is dead, its claim lapses within ${lapse} s: start this one again then`
    )
  }

  private async startWork(): Promise<void> {
    const {log} = this.options
    if (this.options.metricsPort !== undefined) {
      this.metrics = await startMetricsServer(
        this.options.metricsPort,
        this.options.metricsHost ?? DEFAULT_METRICS_HOST,
        () => this.healthy(),
        () => this.inFlight,
        () => this.handlerState(),
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
        onTakeover: (t) =>
          log.write('info', 'took over an event its consumer left unfinished', {
            handler: t.handler,
            event: t.eventId,
            from: t.from,
            attempts: t.attempts,
          }),
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

  /** Lag, pending and DLQ depth of the channels this agent's handlers consume (for `/metrics`). */
  private async handlerState(): Promise<ChannelMetrics[]> {
    const names = new Set(this.handlers.map((h) => h.name))
    const {channels} = await this.bus.metrics()
    return channels
      .map((m) => ({...m, handlers: m.handlers.filter((h) => names.has(h.handler))}))
      .filter((m) => m.handlers.length > 0)
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
    const fields = {
      handler: o.handler,
      event: o.eventId,
      type: o.type,
      attempt: o.attempt,
      ms: o.durationMs,
      note: o.outcome === 'lost' ? undefined : o.note,
    }
    const {log} = this.options
    if (o.outcome === 'acked') log.write('info', 'handled', fields)
    else if (o.outcome === 'retrying')
      log.write('warn', 'handler failed; retrying', {...fields, error: o.error, retryInMs: o.retryInMs})
    else if (o.outcome === 'dead-lettered')
      log.write('error', `dead-lettered (${o.reason})`, {...fields, error: o.error})
    else if (o.outcome === 'lost')
      log.write('warn', o.note ?? 'not acknowledged here', {...fields, error: o.error})
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
    clearInterval(this.leaseTimer)
    await this.dropId().catch(() => {})
    await this.metrics?.close()
    this.options.log.write('info', `agent ${this.id} stopped`, {agent: this.id, ...this.totals()})
  }
}
