import {z} from 'zod'

import {
  CHANNEL_PATTERN,
  ID_PATTERN,
  PRIORITIES,
  TYPE_PATTERN,
  candidateEnvelope,
  formatIssues,
  quickEnvelope,
  type ParsedEnvelope,
  type PublishInput,
} from './envelope.js'
import {InvalidInputError, type SchemaIssue} from './errors.js'

export {
  PRIORITIES,
  checkPayload,
  checkSize,
  formatIssues,
  isChannelName,
  loadEnvelopeSchema,
  newEventId,
  parseEnvelope,
  quickBuild,
  quickEnvelope,
  type ParsedEnvelope,
  type Payload,
  type PayloadSchema,
  type PublishInput,
} from './envelope.js'

/** Priority of an event. @defaultValue `'normal'` */
export const PrioritySchema = z.enum(PRIORITIES)

/** Event type: 1–128 chars of `[A-Za-z0-9_.:-]`. */
export const EventTypeSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(TYPE_PATTERN, 'type must be 1-128 characters of A-Z a-z 0-9 _ . : -')

/** Channel name: dot-separated lowercase segments of `[a-z0-9_-]`. */
export const ChannelNameSchema = z
  .string()
  .max(256)
  .regex(CHANNEL_PATTERN, 'channel must be dot-separated lowercase segments of a-z 0-9 _ -')

/**
 * The raptor event envelope: a CloudEvents 1.0 structured-mode JSON object with the extensions
 * `channel`, `priority` and `correlationid`. Every event on the wire is one of these.
 */
export const EnvelopeSchema = z
  .object({
    specversion: z.literal('1.0'),
    id: z.string().regex(ID_PATTERN, 'id must be evt-<uuid v4>'),
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
export type {Priority} from './envelope.js'

/** Converts zod issues into raptor's short `{path, message}` form. */
export function toIssues(error: z.ZodError): SchemaIssue[] {
  return error.issues.map((issue) => ({path: issue.path.join('.') || '(root)', message: issue.message}))
}

/**
 * Builds and checks an envelope from publish input.
 * @throws InvalidInputError when a field of the envelope is malformed
 */
export function buildEnvelope(input: PublishInput, defaultSource: string): RaptorEvent {
  const candidate = candidateEnvelope(input, defaultSource)
  if (!candidate) {
    throw new InvalidInputError('payload must be a JSON object, e.g. {"key":"value"}', {
      channel: input.channel,
    })
  }
  const result = EnvelopeSchema.safeParse(candidate)
  if (!result.success) {
    const issues = toIssues(result.error)
    throw new InvalidInputError(`invalid event: ${formatIssues(issues)}`, {channel: input.channel, issues})
  }
  return result.data
}

/** Checks a parsed value with the envelope schema (the slow path of `parseEnvelope`). */
export function checkEnvelope(value: unknown): ParsedEnvelope {
  const quick = quickEnvelope(value)
  if (quick) return {ok: true, event: quick}
  const result = EnvelopeSchema.safeParse(value)
  return result.success ? {ok: true, event: result.data} : {ok: false, issues: toIssues(result.error)}
}

/** The JSON Schema of the envelope (draft 2020-12), as printed by `raptor schema`. */
export function envelopeJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(EnvelopeSchema, {io: 'input'}) as Record<string, unknown>
}
