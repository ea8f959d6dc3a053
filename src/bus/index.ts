/**
 * raptorbus — an event bus for multi-agent systems on Redis.
 *
 * ```ts
 * import {RaptorBus} from 'raptorbus'
 * const bus = await RaptorBus.connect({redisUrl: 'redis://127.0.0.1:6379/0'})
 * await bus.publish({channel: 'sys.alert.warning', type: 'disk_low', payload: {free: 0.05}})
 * ```
 * @packageDocumentation
 */
export {
  RaptorBus,
  getBus,
  type BusOptions,
  type ChannelInfo,
  type DlqApi,
  type LiveSubscribeOptions,
  type StreamCursor,
} from './bus.js'
export {
  BUILTIN_CHANNELS,
  DLQ_REASONS,
  DLQ_RETENTION_MS,
  GUILDS,
  HEARTBEAT_CHANNEL,
  ROUTING_DLQ_CHANNEL,
  Topology,
  assertChannelPattern,
  channelMatcher,
  type ChannelConfig,
  type ChannelSpec,
  type DlqReason,
} from './channels.js'
export {
  Dlq,
  formatDlqId,
  parseDlqId,
  type DlqEntry,
  type DlqFilter,
  type PurgeOptions,
  type PurgeResult,
  type RequeueOptions,
  type RequeueResult,
  type RequeueTarget,
  type SkippedEntry,
} from './dlq.js'
export {DEFAULT_MAX_PAYLOAD_BYTES, loadConfig, type RaptorConfig} from './config.js'
export {DEFAULT_REDIS_URL, redactUrl, type ConnectionOptions} from './connection.js'
export {parseDuration, formatDuration} from './durations.js'
export * from './errors.js'
export {
  EnvelopeSchema,
  PRIORITIES,
  envelopeJsonSchema,
  newEventId,
  parseEnvelope,
  type Payload,
  type PayloadSchema,
  type Priority,
  type PublishInput,
  type RaptorEvent,
} from './events.js'
export type {AgentInfo, HealthCheck, HealthOptions, HealthReport} from './health.js'
export type {ReplayWindow} from './history.js'
export {
  COUNTERS,
  toPrometheus,
  type BusMetrics,
  type ChannelMetrics,
  type CounterName,
  type Counters,
  type HandlerMetrics,
} from './metrics.js'
export type {ReplayToOptions, ReplayToResult} from './replay.js'
export type {LiveHandler, LiveMeta, SubscribeOptions, Subscription} from './live.js'
export {Consumer, type ConsumeOptions, type ConsumeOutcome, type Takeover} from './consumer.js'
export {
  HANDLER_DEFAULTS,
  backoffDelay,
  defineHandler,
  invokeHandler,
  resolveHandler,
  type AttemptResult,
  type BackoffOptions,
  type HandlerContext,
  type HandlerDefinition,
  type HandlerLogger,
  type ResolvedHandler,
} from './handler.js'
