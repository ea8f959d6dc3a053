/**
 * The envelope rules that the publish path needs, without zod: loading zod costs a one-shot CLI
 * command (`raptor publish`) about a hundred modules. The zod schemas in `events.ts` stay the
 * definition; they are loaded only when an envelope is not plainly valid (to word the error), or by
 * code that asks for them (history, live, `raptor schema`).
 */
import {randomUUID} from 'node:crypto'

import {PayloadTooLargeError, SchemaViolationError, type SchemaIssue} from './errors.js'
import type {RaptorEvent} from './events.js'

/** Event priorities, lowest first. */
export const PRIORITIES = ['low', 'normal', 'high', 'critical'] as const
/** Event priority. */
export type Priority = (typeof PRIORITIES)[number]
/** The payload of an event: a JSON object. */
export type Payload = Record<string, unknown>

export const TYPE_PATTERN = /^[A-Za-z0-9_.:-]+$/
export const CHANNEL_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/
export const ID_PATTERN = /^evt-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** True for a valid channel name (dot-separated lowercase segments of `[a-z0-9_-]`, at most 256 chars). */
export function isChannelName(name: string): boolean {
  return name.length <= 256 && CHANNEL_PATTERN.test(name)
}

/** Exactly what `Date.prototype.toISOString` writes; any other time text goes through zod. */
const ISO_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

const isText = (value: unknown, max: number): value is string =>
  typeof value === 'string' && value.length >= 1 && value.length <= max

/**
 * The envelope check of the publish and live paths, without zod: a plain-JS copy of
 * {@link EnvelopeSchema} for well-formed envelopes. It returns the event (unknown keys stripped, as
 * zod does) or `undefined` when anything is off, and the caller then runs the zod schema, which
 * decides and words the error. It never accepts what the schema rejects; it may defer to zod for
 * valid but unusual input (a time with an offset, a missing priority).
 */
export function quickEnvelope(value: unknown): RaptorEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  const {data, correlationid} = v
  if (
    v.specversion !== '1.0' ||
    typeof v.id !== 'string' ||
    !ID_PATTERN.test(v.id) ||
    !isText(v.type, 128) ||
    !TYPE_PATTERN.test(v.type) ||
    !isText(v.source, 256) ||
    typeof v.time !== 'string' ||
    !ISO_TIME_PATTERN.test(v.time) ||
    Number.isNaN(Date.parse(v.time)) ||
    v.datacontenttype !== 'application/json' ||
    typeof data !== 'object' ||
    data === null ||
    Array.isArray(data) ||
    Object.getPrototypeOf(data) !== Object.prototype ||
    typeof v.channel !== 'string' ||
    v.channel.length > 256 ||
    !CHANNEL_PATTERN.test(v.channel) ||
    !(PRIORITIES as readonly unknown[]).includes(v.priority) ||
    (correlationid !== undefined && !isText(correlationid, 256))
  )
    return undefined
  const event: RaptorEvent = {
    specversion: '1.0',
    id: v.id,
    type: v.type,
    source: v.source,
    time: v.time,
    datacontenttype: 'application/json',
    data: data as Record<string, unknown>,
    channel: v.channel,
    priority: v.priority as Priority,
  }
  if (correlationid !== undefined) event.correlationid = correlationid as string
  return event
}

/** What a publisher gives; the bus fills in the rest of the envelope. */
export interface PublishInput {
  /** Channel to publish on. */
  channel: string
  /** Event type. */
  type: string
  /** The payload: a JSON object. @defaultValue `{}` */
  payload?: Payload
  /** @defaultValue `'normal'` */
  priority?: Priority
  /** Publishing agent id. @defaultValue the bus's `source` option */
  source?: string
  /** Request id for request/response. */
  correlationId?: string
  /** Event id; normally left out so that a fresh `evt-<uuid>` is made. */
  id?: string
}

/** Returns a fresh event id: `evt-<uuid v4>`. */
export function newEventId(): string {
  return `evt-${randomUUID()}`
}

/** Formats schema issues for a one-line message. */
export function formatIssues(issues: SchemaIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ')
}

/**
 * A payload schema: anything with zod's `safeParse` (a zod schema from the config file, of any zod version).
 */
export interface PayloadSchema {
  safeParse(
    value: unknown,
  ):
    | {success: true; data?: unknown}
    | {success: false; error: {issues: {path: PropertyKey[]; message: string}[]}}
}

/** Checks a payload against its type's registered schema. @throws SchemaViolationError */
export function checkPayload(
  event: Pick<RaptorEvent, 'type' | 'data' | 'channel'>,
  schema: PayloadSchema | undefined,
): void {
  if (!schema) return
  const result = schema.safeParse(event.data)
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({
      path: i.path.map(String).join('.') || '(root)',
      message: i.message,
    }))
    throw new SchemaViolationError(
      `payload of type '${event.type}' fails its schema: ${formatIssues(issues)}`,
      issues,
      {
        channel: event.channel,
        type: event.type,
      },
    )
  }
}

/** Checks the serialized size of an event's payload. @throws PayloadTooLargeError */
export function checkSize(payloadBytes: number, limit: number, channel: string): void {
  if (payloadBytes > limit) throw new PayloadTooLargeError(payloadBytes, limit, {channel})
}

/**
 * The envelope of publish input when it is plainly valid, or `undefined` (then `buildEnvelope` of
 * `events.ts` checks it with zod and words the error).
 */
export function quickBuild(input: PublishInput, defaultSource: string): RaptorEvent | undefined {
  const candidate = candidateEnvelope(input, defaultSource)
  return candidate && quickEnvelope(candidate)
}

/** The envelope publish input asks for, unchecked; undefined when the payload is not a JSON object. */
export function candidateEnvelope(
  input: PublishInput,
  defaultSource: string,
): Record<string, unknown> | undefined {
  const payload = input.payload ?? {}
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined
  return {
    specversion: '1.0',
    id: input.id ?? newEventId(),
    type: input.type,
    source: input.source ?? defaultSource,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: payload,
    channel: input.channel,
    priority: input.priority ?? 'normal',
    ...(input.correlationId === undefined ? {} : {correlationid: input.correlationId}),
  }
}

/** Result of parsing a stored or received envelope. */
export type ParsedEnvelope = {ok: true; event: RaptorEvent} | {ok: false; issues: SchemaIssue[]}

let slowParse: ((value: unknown) => ParsedEnvelope) | undefined

/** Loads the zod schemas (once), so that `parseEnvelope` can word what is wrong with an envelope. */
export async function loadEnvelopeSchema(): Promise<void> {
  if (slowParse) return
  const {checkEnvelope} = await import('./events.js')
  slowParse = checkEnvelope
}

/**
 * Parses envelope JSON text without throwing; used on everything read back from Redis. Readers call
 * {@link loadEnvelopeSchema} first so that a bad envelope's issues come from the zod schema.
 */
export function parseEnvelope(json: string | undefined | null): ParsedEnvelope {
  if (json === undefined || json === null)
    return {ok: false, issues: [{path: '(root)', message: 'entry has no envelope field'}]}
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (error) {
    return {ok: false, issues: [{path: '(root)', message: `not JSON: ${(error as Error).message}`}]}
  }
  const quick = quickEnvelope(value)
  if (quick) return {ok: true, event: quick}
  if (slowParse) return slowParse(value)
  return {ok: false, issues: [{path: '(root)', message: 'not a valid raptor envelope'}]}
}
