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
