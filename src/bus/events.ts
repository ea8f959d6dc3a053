import {randomUUID} from 'node:crypto'

import {z} from 'zod'

import {InvalidInputError, PayloadTooLargeError, SchemaViolationError, type SchemaIssue} from './errors.js'

/** Event priorities, lowest first. */
export const PRIORITIES = ['low', 'normal', 'high', 'critical'] as const

/** Priority of an event. @defaultValue `'normal'` */
export const PrioritySchema = z.enum(PRIORITIES)

/** Event type: 1–128 chars of `[A-Za-z0-9_.:-]`. */
export const EventTypeSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'type must be 1-128 characters of A-Z a-z 0-9 _ . : -')

/** Channel name: dot-separated lowercase segments of `[a-z0-9_-]`. */
export const ChannelNameSchema = z
  .string()
  .max(256)
  .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/, 'channel must be dot-separated lowercase segments of a-z 0-9 _ -')

/**
 * The raptor event envelope: a CloudEvents 1.0 structured-mode JSON object with the extensions
 * `channel`, `priority` and `correlationid`. Every event on the wire is one of these.
 */
export const EnvelopeSchema = z
  .object({
    specversion: z.literal('1.0'),
    id: z
      .string()
      .regex(
        /^evt-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        'id must be evt-<uuid v4>',
      ),
    type: EventTypeSchema,
    source: z.string().min(1).max(256),
    time: z.iso.datetime({offset: true}),
    datacontenttype: z.literal('application/json'),
    data: z.record(z.string(), z.unknown()),
    channel: ChannelNameSchema,
    priority: PrioritySchema.default('normal'),
    correlationid: z.string().min(1).max(256).optional(),
  })
  .meta({
    title: 'raptor event',
    description:
      'CloudEvents 1.0 structured-mode JSON envelope with the raptor extensions channel, priority, correlationid',
  })

/** A raptor event (the parsed envelope). */
export type RaptorEvent = z.infer<typeof EnvelopeSchema>
/** Event priority. */
export type Priority = z.infer<typeof PrioritySchema>
/** The payload of an event: a JSON object. */
export type Payload = RaptorEvent['data']

const ID_PATTERN = /^evt-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TYPE_PATTERN = /^[A-Za-z0-9_.:-]+$/
const CHANNEL_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/
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

/** Converts zod issues into raptor's short `{path, message}` form. */
export function toIssues(error: z.ZodError): SchemaIssue[] {
  return error.issues.map((issue) => ({path: issue.path.join('.') || '(root)', message: issue.message}))
}

/** Formats schema issues for a one-line message. */
export function formatIssues(issues: SchemaIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ')
}

/**
 * Builds and checks an envelope from publish input.
 * @throws InvalidInputError when a field of the envelope is malformed
 */
export function buildEnvelope(input: PublishInput, defaultSource: string): RaptorEvent {
  const payload = input.payload ?? {}
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new InvalidInputError('payload must be a JSON object, e.g. {"key":"value"}', {
      channel: input.channel,
    })
  }
  const candidate = {
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
  const quick = quickEnvelope(candidate)
  if (quick) return quick
  const result = EnvelopeSchema.safeParse(candidate)
  if (!result.success) {
    const issues = toIssues(result.error)
    throw new InvalidInputError(`invalid event: ${formatIssues(issues)}`, {channel: input.channel, issues})
  }
  return result.data
}

/** Result of parsing a stored or received envelope. */
export type ParsedEnvelope = {ok: true; event: RaptorEvent} | {ok: false; issues: SchemaIssue[]}

/** Parses envelope JSON text without throwing; used on everything read back from Redis. */
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
  const result = EnvelopeSchema.safeParse(value)
  return result.success ? {ok: true, event: result.data} : {ok: false, issues: toIssues(result.error)}
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

/** The JSON Schema of the envelope (draft 2020-12), as printed by `raptor schema`. */
export function envelopeJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(EnvelopeSchema, {io: 'input'}) as Record<string, unknown>
}
