import {clockNode, isCluster, masters, type RedisClient} from './cluster.js'
import type {Keys} from './keys.js'
import {idTime} from './stream-ids.js'
import type {BusMetrics} from './metrics.js'

/** Outcome of one health check. */
export interface HealthCheck {
  name: string
  status: 'pass' | 'warn' | 'fail'
  detail: string
}

/** A live agent as seen through its heartbeats. */
export interface AgentInfo {
  id: string
  handlers: string[]
  /** Server time (ms) of its last heartbeat. */
  lastSeen: number
  /** Heartbeat interval it announced, in ms. */
  intervalMs: number
  /** Ms since its last heartbeat. */
  ageMs: number
  /** True when more than 3 heartbeat intervals have passed without one. */
  stale: boolean
  [key: string]: unknown
}

/** The health report of `bus.health()` and `raptor health --json`. */
export interface HealthReport {
  status: 'healthy' | 'degraded' | 'unhealthy'
  /** One server, or a Redis Cluster (the figures below are then over every master). */
  deployment: 'standalone' | 'cluster'
  /** Masters asked: 1 for one server. */
  masters: number
  /** The version (the versions, comma-separated, when a cluster's masters differ). */
  redisVersion: string
  /** Round trip of a PING; on a cluster, of the slowest master. */
  latencyMs: number
  /** Client connections (summed over masters). */
  connectedClients: number
  /** Memory used (summed over masters). */
  usedMemoryBytes: number
  usedMemoryHuman: string
  /** `maxmemory` (summed over masters; 0 when one of them has no limit). */
  maxMemoryBytes: number
  /** Uptime (of the most recently started master). */
  uptimeSeconds: number
  agents: AgentInfo[]
  checks: HealthCheck[]
}

/** Thresholds that turn a healthy bus degraded. */
export interface HealthOptions {
  /** Latency above which Redis counts as slow. @defaultValue 100 */
  maxLatencyMs?: number
  /** Total DLQ depth (every channel and reason) above which the bus is degraded. @defaultValue no limit */
  maxDlq?: number
  /** Consumer-group lag (of any handler on any channel) above which the bus is degraded. @defaultValue no limit */
  maxLag?: number
  /**
   * A handler whose oldest undelivered event has waited longer than this (ms) while no live agent
   * serves it is stalled (degraded): its lag only grows. @defaultValue 60000
   */
  maxWaitMs?: number
}

/** Parses one `XINFO GROUPS` reply into name → last-delivered-id. */
function lastDelivered(reply: unknown): Map<string, string> {
  const out = new Map<string, string>()
  for (const group of (reply as unknown[][]) ?? []) {
    const f: Record<string, unknown> = {}
    for (let i = 0; i + 1 < group.length; i += 2) f[String(group[i])] = group[i + 1]
    out.set(String(f.name), String(f['last-delivered-id'] ?? '0-0'))
  }
  return out
}

/**
 * The default `stalled` check: a consumer group with a backlog (lag > 0) whose oldest undelivered
 * event has waited more than `maxWaitMs`, while no live agent (by heartbeat) runs that handler, is
 * consumed by nobody: its lag can only grow. Library consumers keeping up have no old waiting event,
 * so they are not flagged even without heartbeats.
 */
export async function stalledCheck(
  redis: RedisClient,
  keys: Keys,
  metrics: BusMetrics,
  agents: readonly AgentInfo[],
  now: number,
  maxWaitMs = 60_000,
): Promise<HealthCheck> {
  const served = new Set(agents.filter((a) => !a.stale).flatMap((a) => a.handlers))
  const candidates = metrics.channels.flatMap((c) =>
    c.handlers
      .filter((h) => (h.lag ?? 1) > 0 && !served.has(h.handler))
      .map((h) => ({channel: c.channel, h})),
  )
  const stalled: string[] = []
  const byChannel = new Map<string, typeof candidates>()
  for (const cand of candidates) byChannel.set(cand.channel, [...(byChannel.get(cand.channel) ?? []), cand])
  for (const [channel, list] of byChannel) {
    const groups = lastDelivered(await redis.xinfo('GROUPS', keys.stream(channel)).catch(() => []))
    for (const {h} of list) {
      const last = groups.get(h.handler) ?? '0-0'
      const [first] = (await redis.xrange(keys.stream(channel), `(${last}`, '+', 'COUNT', 1)) as [
        string,
        string[],
      ][]
      if (!first) continue
      const waited = now - idTime(first[0])
      if (waited > maxWaitMs)
        stalled.push(
          `${h.handler}@${channel} (lag ${h.lag ?? '?'}, oldest waiting ${Math.round(waited / 1000)} s)`,
        )
    }
  }
  return {
    name: 'stalled',
    status: stalled.length > 0 ? 'warn' : 'pass',
    detail:
      stalled.length > 0
        ? `no live agent serves ${stalled.join(', ')}: start raptor agent with that handler`
        : `every backlog is being served (waiting limit ${Math.round(maxWaitMs / 1000)} s)`,
  }
}

/** The `dlq` and `lag` threshold checks, from a metrics snapshot. */
export function thresholdChecks(metrics: BusMetrics, options: HealthOptions): HealthCheck[] {
  const checks: HealthCheck[] = []
  if (options.maxDlq !== undefined) {
    const total = metrics.global.dlqTotal
    const by = Object.entries(metrics.global.dlqDepth)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ')
    checks.push({
      name: 'dlq',
      status: total > options.maxDlq ? 'warn' : 'pass',
      detail: `${total} dead letters${by ? ` (${by})` : ''} (limit ${options.maxDlq})`,
    })
  }
  if (options.maxLag !== undefined) {
    const over = metrics.channels.flatMap((c) =>
      c.handlers
        .filter((h) => h.lag !== null && h.lag > options.maxLag!)
        .map((h) => `${h.handler}@${c.channel} ${h.lag}`),
    )
    const worst = Math.max(0, ...metrics.channels.flatMap((c) => c.handlers.map((h) => h.lag ?? 0)))
    checks.push({
      name: 'lag',
      status: over.length > 0 ? 'warn' : 'pass',
      detail:
        over.length > 0
          ? `over ${options.maxLag}: ${over.join(', ')}`
          : `max lag ${worst} (limit ${options.maxLag})`,
    })
  }
  return checks
}

function infoField(info: string, field: string): string {
  const match = new RegExp(`^${field}:(.*)$`, 'm').exec(info)
  return match ? match[1].trim() : ''
}

/** Bytes as Redis's INFO writes them (`1.50M`), for a sum over masters. */
function humanBytes(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes}B` : `${value.toFixed(2)}${units[unit]}`
}

/** Reads the registered agents and flags the stale ones, by Redis server time. */
export async function readAgents(redis: RedisClient, keys: Keys, now: number): Promise<AgentInfo[]> {
  const raw = await redis.hgetall(keys.agents())
  const agents: AgentInfo[] = []
  for (const [id, json] of Object.entries(raw)) {
    try {
      const beat = JSON.parse(json) as {handlers?: string[]; lastSeen: number; intervalMs: number}
      const ageMs = Math.max(0, now - beat.lastSeen)
      agents.push({...beat, id, handlers: beat.handlers ?? [], ageMs, stale: ageMs > 3 * beat.intervalMs})
    } catch {
      // A malformed registration is not an agent; skip it.
    }
  }
  return agents.sort((a, b) => a.id.localeCompare(b.id))
}

/** Measures Redis and reads the agents; the caller adds threshold checks. */
export async function baseHealth(
  redis: RedisClient,
  keys: Keys,
  options: HealthOptions = {},
): Promise<HealthReport> {
  const nodes = masters(redis)
  const latencies = await Promise.all(
    nodes.map(async (node) => {
      const started = process.hrtime.bigint()
      await node.ping()
      return Number(process.hrtime.bigint() - started) / 1e6
    }),
  )
  const latencyMs = Math.max(...latencies)
  const [infos, [sec, usec]] = await Promise.all([
    Promise.all(nodes.map((node) => node.info())),
    clockNode(redis).time(),
  ])
  const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
  const cluster = isCluster(redis)
  const sum = (field: string) => infos.reduce((n, info) => n + Number(infoField(info, field) || 0), 0)
  const version = [...new Set(infos.map((info) => infoField(info, 'redis_version')))].join(', ')
  const where = cluster ? `, cluster of ${nodes.length} masters` : ''
  const agents = await readAgents(redis, keys, now)
  const maxLatency = options.maxLatencyMs ?? 100
  const checks: HealthCheck[] = [
    {name: 'redis', status: 'pass', detail: `reachable, version ${version}${where}`},
    {
      name: 'latency',
      status: latencyMs > maxLatency ? 'warn' : 'pass',
      detail: `${latencyMs.toFixed(2)} ms (limit ${maxLatency} ms)`,
    },
  ]
  const stale = agents.filter((a) => a.stale)
  checks.push({
    name: 'agents',
    status: stale.length > 0 ? 'warn' : 'pass',
    detail:
      agents.length === 0
        ? 'no agents registered'
        : `${agents.length - stale.length} live` +
          (stale.length > 0 ? `, stale: ${stale.map((a) => a.id).join(', ')}` : ''),
  })
  return {
    status: 'healthy',
    deployment: cluster ? 'cluster' : 'standalone',
    masters: nodes.length,
    redisVersion: version,
    latencyMs: Math.round(latencyMs * 1000) / 1000,
    connectedClients: sum('connected_clients'),
    usedMemoryBytes: sum('used_memory'),
    usedMemoryHuman: cluster ? humanBytes(sum('used_memory')) : infoField(infos[0], 'used_memory_human'),
    maxMemoryBytes: infos.some((info) => Number(infoField(info, 'maxmemory')) === 0) ? 0 : sum('maxmemory'),
    uptimeSeconds: Math.min(...infos.map((info) => Number(infoField(info, 'uptime_in_seconds')))),
    agents,
    checks,
  }
}

/** Derives the overall status from the checks: any fail → unhealthy, any warn → degraded. */
export function overallStatus(checks: readonly HealthCheck[]): HealthReport['status'] {
  if (checks.some((c) => c.status === 'fail')) return 'unhealthy'
  if (checks.some((c) => c.status === 'warn')) return 'degraded'
  return 'healthy'
}
