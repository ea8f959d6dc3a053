/**
 * The raptor event envelope, in one module: its rules, the one validator every path uses (publish,
 * history, live, durable consume), the zod schema that states the same rules for types and JSON
 * Schema, building an envelope from publish input or a whole CloudEvent, and the serializer.
 *
 * The validator ({@link checkEnvelope}) is plain JavaScript: loading zod costs a one-shot command
 * about a hundred modules, and reading events must not depend on whether zod happens to be loaded.
 * The zod schema ({@link loadEnvelopeSchema}) is loaded only by code that asks for it (`raptor
 * schema`, the JSON Schema); a property test (test/bus/envelope.test.ts) shows that both accept
 * exactly the same values, and that {@link serializeEnvelope} writes exactly `JSON.stringify`.
 */
import type {z} from 'zod'

import {InvalidInputError, PayloadTooLargeError, SchemaViolationError, type SchemaIssue} from './errors.js'
import {newEventId} from './event-ids.js'

export {newEventId}

/** Event priorities, lowest first. */
export const PRIORITIES = ['low', 'normal', 'high', 'critical'] as const
/** Event priority (an absent priority means `normal`). */
export type Priority = (typeof PRIORITIES)[number]
/** The payload of an event: a JSON object. */
export type Payload = Record<string, unknown>
/** The value of a CloudEvents extension attribute. */
export type ExtensionValue = string | number | boolean

export const TYPE_PATTERN = /^[A-Za-z0-9_.:-]+$/
export const CHANNEL_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/
/** A CloudEvents attribute name: lowercase ASCII letters and digits (raptor allows up to 64). */
export const ATTRIBUTE_NAME_PATTERN = /^[a-z0-9]{1,64}$/
/** Longest `id`, `source` and `correlationid`. */
export const MAX_ID_LENGTH = 256
/** Longest `subject`, `dataschema`, trace context and string extension value. */
export const MAX_TEXT_LENGTH = 4096
/** Deepest nesting of objects and arrays in `data` (`data` itself is level 1). */
export const MAX_DATA_DEPTH = 128
/** CloudEvents Integer: a signed 32-bit whole number. */
const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1

/**
 * RFC 3339 `date-time` (any precision, `Z` or a numeric offset); the field ranges are checked by
 * {@link isRfc3339}.
 */
const RFC3339_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,30})?([Zz]|[+-](\d{2}):(\d{2}))$/
/** A JSON media type: `application/json`, `text/json`, `application/<x>+json`, with parameters. */
const JSON_MEDIA_TYPE = /^(application|text)\/([A-Za-z0-9!#$&^_.+-]+\+)?json(\s*;.*)?$/i
/**
 * What a CloudEvents String may not contain: control characters (U+0000–U+001F, U+007F–U+009F),
 * Unicode noncharacters, and unpaired surrogates (which a `u` regex sees as code points of category Cs).
 */
const NOT_CE_TEXT = /[\p{Cc}\p{Cs}\p{Noncharacter_Code_Point}]/u

/** True for a valid channel name (dot-separated lowercase segments of `[a-z0-9_-]`, at most 256 chars). */
export function isChannelName(name: string): boolean {
  return name.length <= 256 && CHANNEL_PATTERN.test(name)
}

/** True for a CloudEvents String of 1..max characters: printable, well-formed Unicode. */
function isCeText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= max && !NOT_CE_TEXT.test(value)
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** True for an RFC 3339 timestamp whose fields are in range (a leap second `:60` is allowed). */
export function isRfc3339(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 64) return false
  const m = RFC3339_PATTERN.exec(value)
  if (!m) return false
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 && leap ? 29 : DAYS[month - 1]
  if (month < 1 || month > 12 || day < 1 || day > days) return false
  if (hour > 23 || minute > 59 || second > 60) return false
  return m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER

/**
 * What is wrong with a JSON value nested in `data`, if anything: too deep, a number that is not
 * finite, or an integer beyond ±2^53 written as an integer (it would not read back the same).
 * Integers from 1e21 up are written in exponent form by JSON.stringify, so they are floats on the wire.
 */
function dataValueIssue(value: unknown, path: string, depth: number): SchemaIssue | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      return {path, message: `${value} is not a finite number: JSON cannot carry it`}
    const size = Math.abs(value)
    if (size > MAX_SAFE && size < 1e21 && Number.isInteger(value))
      return {
        path,
        message: `integer ${value} is beyond ±2^53 and cannot round-trip through JSON exactly: send it as a string`,
      }
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  if (depth >= MAX_DATA_DEPTH)
    return {
      path: path.length > 60 ? `${path.slice(0, 59)}…` : path,
      message: `nests deeper than ${MAX_DATA_DEPTH} levels: flatten the payload`,
    }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const issue = dataValueIssue(value[i], `${path}.${i}`, depth + 1)
      if (issue) return issue
    }
    return undefined
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    const issue = dataValueIssue((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1)
    if (issue) return issue
  }
  return undefined
}

/** What is wrong with `data` as read back from JSON, if anything. */
function dataIssue(data: unknown): SchemaIssue | undefined {
  if (!isPlainObject(data)) return {path: 'data', message: 'must be a JSON object, e.g. {"key":"value"}'}
  return dataValueIssue(data, 'data', 0)
}

const CE_TEXT = 'must be 1-%d characters without control characters, noncharacters or unpaired surrogates'
const textMessage = (max: number) => CE_TEXT.replace('%d', String(max))

/** One attribute's rule: whether it is required, and what is wrong with a value (undefined: nothing). */
interface AttributeRule {
  required: boolean
  check(value: unknown): string | undefined
}

const text =
  (max: number) =>
  (value: unknown): string | undefined =>
    isCeText(value, max) ? undefined : textMessage(max)

/** The attributes raptor knows, in the order raptor writes them. Any other is an extension. */
const ATTRIBUTES = new Map<string, AttributeRule>([
  ['specversion', {required: true, check: (v) => (v === '1.0' ? undefined : 'must be "1.0"')}],
  ['id', {required: true, check: text(MAX_ID_LENGTH)}],
  [
    'type',
    {
      required: true,
      check: (v) =>
        typeof v === 'string' && v.length >= 1 && v.length <= 128 && TYPE_PATTERN.test(v)
          ? undefined
          : 'type must be 1-128 characters of A-Z a-z 0-9 _ . : -',
    },
  ],
  ['source', {required: true, check: text(MAX_ID_LENGTH)}],
  [
    'time',
    {
      required: true,
      check: (v) =>
        isRfc3339(v) ? undefined : 'must be an RFC 3339 timestamp, e.g. 2026-11-29T07:00:00Z or …+02:00',
    },
  ],
  [
    'datacontenttype',
    {
      required: false,
      check: (v) =>
        typeof v === 'string' && JSON_MEDIA_TYPE.test(v)
          ? undefined
          : 'must be a JSON media type (application/json)',
    },
  ],
  [
    'dataschema',
    {
      required: false,
      check: (v) => (isCeText(v, MAX_TEXT_LENGTH) && URL.canParse(v) ? undefined : 'must be an absolute URI'),
    },
  ],
  ['subject', {required: false, check: text(MAX_TEXT_LENGTH)}],
  [
    'channel',
    {
      required: true,
      check: (v) =>
        typeof v === 'string' && isChannelName(v)
          ? undefined
          : 'channel must be dot-separated lowercase segments of a-z 0-9 _ -',
    },
  ],
  [
    'priority',
    {
      required: false,
      check: (v) =>
        (PRIORITIES as readonly unknown[]).includes(v)
          ? undefined
          : `must be one of ${PRIORITIES.join(', ')}`,
    },
  ],
  ['correlationid', {required: false, check: text(MAX_ID_LENGTH)}],
  ['traceparent', {required: false, check: text(MAX_TEXT_LENGTH)}],
  ['tracestate', {required: false, check: text(MAX_TEXT_LENGTH)}],
  // data is checked apart (last, as raptor writes it), see dataIssue.
])

/** The rules as an array (iterated on every event). */
const RULES = [...ATTRIBUTES]

/** What is wrong with an extension attribute's value: a String, an Integer (32-bit) or a Boolean. */
function extensionIssue(value: unknown): string | undefined {
  if (typeof value === 'boolean') return undefined
  if (typeof value === 'number')
    return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX
      ? undefined
      : 'must be a string, a 32-bit integer or a boolean (CloudEvents type system)'
  if (typeof value === 'string')
    return isCeText(value, MAX_TEXT_LENGTH) ? undefined : textMessage(MAX_TEXT_LENGTH)
  return 'must be a string, a 32-bit integer or a boolean (CloudEvents type system)'
}

/**
 * The issues of every attribute but `data`'s contents (`data` must be a plain object). An absent
 * optional attribute is absent or `undefined`.
 */
function attributeIssues(v: Record<string, unknown>): SchemaIssue[] {
  let issues: SchemaIssue[] | undefined
  const add = (path: string, message: string) => (issues ??= []).push({path, message})
  for (let i = 0; i < RULES.length; i++) {
    const [name, rule] = RULES[i]
    const value = v[name]
    if (value === undefined) {
      if (rule.required) add(name, 'is required')
      continue
    }
    const message = rule.check(value)
    if (message) add(name, message)
  }
  for (const key of Object.keys(v)) {
    if (key === 'data' || ATTRIBUTES.has(key)) continue
    const message = ATTRIBUTE_NAME_PATTERN.test(key)
      ? extensionIssue(v[key])
      : 'is not a CloudEvents attribute name: use 1-64 lowercase letters and digits (put other data in data)'
    if (message) add(key, message)
  }
  if (!isPlainObject(v.data)) add('data', 'must be a JSON object, e.g. {"key":"value"}')
  return issues ?? []
}

/**
 * A raptor event: a CloudEvents 1.0 structured-mode JSON object with the raptor extensions
 * `channel`, `priority` and `correlationid`, the trace context `traceparent`/`tracestate`, and any
 * other CloudEvents extension attribute, kept as the producer gave it.
 */
export type RaptorEvent = z.infer<ReturnType<typeof defineEnvelopeSchema>>

/** Result of checking an envelope. */
export type ParsedEnvelope = {ok: true; event: RaptorEvent} | {ok: false; issues: SchemaIssue[]}

/**
 * The one rule of validity, for an envelope as read back from JSON (history, live, a consumer):
 * the value itself when it is a valid raptor event (nothing is copied, reordered or filled in),
 * else every issue found. It agrees exactly with the zod schema (see the property test).
 */
export function checkEnvelope(value: unknown): ParsedEnvelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return {ok: false, issues: [{path: '(root)', message: 'must be a JSON object'}]}
  const issues = attributeIssues(value as Record<string, unknown>)
  if (issues.length === 0) {
    const data = dataIssue((value as Record<string, unknown>).data)
    if (data) issues.push(data)
  }
  return issues.length === 0 ? {ok: true, event: value as RaptorEvent} : {ok: false, issues}
}

/** Parses envelope JSON text (from Redis) without throwing, then {@link checkEnvelope}. */
export function parseEnvelope(json: string | undefined | null): ParsedEnvelope {
  if (json === undefined || json === null)
    return {ok: false, issues: [{path: '(root)', message: 'entry has no envelope field'}]}
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (error) {
    return {ok: false, issues: [{path: '(root)', message: `not JSON: ${(error as Error).message}`}]}
  }
  return checkEnvelope(value)
}

/** Formats schema issues for a one-line message. */
export function formatIssues(issues: readonly SchemaIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ')
}

/** Converts the issues of a zod error (any version) into raptor's short `{path, message}` form. */
export function toIssues(error: {
  issues: readonly {path: readonly PropertyKey[]; message: string}[]
}): SchemaIssue[] {
  return error.issues.map((i) => ({path: i.path.map(String).join('.') || '(root)', message: i.message}))
}

/**
 * Serializes a valid envelope whose `data` is already JSON text (`dataJson`), so that the payload —
 * the only large part — is stringified once on the publish path. The result is exactly
 * `JSON.stringify(event)` when `dataJson` is `JSON.stringify(event.data)`.
 */
export function serializeEnvelope(event: RaptorEvent, dataJson: string): string {
  let out = ''
  const keys = Object.keys(event)
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    const value = event[key]
    if (value === undefined) continue
    // Attribute names are lowercase letters and digits: they need no escaping. Neither does a string
    // without quotes, backslashes, control characters or surrogates (JSON.stringify's own rule).
    out +=
      (out === '' ? '{"' : ',"') +
      key +
      '":' +
      (key === 'data'
        ? dataJson
        : typeof value === 'string' && PLAIN_STRING.test(value)
          ? '"' + value + '"'
          : JSON.stringify(value))
  }
  return out === '' ? '{}' : out + '}'
}

/** A string JSON.stringify writes as it is, between quotes. */
// eslint-disable-next-line no-control-regex -- the control characters are what it looks for
const PLAIN_STRING = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/

// ---------------------------------------------------------------------------------------------
// Building an envelope for publishing
// ---------------------------------------------------------------------------------------------

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
  /** Request id for request/response (`correlationid`). */
  correlationId?: string
  /**
   * Event id: any CloudEvents id (1–256 printable characters), kept as given.
   * @defaultValue a fresh `evt-<uuid v7>` (time-ordered: see event-ids.ts)
   */
  id?: string
  /**
   * Event time: an RFC 3339 timestamp kept exactly as given (any precision, any offset), or a Date.
   * @defaultValue the time of publication
   */
  time?: string | Date
  /** CloudEvents `subject`. */
  subject?: string
  /** CloudEvents `dataschema`: an absolute URI. */
  dataschema?: string
  /**
   * More CloudEvents extension attributes (names: lowercase letters and digits; values: strings,
   * 32-bit integers, booleans), e.g. `{tenant: 'acme'}`. `traceparent`/`tracestate` given here are
   * kept instead of the active trace context.
   */
  extensions?: Record<string, ExtensionValue>
}

/**
 * A whole CloudEvent to publish as it is (structured-mode JSON form, or an SDK `CloudEvent`): every
 * attribute is kept exactly; raptor fills in `id` (`evt-<uuid>`) and `time` only when absent. The
 * channel is its `channel` extension attribute.
 */
export type CloudEventInput = {
  specversion: '1.0'
  id?: string
  time?: string
  type: string
  source: string
  channel: string
  data: Payload
  [attribute: string]: unknown
}

/** True when publish input is a whole CloudEvent (it has `specversion`), not a {@link PublishInput}. */
export function isCloudEventInput(input: PublishInput | CloudEventInput): input is CloudEventInput {
  return typeof input === 'object' && input !== null && 'specversion' in input
}

let lastMs = -1
let lastIso = ''

/** `new Date(ms).toISOString()`, once per ms. */
function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString()
    lastMs = ms
  }
  return lastIso
}

/** W3C trace context to put on an event (the CloudEvents distributed-tracing extension). */
export interface TraceFields {
  traceparent: string
  tracestate?: string
}

/** Attribute names a PublishInput's `extensions` may not use: they have their own fields. */
const RESERVED_EXTENSIONS = new Set([...ATTRIBUTES.keys(), 'data'].filter((n) => !n.startsWith('trace')))

/**
 * The envelope publish input asks for, unchecked: attributes in raptor's order, `data` last. Also
 * takes a whole CloudEvent (own enumerable attributes, `undefined` ones left out).
 * @throws InvalidInputError when the input is not an object or `extensions` names a core attribute
 */
export function candidateEnvelope(
  input: PublishInput | CloudEventInput,
  defaultSource: string,
  trace?: TraceFields,
): Record<string, unknown> {
  if (typeof input !== 'object' || input === null)
    throw new InvalidInputError('publish input must be an object: {channel, type, payload} or a CloudEvent')
  if (isCloudEventInput(input)) {
    // The producer's attributes in the producer's order; only a missing id or time is filled in.
    const event: Record<string, unknown> = {}
    const now = Date.now()
    if (input.id === undefined) event.id = newEventId(now)
    if (input.time === undefined) event.time = isoTime(now)
    for (const key of Object.keys(input)) {
      if (key === '__proto__')
        throw new InvalidInputError('__proto__ is not a CloudEvents attribute name', {channel: input.channel})
      if (input[key] !== undefined) event[key] = input[key]
    }
    if (trace && input.traceparent === undefined) Object.assign(event, trace)
    return event
  }
  const payload = input.payload ?? {}
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new InvalidInputError('payload must be a JSON object, e.g. {"key":"value"}', {
      channel: input.channel,
    })
  const now = Date.now()
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id: input.id ?? newEventId(now),
    type: input.type,
    source: input.source ?? defaultSource,
    time: input.time instanceof Date ? input.time.toISOString() : (input.time ?? isoTime(now)),
    datacontenttype: 'application/json',
  }
  if (input.subject !== undefined) event.subject = input.subject
  if (input.dataschema !== undefined) event.dataschema = input.dataschema
  event.channel = input.channel
  event.priority = input.priority ?? 'normal'
  if (input.correlationId !== undefined) event.correlationid = input.correlationId
  const extensions = input.extensions ?? {}
  if (trace && extensions.traceparent === undefined) Object.assign(event, trace)
  for (const key of Object.keys(extensions)) {
    if (RESERVED_EXTENSIONS.has(key) || key === '__proto__')
      throw new InvalidInputError(
        `extensions.${key} is a CloudEvents or raptor attribute: give it as its own field, not as an extension`,
        {channel: input.channel},
      )
    if (extensions[key] !== undefined) event[key] = extensions[key]
  }
  event.data = payload
  return event
}

/**
 * Builds and checks the envelope of publish input; the payload is checked as serialized (see
 * {@link serializeData}).
 * @throws InvalidInputError naming every attribute at fault
 */
export function buildEnvelope(
  input: PublishInput | CloudEventInput,
  defaultSource: string,
  trace?: TraceFields,
): RaptorEvent {
  const candidate = candidateEnvelope(input, defaultSource, trace)
  const issues = attributeIssues(candidate)
  if (issues.length > 0) {
    const channel = typeof candidate.channel === 'string' ? candidate.channel : undefined
    throw new InvalidInputError(`invalid event: ${formatIssues(issues)}`, {channel, issues})
  }
  return candidate as RaptorEvent
}

/** The one check of an attribute raptor knows: true when the value passes its rule. */
function passes(name: string, value: unknown): boolean {
  return (ATTRIBUTES.get(name) as AttributeRule).check(value) === undefined
}

/** The last default source found valid (it is the same for every event of a bus). */
let checkedSource: string | undefined

/**
 * True when the parts of a {@link PublishInput}'s envelope that the producer gave are valid. What
 * raptor fills in itself — `specversion`, a fresh id, the time of publication, `datacontenttype`,
 * priority `normal` — is valid by construction and not checked again; the channel name is the
 * caller's to check first ({@link buildPublishEnvelope}).
 */
function producerPartsValid(input: PublishInput, event: Record<string, unknown>): boolean {
  if (!passes('type', event.type)) return false
  if (input.source !== undefined || event.source !== checkedSource) {
    if (!passes('source', event.source)) return false
    if (input.source === undefined) checkedSource = event.source as string
  }
  if (input.id !== undefined && !passes('id', event.id)) return false
  if (input.time !== undefined && !passes('time', event.time)) return false
  if (input.subject !== undefined && !passes('subject', event.subject)) return false
  if (input.dataschema !== undefined && !passes('dataschema', event.dataschema)) return false
  if (input.priority !== undefined && !passes('priority', event.priority)) return false
  if (input.correlationId !== undefined && !passes('correlationid', event.correlationid)) return false
  if (event.traceparent !== undefined && !passes('traceparent', event.traceparent)) return false
  if (event.tracestate !== undefined && !passes('tracestate', event.tracestate)) return false
  const extensions = input.extensions
  if (extensions !== undefined)
    for (const key of Object.keys(extensions)) {
      if (extensions[key] === undefined || ATTRIBUTES.has(key)) continue
      if (!ATTRIBUTE_NAME_PATTERN.test(key) || extensionIssue(extensions[key]) !== undefined) return false
    }
  return isPlainObject(event.data)
}

/**
 * {@link buildEnvelope} for a {@link PublishInput} whose channel name the caller has checked: the
 * same envelope and the same errors, for less work (see {@link producerPartsValid}).
 */
export function buildPublishEnvelope(
  input: PublishInput,
  defaultSource: string,
  trace?: TraceFields,
): RaptorEvent {
  const candidate = candidateEnvelope(input, defaultSource, trace)
  if (producerPartsValid(input, candidate)) return candidate as RaptorEvent
  // Something is wrong: the full check names every attribute at fault.
  return buildEnvelope(input, defaultSource, trace)
}

/**
 * 16 digits in a row, which may be an integer beyond 2^53 (see serializeData). Spelled out: V8 scans
 * for a fixed-length run many times faster than for `\d{16}`.
 */
const LONG_DIGITS = /\d\d\d\d\d\d\d\d\d\d\d\d\d\d\d\d/

/** Counts occurrences of a character, stopping past `limit`. */
function countUpTo(text: string, char: string, limit: number): number {
  let n = 0
  for (let at = text.indexOf(char); at !== -1 && n <= limit; at = text.indexOf(char, at + 1)) n++
  return n
}

/**
 * Serializes a payload and checks what was serialized, not only what was passed: it must be a JSON
 * object (a `toJSON` may turn it into something else), and it must read back the same: no
 * non-finite number (JSON writes `null`), no integer beyond ±2^53, no nesting deeper than
 * {@link MAX_DATA_DEPTH} — the rules {@link checkEnvelope} applies when it is read.
 * @returns the payload's JSON text
 * @throws InvalidInputError when it cannot be written as it is
 */
export function serializeData(data: unknown, channel: string): string {
  const fail = (message: string) => new InvalidInputError(`payload ${message}`, {channel})
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (error) {
    throw fail(`cannot be serialized as JSON: ${(error as Error).message}`)
  }
  if (typeof json !== 'string' || json.charCodeAt(0) !== 123 /* { */)
    throw fail(
      `serializes to ${json === undefined ? 'nothing' : json.slice(0, 40)}, not a JSON object: check its toJSON`,
    )
  // Common payloads pass a few native scans; only a suspicious one is looked at closely: "null" may be
  // a non-finite number JSON wrote as null, 16 digits in a row an integer beyond 2^53.
  const hasNull = json.includes('null')
  const longDigits = LONG_DIGITS.test(json)
  if (!hasNull && !longDigits && json.length <= 2 * MAX_DATA_DEPTH) return json
  if (hasNull) {
    try {
      JSON.stringify(data, function (this: unknown, key, value: unknown) {
        if (typeof value === 'number' && !Number.isFinite(value)) throw new RangeError(`${key}: ${value}`)
        return value
      })
    } catch (error) {
      throw fail(`holds a number JSON cannot carry (${(error as Error).message}): send it as a string`)
    }
  }
  if (
    longDigits ||
    countUpTo(json, '{', MAX_DATA_DEPTH) + countUpTo(json, '[', MAX_DATA_DEPTH) > MAX_DATA_DEPTH
  ) {
    const issue = dataIssue(JSON.parse(json))
    if (issue) throw fail(`${issue.path}: ${issue.message}`)
  }
  return json
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

/** Payload schemas by event type: a map with no prototype, so that no type name reaches Object's own. */
export type PayloadSchemas = Record<string, PayloadSchema>

/** A map of payload schemas with no prototype, from entries or objects (later ones win). */
export function payloadSchemas(...sources: (Record<string, PayloadSchema> | undefined)[]): PayloadSchemas {
  const map: PayloadSchemas = Object.create(null)
  for (const source of sources) if (source) for (const key of Object.keys(source)) map[key] = source[key]
  return map
}

/** Checks a payload against its type's registered schema. @throws SchemaViolationError */
export function checkPayload(
  event: Pick<RaptorEvent, 'type' | 'data' | 'channel'>,
  schema: PayloadSchema | undefined,
): void {
  if (!schema) return
  const result = schema.safeParse(event.data)
  if (!result.success) {
    const issues = toIssues(result.error)
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

// ---------------------------------------------------------------------------------------------
// The zod schema: the same rules, for types and JSON Schema (loaded on demand)
// ---------------------------------------------------------------------------------------------

/** The envelope schema, built with the zod given (so that zod is imported only when it is wanted). */
function defineEnvelopeSchema(zod: typeof z) {
  const ceText = (max: number) =>
    zod
      .string()
      .min(1)
      .max(max)
      .refine((s) => isCeText(s, max), textMessage(max))
  const extensionValue = {
    anyOf: [
      {type: 'string', minLength: 1, maxLength: MAX_TEXT_LENGTH},
      {type: 'integer', minimum: INT32_MIN, maximum: INT32_MAX},
      {type: 'boolean'},
    ],
  }
  return zod
    .object({
      specversion: zod.literal('1.0'),
      id: ceText(MAX_ID_LENGTH),
      type: zod
        .string()
        .min(1)
        .max(128)
        .regex(TYPE_PATTERN, 'type must be 1-128 characters of A-Z a-z 0-9 _ . : -'),
      source: ceText(MAX_ID_LENGTH),
      time: zod
        .string()
        .max(64)
        .regex(RFC3339_PATTERN)
        .refine(isRfc3339, 'must be an RFC 3339 timestamp')
        .meta({format: 'date-time'}),
      datacontenttype: zod.string().regex(JSON_MEDIA_TYPE).optional(),
      dataschema: ceText(MAX_TEXT_LENGTH)
        .refine((s) => URL.canParse(s), 'must be an absolute URI')
        .meta({format: 'uri'})
        .optional(),
      subject: ceText(MAX_TEXT_LENGTH).optional(),
      data: zod
        .custom<Record<string, unknown>>(isPlainObject, 'must be a JSON object')
        .superRefine((data, ctx) => {
          const issue = dataValueIssue(data, 'data', 0)
          if (issue) ctx.addIssue({code: 'custom', message: `${issue.path}: ${issue.message}`})
        })
        .meta({type: 'object', description: `a JSON object, nesting at most ${MAX_DATA_DEPTH} levels`}),
      channel: zod
        .string()
        .max(256)
        .regex(CHANNEL_PATTERN, 'channel must be dot-separated lowercase segments of a-z 0-9 _ -'),
      priority: zod.enum(PRIORITIES).optional(),
      correlationid: ceText(MAX_ID_LENGTH).optional(),
      traceparent: ceText(MAX_TEXT_LENGTH).optional(),
      tracestate: ceText(MAX_TEXT_LENGTH).optional(),
    })
    .catchall(zod.unknown())
    .superRefine((event, ctx) => {
      for (const key of Object.keys(event)) {
        if (ATTRIBUTES.has(key) || key === 'data') continue
        const message = ATTRIBUTE_NAME_PATTERN.test(key)
          ? extensionIssue(event[key])
          : 'is not a CloudEvents attribute name'
        if (message) ctx.addIssue({code: 'custom', path: [key], message})
      }
    })
    .meta({
      title: 'raptor event',
      description:
        'CloudEvents 1.0 structured-mode JSON envelope with the raptor extensions channel, priority ' +
        '(absent means normal) and correlationid, the W3C trace context traceparent/tracestate, and any ' +
        `other CloudEvents extension. data nests at most ${MAX_DATA_DEPTH} levels, and holds no ` +
        'integer beyond ±2^53.',
      propertyNames: {pattern: ATTRIBUTE_NAME_PATTERN.source},
      additionalProperties: extensionValue,
    })
}

/** The zod schema of the envelope. */
export type EnvelopeSchema = ReturnType<typeof defineEnvelopeSchema>

let schema: Promise<EnvelopeSchema> | undefined

/** The zod schema of the envelope (imports zod on first call). It accepts exactly what {@link checkEnvelope} does. */
export function loadEnvelopeSchema(): Promise<EnvelopeSchema> {
  schema ??= import('zod').then(({z}) => defineEnvelopeSchema(z))
  return schema
}

/** The JSON Schema of the envelope (draft 2020-12), as printed by `raptor schema`. */
export async function envelopeJsonSchema(): Promise<Record<string, unknown>> {
  const [{z}, envelope] = await Promise.all([import('zod'), loadEnvelopeSchema()])
  return z.toJSONSchema(envelope, {io: 'input', unrepresentable: 'any'}) as Record<string, unknown>
}
