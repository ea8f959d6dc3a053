import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {
  MAX_DATA_DEPTH,
  buildEnvelope,
  buildPublishEnvelope,
  checkEnvelope,
  loadEnvelopeSchema,
  parseEnvelope,
  serializeData,
  serializeEnvelope,
  type RaptorEvent,
} from '../../src/bus/envelope.js'
import {InvalidInputError} from '../../src/bus/errors.js'

/** Runs per property (FC_RUNS=100000 for a long search). */
const RUNS = {numRuns: Number(process.env.FC_RUNS ?? 2000)}

const text = (max: number) => fc.string({minLength: 1, maxLength: max, unit: 'binary'})
const channel = fc.stringMatching(/^[a-z0-9_-]{1,8}(\.[a-z0-9_-]{1,8}){0,3}$/)
const offset = fc.oneof(
  fc.constantFrom('Z', 'z'),
  fc
    .tuple(fc.constantFrom('+', '-'), fc.integer({min: 0, max: 23}), fc.integer({min: 0, max: 59}))
    .map(([s, h, m]) => `${s}${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`),
)
/** RFC 3339 timestamps of every precision and offset, and near misses with fields out of range. */
const time = fc.oneof(
  fc
    .tuple(
      fc.date({
        min: new Date('0001-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      }),
      fc.integer({min: 0, max: 9}),
      offset,
      fc.constantFrom('T', 't'),
    )
    .map(([d, digits, zone, t]) => {
      const iso = d.toISOString()
      const fraction = digits === 0 ? '' : '.' + (iso.slice(20, 23) + '123456').slice(0, digits)
      return `${iso.slice(0, 10)}${t}${iso.slice(11, 19)}${fraction}${zone}`
    }),
  fc.stringMatching(/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2})?(\.\d{0,4})?([Zz]|[+-]\d{2}:?\d{2})?$/),
)
const extensionName = fc.stringMatching(/^[a-z0-9]{1,12}$/)
const extensionValue = fc.oneof(
  text(20),
  fc.integer({min: -(2 ** 31), max: 2 ** 31 - 1}),
  fc.boolean(),
  fc.double(),
  fc.constant(2 ** 31),
)
/** Payloads: JSON values of any shape, some too deep, some with numbers JSON cannot carry back. */
const deep = fc.integer({min: MAX_DATA_DEPTH - 2, max: MAX_DATA_DEPTH + 2}).map((depth) => {
  let value: unknown = 1
  for (let i = 1; i < depth; i++) value = i % 2 ? [value] : {a: value}
  return {a: value}
})
const data = fc.oneof(
  fc.dictionary(fc.string(), fc.jsonValue()),
  deep,
  fc.dictionary(
    fc.string(),
    fc.oneof(fc.double(), fc.constantFrom(2 ** 53, -(2 ** 60), 1e21, 9007199254740991, Infinity)),
  ),
)

const printable = fc.oneof(
  fc.string({minLength: 1, maxLength: 30, unit: 'grapheme-ascii'}),
  fc.uuid(),
  fc.constantFrom('order/42 {x}', 'ünïcödé ✓', '😀 tag', '{hash}:tag'),
)

/** Valid envelopes: every optional attribute present or not, CloudEvents extensions of every type. */
const validEnvelope = fc
  .tuple(
    fc.record(
      {
        specversion: fc.constant('1.0'),
        id: printable,
        type: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/),
        source: printable,
        time: time.filter((t) => /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}/.test(t)),
        datacontenttype: fc.constantFrom(
          'application/json',
          'application/cloudevents+json',
          'TEXT/JSON; charset=utf-8',
        ),
        dataschema: fc.webUrl(),
        subject: printable,
        data: fc.dictionary(fc.string(), fc.jsonValue({maxDepth: 3})),
        channel,
        priority: fc.constantFrom('low', 'normal', 'high', 'critical'),
        correlationid: printable,
        traceparent: printable,
        tracestate: printable,
      },
      {requiredKeys: ['specversion', 'id', 'type', 'source', 'time', 'data', 'channel']},
    ),
    fc.dictionary(
      extensionName,
      fc.oneof(printable, fc.integer({min: -(2 ** 31), max: 2 ** 31 - 1}), fc.boolean()),
      {maxKeys: 3},
    ),
  )
  .map(([attributes, extensions]) => ({...extensions, ...attributes}) as Record<string, unknown>)

/** A valid envelope with one attribute removed, or set to a value drawn from valid and invalid ones. */
const nearMiss = fc
  .tuple(
    validEnvelope,
    fc.oneof(
      fc.constantFrom(
        'specversion',
        'id',
        'type',
        'source',
        'time',
        'datacontenttype',
        'dataschema',
        'subject',
      ),
      fc.constantFrom('data', 'channel', 'priority', 'correlationid', 'traceparent', 'tracestate'),
      extensionName,
      fc.string(),
    ),
    fc.oneof(
      fc.constant(undefined),
      text(300),
      time,
      data,
      extensionValue,
      fc.constantFrom('', '1.0', 'low', 'urgent', 'a\nb', '\ud800', 'x'.repeat(257), null),
      fc.anything(),
    ),
    fc.boolean(),
  )
  .map(([value, key, replacement, remove]) => {
    const copy = {...value}
    if (remove) delete copy[key]
    // Own property, as JSON.parse makes it (an assignment to "__proto__" would set the prototype).
    else
      Object.defineProperty(copy, key, {
        value: replacement,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    return copy
  })

const envelope = fc.oneof(validEnvelope, nearMiss)

describe('the envelope: one rule of validity, a fast path that agrees with the schema', () => {
  it('checkEnvelope accepts exactly what the zod schema accepts', async () => {
    const schema = await loadEnvelopeSchema()
    fc.assert(
      fc.property(fc.oneof(envelope, fc.anything({withNullPrototype: true})), (value) => {
        const fast = checkEnvelope(value)
        const zod = schema.safeParse(value)
        expect(fast.ok, JSON.stringify(fast.ok ? {} : fast.issues)).toBe(zod.success)
        // The fast path hands back the value itself: nothing copied, reordered, filled in or dropped.
        if (fast.ok) expect(fast.event).toBe(value)
      }),
      RUNS,
    )
  })

  it('finds valid envelopes among those generated (the agreement is not only on rejections)', () => {
    const sample = fc.sample(envelope, 2000)
    const valid = sample.filter((v) => checkEnvelope(v).ok).length
    expect(valid).toBeGreaterThan(500)
    expect(valid).toBeLessThan(1900)
  })

  it('serializeEnvelope writes exactly JSON.stringify of the parsed envelope', () => {
    fc.assert(
      fc.property(envelope, (value) => {
        const parsed = parseEnvelope(JSON.stringify(value))
        if (!parsed.ok) return
        const event: RaptorEvent = parsed.event
        expect(serializeEnvelope(event, JSON.stringify(event.data))).toBe(JSON.stringify(event))
      }),
      RUNS,
    )
  })

  it('publish refuses a payload exactly when its serialized form would not read back the same', () => {
    fc.assert(
      fc.property(data, (payload) => {
        let json: string | undefined
        try {
          json = serializeData(payload, 'c')
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidInputError)
        }
        const stored = JSON.stringify(payload)
        const readable = checkEnvelope({...base(), data: JSON.parse(stored)}).ok
        const lossless = stored === JSON.stringify(JSON.parse(stored)) && !/null/.test(stored) // null: a non-finite number was written as null
        if (json !== undefined) {
          expect(json).toBe(stored)
          expect(readable).toBe(true)
        } else expect(readable && lossless).toBe(false)
      }),
      RUNS,
    )
  })

  it('the lean publish build (only what the producer gave is checked) agrees with the full one', () => {
    const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, {nil: undefined})
    const input = fc.record(
      {
        channel,
        type: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/), text(20)),
        payload: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue({maxDepth: 2})), fc.constant(new Date(0))),
        priority: maybe(fc.constantFrom('low', 'normal', 'high', 'critical', 'urgent')),
        source: maybe(fc.oneof(printable, text(5))),
        correlationId: maybe(fc.oneof(printable, text(5))),
        id: maybe(fc.oneof(printable, text(5))),
        time: maybe(fc.oneof(time, fc.constant(new Date('+010000-01-01T00:00:00Z')))),
        subject: maybe(fc.oneof(printable, text(5))),
        dataschema: maybe(fc.oneof(fc.webUrl(), printable)),
        extensions: maybe(
          fc.dictionary(fc.oneof(extensionName, fc.constantFrom('Bad', 'traceparent')), extensionValue, {
            maxKeys: 3,
          }),
        ),
      },
      {requiredKeys: ['channel', 'type', 'payload']},
    )
    const trace = fc.option(
      fc.record({traceparent: fc.oneof(printable, text(3)), tracestate: fc.oneof(printable, text(3))}),
      {nil: undefined},
    )
    const outcome = (build: () => RaptorEvent) => {
      try {
        const {id, time: at, ...rest} = build()
        return {ok: JSON.stringify(rest), id: typeof id, time: typeof at}
      } catch (error) {
        return {error: String(error)}
      }
    }
    fc.assert(
      fc.property(input, fc.constantFrom('src', 'bad\nsource'), trace, (given, source, context) => {
        const publishInput = given as Parameters<typeof buildEnvelope>[0] & {channel: string}
        const lean = outcome(() => buildPublishEnvelope(publishInput, source, context))
        const full = outcome(() => buildEnvelope(publishInput, source, context))
        expect(lean).toEqual(full)
      }),
      RUNS,
    )
  })

  it('builds envelopes that it accepts when read back, in raptor order with data last', () => {
    const event = buildEnvelope(
      {
        channel: 'sys.state.update',
        type: 't',
        payload: {n: 1},
        id: 'order/42 {x}',
        time: '2026-11-29T07:00:00+02:00',
        subject: 's',
        dataschema: 'https://example.com/s.json',
        correlationId: 'req-1',
        extensions: {tenant: 'acme', n: 3, ok: true},
      },
      'src',
    )
    const json = serializeEnvelope(event, serializeData(event.data, event.channel))
    expect(json).toBe(
      '{"specversion":"1.0","id":"order/42 {x}","type":"t","source":"src","time":"2026-11-29T07:00:00+02:00",' +
        '"datacontenttype":"application/json","subject":"s","dataschema":"https://example.com/s.json",' +
        '"channel":"sys.state.update","priority":"normal","correlationid":"req-1","tenant":"acme","n":3,"ok":true,' +
        '"data":{"n":1}}',
    )
    expect(parseEnvelope(json)).toMatchObject({ok: true})
  })

  it('refuses ids and attributes that are not CloudEvents strings, naming each', () => {
    const bad = (input: Record<string, unknown>) => () =>
      buildEnvelope({channel: 'sys.state.update', type: 't', ...input}, 'src')
    expect(bad({id: 'a\nb'})).toThrow(/id: must be 1-256 characters without control characters/)
    expect(bad({id: 'x'.repeat(257)})).toThrow(/id: must be 1-256/)
    expect(bad({id: '\ud800'})).toThrow(/id:/)
    expect(bad({time: '2026-02-30T00:00:00Z'})).toThrow(/time: must be an RFC 3339 timestamp/)
    expect(bad({extensions: {Bad_Name: 'x'}})).toThrow(/Bad_Name: is not a CloudEvents attribute name/)
    expect(bad({extensions: {big: 2 ** 40}})).toThrow(/big: must be a string, a 32-bit integer or a boolean/)
    expect(bad({extensions: {id: 'x'}})).toThrow(/extensions.id is a CloudEvents or raptor attribute/)
    expect(bad({dataschema: 'not a uri'})).toThrow(/dataschema: must be an absolute URI/)
  })

  it(`lets data nest ${MAX_DATA_DEPTH} levels, not one more, and keeps every number exact`, () => {
    const nest = (levels: number) => {
      let value: Record<string, unknown> = {}
      for (let i = 1; i < levels; i++) value = {a: value}
      return value
    }
    const ok = (data: Record<string, unknown>) => checkEnvelope({...base(), data}).ok
    expect(ok(nest(MAX_DATA_DEPTH))).toBe(true)
    expect(ok(nest(MAX_DATA_DEPTH + 1))).toBe(false)
    expect(ok({n: 9007199254740991, m: -9007199254740991, f: 0.1, e: 1e21, big: 6.02e23})).toBe(true)
    for (const n of [9007199254740992, -(2 ** 60), 1e20, Infinity, NaN])
      expect(ok({n}), String(n)).toBe(false)
    expect(parseEnvelope(JSON.stringify({...base(), data: {}}).replace('{}', '{"n":1e400}')).ok).toBe(false)
  })

  it('prints a JSON Schema with every attribute, extensions by the CloudEvents naming rule', async () => {
    const {envelopeJsonSchema} = await import('../../src/bus/envelope.js')
    const schema = await envelopeJsonSchema()
    expect(schema).toMatchObject({
      type: 'object',
      required: ['specversion', 'id', 'type', 'source', 'time', 'data', 'channel'],
      propertyNames: {pattern: '^[a-z0-9]{1,64}$'},
      properties: {time: {format: 'date-time'}, subject: {type: 'string'}, traceparent: {type: 'string'}},
    })
  })
})

function base() {
  return {
    specversion: '1.0',
    id: 'x',
    type: 't',
    source: 's',
    time: '2026-11-29T07:00:00Z',
    channel: 'c',
  }
}
