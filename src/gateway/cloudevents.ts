/**
 * CloudEvents HTTP protocol binding 1.0 (ingress): structured mode (`application/cloudevents+json`),
 * binary mode (`ce-*` headers, the body is the data) and batch mode
 * (`application/cloudevents-batch+json`). Every mode yields plain CloudEvent objects, and every one
 * of them becomes the library's publish input through the one function {@link toPublishInput}.
 */
import type {IncomingHttpHeaders} from 'node:http'

import {InvalidInputError} from '../bus/errors.js'
import type {CloudEventInput} from '../bus/envelope.js'

/** A CloudEvent as received: its attributes (lower-case names) and `data`. */
export type CloudEventIn = Record<string, unknown>

export const STRUCTURED = 'application/cloudevents+json'
export const BATCH = 'application/cloudevents-batch+json'

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0].trim().toLowerCase()
}

/**
 * Parses JSON text, refusing what JSON cannot carry exactly (an integer beyond ±2^53, a number that
 * overflows) rather than rounding it, and `__proto__` keys.
 * @throws InvalidInputError
 */
export function parseJsonExact(text: string, what = 'body'): unknown {
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new InvalidInputError(`${what}: the key "__proto__" is not allowed`)
      if (
        typeof value === 'number' &&
        (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value)))
      )
        throw new InvalidInputError(
          `${what}: the number at "${key}" cannot be kept exactly (beyond ±2^53 or out of range): send it as a string`,
        )
      return value
    })
  } catch (error) {
    if (error instanceof InvalidInputError) throw error
    throw new InvalidInputError(`${what} is not JSON: ${(error as Error).message}`)
  }
}

function asObject(value: unknown, what: string): CloudEventIn {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidInputError(`${what} must be a JSON object (a CloudEvent)`)
  return value as CloudEventIn
}

/** Structured mode: the body is the whole event. */
export function fromStructured(body: unknown): CloudEventIn {
  return asObject(body, 'the body')
}

/** Batch mode: the body is a JSON array of structured events. */
export function fromBatch(body: unknown): CloudEventIn[] {
  if (!Array.isArray(body)) throw new InvalidInputError('a batch must be a JSON array of CloudEvents')
  if (body.length === 0) throw new InvalidInputError('the batch is empty: send at least one CloudEvent')
  return body.map((e, i) => asObject(e, `batch event ${i + 1}`))
}

/**
 * Binary mode: attributes in `ce-<name>` headers (percent-decoded, per the binding), the body is the
 * data, and Content-Type is its `datacontenttype`.
 */
export function fromBinary(headers: IncomingHttpHeaders, body: unknown): CloudEventIn {
  const event: CloudEventIn = Object.create(null) as CloudEventIn
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith('ce-') || raw === undefined) continue
    const value = Array.isArray(raw) ? raw.join(',') : raw
    try {
      event[name.slice(3)] = decodeURIComponent(value)
    } catch {
      throw new InvalidInputError(`header ${name} is not validly percent-encoded`)
    }
  }
  if (headers['content-type'] !== undefined) event.datacontenttype = headers['content-type']
  if (body !== undefined) event.data = body
  return {...event}
}

/** True when the request carries a binary-mode CloudEvent. */
export function isBinary(headers: IncomingHttpHeaders): boolean {
  return headers['ce-specversion'] !== undefined
}

/**
 * THE one function from a received CloudEvent to what the library publishes: every door of the
 * gateway (structured, binary, batch) goes through it, so that the mapping is decided once. The
 * event goes to the library whole (`bus.publish` of a CloudEvent): every attribute — the producer's
 * id, time, subject, dataschema, extensions — is kept exactly, and the library's one rule of
 * validity decides what is accepted.
 *
 * The channel is the event's `channel` extension attribute, or `defaultChannel` (the `?channel=`
 * query parameter) when the event has none; the two must agree when both are given.
 * @throws InvalidInputError for what raptor cannot take (another specversion, binary data)
 */
export function toPublishInput(event: CloudEventIn, defaultChannel?: string): CloudEventInput {
  if (event.specversion !== '1.0')
    throw new InvalidInputError(
      `specversion must be "1.0" (got ${JSON.stringify(event.specversion ?? null)}): raptor speaks CloudEvents 1.0`,
    )
  if (event.data_base64 !== undefined)
    throw new InvalidInputError('data_base64 (binary data) is not supported: send the data as a JSON object')
  if (event.channel === undefined && defaultChannel === undefined)
    throw new InvalidInputError(
      'channel is required: set the CloudEvents extension attribute "channel" (binary mode: header ce-channel), or ?channel= on the URL',
    )
  if (defaultChannel !== undefined && event.channel !== undefined && event.channel !== defaultChannel)
    throw new InvalidInputError(
      `the event's channel '${String(event.channel)}' differs from ?channel=${defaultChannel}: give one`,
    )
  return (event.channel === undefined ? {...event, channel: defaultChannel} : event) as CloudEventInput
}
