import {Flags} from '@oclif/core'

import {assertChannelName} from '../bus/channels.js'
import {InvalidInputError, PartialError, RoutingError} from '../bus/errors.js'
import {PRIORITIES, type CloudEventInput, type Priority, type PublishInput} from '../bus/envelope.js'
import type {RaptorBus} from '../bus/bus.js'
import {BaseCommand} from '../cli/base-command.js'
import {knownChannels} from '../cli/channels.js'
import {ExitCode, exitCodeFor} from '../cli/exit-codes.js'
import {asPayload, parseNdjson, parsePayload, readArgText} from '../cli/input.js'

/** Events prepared and written at a time by `--count`: memory stays flat however many are asked for. */
const COUNT_CHUNK = 1000

export interface PublishResult {
  channel: string | null
  ids: string[]
}

export default class Publish extends BaseCommand<typeof Publish> {
  static override summary = 'Publish events to a channel.'
  static override description = `Validates each event (envelope, payload schema, size, channel) and writes it with one Lua script: history, get-by-id index, counters and live fan-out. Nothing is written when any event is invalid. An unknown channel exits 2: typed on a terminal, nothing is written (a typo); from a script or a pipe (stdin not a terminal) the event is parked in DLQ routing_error as evidence, as the library does.

Bulk: --ndjson FILE (or - for stdin) publishes one event per line, pipelined. A line is a whole CloudEvent (it has "specversion", e.g. a line of replay --json: published exactly as it is, id and time included; --channel re-targets it), or {"channel","type","payload","priority","source","correlationId","id","time","subject","dataschema","extensions"}, or a bare payload object (with --channel and --type).`

  static override examples = [
    `<%= config.bin %> <%= command.id %> --channel sys.alert.warning --type disk_low --payload '{"free":0.05}'`,
    '<%= config.bin %> <%= command.id %> -c sys.guild.research.broadcast -t research_complete --payload @result.json --priority high',
    `echo '{"n":1}' | <%= config.bin %> <%= command.id %> -c sys.state.update -t tick --payload @-`,
    '<%= config.bin %> <%= command.id %> --ndjson events.ndjson --json',
    '<%= config.bin %> replay sys.state.update --since 1h --json | <%= config.bin %> <%= command.id %> --ndjson -',
  ]

  static override flags = {
    channel: Flags.string({char: 'c', summary: 'Channel to publish on.'}),
    type: Flags.string({char: 't', summary: 'Event type, e.g. research_complete.'}),
    payload: Flags.string({
      char: 'p',
      summary: 'Payload: a JSON object, @file.json, or @- for stdin.',
      default: '{}',
      exclusive: ['ndjson'],
    }),
    priority: Flags.option({
      options: PRIORITIES,
      summary: 'Event priority.',
      default: 'normal' as Priority,
    })(),
    source: Flags.string({summary: 'Publishing agent id.', default: 'raptor-cli'}),
    'correlation-id': Flags.string({summary: 'Request id for request/response.'}),
    count: Flags.integer({
      char: 'n',
      summary: 'Publish the event N times (N ids), pipelined.',
      default: 1,
      min: 1,
    }),
    ndjson: Flags.string({summary: 'Bulk: publish one event per line of this NDJSON file (- for stdin).'}),
  }

  async run(): Promise<PublishResult | undefined> {
    const {flags} = this
    const inputs = flags.ndjson === undefined ? [await this.single()] : await this.bulk(flags.ndjson)
    const bus = await this.bus()
    if (process.stdin.isTTY) await refuseTypo(bus, inputs)
    if (flags.ndjson === undefined) {
      const [input] = inputs as PublishInput[]
      if (flags.count > 1) return this.repeat(input, flags.count)
      const id = await bus.publish(input)
      this.log(id)
      return {channel: input.channel, ids: [id]}
    }
    const ids = inputs.length === 1 ? [await bus.publish(inputs[0])] : await bus.publishMany(inputs)
    for (const id of ids) this.log(id)
    const channels = new Set(inputs.map((i) => i.channel))
    return {channel: channels.size === 1 ? inputs[0].channel : null, ids}
  }

  /**
   * `--count N`: the same event N times, prepared and written COUNT_CHUNK at a time, and its ids
   * streamed out (with back-pressure) as they are written, so that memory does not grow with N. The
   * first chunk checks the event: when it is invalid nothing is written. With --json the document
   * `{"channel","ids":[…]}` is streamed too; a failure after the first chunk closes it with an
   * `"error"` member (exit 3: the ids before it were published).
   */
  private async repeat(input: PublishInput, count: number): Promise<undefined> {
    const bus = await this.bus()
    // The same event N times to an unknown channel: one copy is parked as evidence, not N.
    if (!bus.topology.resolve(input.channel)) await bus.publish(input)
    const json = this.jsonEnabled()
    const {out} = this
    let written = 0
    for (let start = 0; start < count; start += COUNT_CHUNK) {
      const n = Math.min(COUNT_CHUNK, count - start)
      let ids: string[]
      try {
        ids = await bus.publishMany(Array.from({length: n}, () => input))
      } catch (error) {
        const more = error instanceof PartialError ? error.ids : []
        // Nothing written at all: the usual error (an invalid event, Redis unreachable).
        if (written === 0 && more.length === 0) throw error
        await this.printIds(more, json, written === 0)
        written += more.length
        const cause = error instanceof PartialError && error.cause instanceof Error ? error.cause : error
        const partial = new PartialError(
          `published ${written} of ${count} events, then: ${(cause as Error).message}`,
          [],
          {cause},
        )
        if (json) {
          const code = exitCodeFor(partial)
          void out.write(
            `],"error":${JSON.stringify({code: partial.code, message: partial.message, exitCode: code})}}\n`,
          )
          this.note(`Error: ${partial.message}`)
          return this.exit(ExitCode.PARTIAL) as never
        }
        throw partial
      }
      await this.printIds(ids, json, written === 0)
      written += ids.length
    }
    if (json) void out.write(']}\n')
    return undefined
  }

  /** Prints ids: one a line, or (--json) as the next items of the streamed `ids` array. */
  private async printIds(ids: string[], json: boolean, first: boolean): Promise<void> {
    if (ids.length === 0) return
    const {out} = this
    if (!json) return out.write(ids.join('\n') + '\n')
    const head = first ? `{"channel":${JSON.stringify(this.flags.channel)},"ids":[` : ','
    return out.write(head + ids.map((id) => JSON.stringify(id)).join(','))
  }

  private common(): Omit<PublishInput, 'channel' | 'type' | 'payload'> {
    const {flags} = this
    return {priority: flags.priority, source: flags.source, correlationId: flags['correlation-id']}
  }

  private async single(): Promise<PublishInput> {
    const {flags} = this
    if (!flags.channel) throw new InvalidInputError('--channel is required (or --ndjson for bulk input)')
    if (!flags.type) throw new InvalidInputError('--type is required (or --ndjson for bulk input)')
    const {text, origin} = await readArgText(flags.payload, '--payload')
    const payload = parsePayload(text, origin === '--payload' ? '--payload' : origin)
    return {...this.common(), channel: flags.channel, type: flags.type, payload}
  }

  private async bulk(file: string): Promise<(PublishInput | CloudEventInput)[]> {
    const {flags} = this
    const {text, origin} = await readArgText(file === '-' ? '@-' : `@${file}`, '--ndjson')
    const lines = parseNdjson(text, origin)
    if (lines.length === 0)
      throw new InvalidInputError(`no events in ${origin}: expected one JSON object per line`)
    return lines.map((line, i) => {
      const where = `${origin} line ${i + 1}`
      if (typeof line !== 'object' || line === null || Array.isArray(line)) {
        throw new InvalidInputError(`${where} must be a JSON object`)
      }
      const record = line as Record<string, unknown>
      // A whole CloudEvent (e.g. from `raptor replay --json`): published exactly as it is.
      if (record.specversion !== undefined) {
        const event = record as CloudEventInput
        return flags.channel === undefined ? event : {...event, channel: flags.channel}
      }
      const isEnvelope =
        typeof record.channel === 'string' && typeof record.type === 'string' && !flags.channel
      if (!isEnvelope) {
        if (!flags.channel || !flags.type) {
          throw new InvalidInputError(
            `${where} has no "channel" and "type": give them per line or with --channel and --type`,
          )
        }
        return {...this.common(), channel: flags.channel, type: flags.type, payload: asPayload(record, where)}
      }
      return shortForm(record, where, this.common())
    })
  }
}

/** The fields a short-form NDJSON line may have (anything else is refused, never dropped). */
const SHORT_FORM = new Set([
  'channel',
  'type',
  'payload',
  'data',
  'priority',
  'source',
  'correlationId',
  'correlationid',
  'id',
  'time',
  'subject',
  'dataschema',
  'extensions',
])

/** A short-form line `{"channel","type","payload",…}` as publish input; nothing is silently dropped. */
function shortForm(
  record: Record<string, unknown>,
  where: string,
  defaults: Omit<PublishInput, 'channel' | 'type' | 'payload'>,
): PublishInput {
  const unknown = Object.keys(record).filter((k) => !SHORT_FORM.has(k))
  if (unknown.length > 0)
    throw new InvalidInputError(
      `${where}: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}: a line is {"channel","type","payload",…} or a whole CloudEvent with "specversion"`,
    )
  if (record.payload !== undefined && record.data !== undefined)
    throw new InvalidInputError(`${where} has both "payload" and "data": give one`)
  const correlation = record.correlationId ?? record.correlationid
  const text = (name: string) => {
    const value = record[name]
    if (value !== undefined && typeof value !== 'string')
      throw new InvalidInputError(`${where}: "${name}" must be a string`)
    return value
  }
  const input: PublishInput = {
    ...defaults,
    channel: record.channel as string,
    type: record.type as string,
    payload: asPayload('payload' in record ? record.payload : 'data' in record ? record.data : {}, where),
  }
  if (text('priority') !== undefined) input.priority = record.priority as Priority
  if (text('source') !== undefined) input.source = record.source as string
  if (correlation !== undefined) input.correlationId = correlation as string
  for (const name of ['id', 'time', 'subject', 'dataschema'] as const)
    if (text(name) !== undefined) input[name] = record[name] as string
  if (record.extensions !== undefined) input.extensions = record.extensions as PublishInput['extensions']
  return input
}

/**
 * A person at a terminal who mistypes a channel made a typo, not a routing error: exit 2 and park
 * nothing. Scripts and pipes (stdin not a terminal) keep the library's contract: the event is parked
 * in DLQ routing_error as evidence of a misrouted event.
 * @throws RoutingError (not parked) for the first input whose channel is outside the topology
 */
async function refuseTypo(bus: RaptorBus, inputs: readonly {channel?: string}[]): Promise<void> {
  const unknown = inputs.find((i) => typeof i.channel === 'string' && !bus.topology.resolve(i.channel))
  if (!unknown?.channel) return
  assertChannelName(unknown.channel)
  const known = await knownChannels(bus)
  throw new RoutingError(unknown.channel, bus.topology.nearest(unknown.channel, known), false)
}
