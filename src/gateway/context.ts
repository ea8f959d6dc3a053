import type {FastifyRequest} from 'fastify'

import type {AgentLog} from '../agent/log.js'
import type {RaptorBus} from '../bus/bus.js'
import type {Fanout} from './fanout.js'
import type {FlushScheduler} from './flush.js'
import type {GatewayStats} from './stats.js'

/** Limits of the gateway (flags of `raptor serve`). */
export interface GatewayLimits {
  /** Bytes a live client may leave unread before it is dropped. @defaultValue 1 MiB */
  clientBufferBytes: number
  /** Live connections (SSE + WebSocket) at once; more are refused with 503. @defaultValue 10000 */
  maxStreams: number
  /** How long a request waits for Redis before answering 503. @defaultValue 5000 */
  redisDeadlineMs: number
  /** Keep-alive interval of live connections (SSE comment, WebSocket ping). @defaultValue 15000 */
  keepAliveMs: number
  /** How long a dropped client's socket may take to flush the reason before it is destroyed. @defaultValue 5000 */
  dropGraceMs: number
  /** How long a history backfill waits for a slow client to read before dropping it. @defaultValue 30000 */
  backfillWaitMs: number
}

export const DEFAULT_LIMITS: GatewayLimits = {
  clientBufferBytes: 1024 * 1024,
  maxStreams: 10_000,
  redisDeadlineMs: 5000,
  keepAliveMs: 15_000,
  dropGraceMs: 5000,
  backfillWaitMs: 30_000,
}

/** What every route of the gateway shares. */
export interface GatewayContext {
  bus: RaptorBus
  stats: GatewayStats
  log: AgentLog
  limits: GatewayLimits
  /** Fan-out groups of the live streams. */
  fanout: Fanout
  /** Batches the live clients' writes. */
  flusher: FlushScheduler
  /** Writes the access-log line of a request (when the access log is on). */
  access?: (request: FastifyRequest, status: number, ms: number) => void
  /** Aborted when the gateway shuts down: live streams end. */
  shutdown: AbortSignal
}
