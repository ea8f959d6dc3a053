/**
 * raptorbus — an event bus for multi-agent systems on Redis.
 *
 * ```ts
 * import {RaptorBus} from 'raptorbus'
 * const bus = await RaptorBus.connect({redisUrl: 'redis://127.0.0.1:6379/0'})
 * await bus.publish({channel: 'sys.alert.warning', type: 'disk_low', payload: {free: 0.05}})
 * ```
 *
 * This is the whole public face: the bus, the handler helper, the typed errors, the DLQ id helpers,
 * the envelope's JSON Schema and the types. Building blocks for tools live behind subpath exports:
 * `raptorbus/envelope` (validate, parse and serialize envelopes), `raptorbus/prometheus`
 * (`toPrometheus`), `raptorbus/handler` (run a handler once, as a consumer does),
 * `raptorbus/channels` (the topology) and `raptorbus/config` (`loadConfig`).
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
export {defineHandler} from './define-handler.js'
export * from './errors.js'
export {formatDlqId, parseDlqId} from './dlq.js'
export {envelopeJsonSchema} from './envelope.js'

export type {ChannelConfig, ChannelSpec, DlqReason} from './channels.js'
export type {RaptorConfig} from './config.js'
export type {ConnectionChange, ConnectionOptions} from './connection.js'
export type {ConsumeOptions, ConsumeOutcome, Consumer, Takeover} from './consumer.js'
export type {
  DlqEntry,
  DlqFilter,
  PurgeOptions,
  PurgeResult,
  RequeueOptions,
  RequeueResult,
  RequeueTarget,
  SkippedEntry,
} from './dlq.js'
export type {
  CloudEventInput,
  ExtensionValue,
  Payload,
  PayloadSchema,
  Priority,
  PublishInput,
  RaptorEvent,
} from './envelope.js'
export type {BackoffOptions, HandlerContext, HandlerDefinition, HandlerLogger} from './handler.js'
export type {AgentInfo, HealthCheck, HealthOptions, HealthReport} from './health.js'
export type {UnreadablePart} from './acl.js'
export type {ReplicaWait} from './sentinel.js'
export type {ReplayWindow} from './history.js'
export type {LiveGap, LiveHandler, LiveMeta, SubscribeOptions, Subscription} from './live.js'
export type {BusMetrics, ChannelMetrics, CounterName, Counters, HandlerMetrics} from './metrics.js'
export type {ReplayToOptions, ReplayToResult} from './replay.js'
