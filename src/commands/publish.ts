import {Flags} from '@oclif/core'

import {InvalidInputError} from '../bus/errors.js'
import {PRIORITIES, type CloudEventInput, type Priority, type PublishInput} from '../bus/envelope.js'
import {BaseCommand} from '../cli/base-command.js'
import {asPayload, parseNdjson, parsePayload, readArgText} from '../cli/input.js'

export interface PublishResult {
  channel: string | null
  ids: string[]
}

export default class Publish extends BaseCommand<typeof Publish> {
  static override summary = 'Publish events to a channel.'
  static override description = `Validates each event (envelope, payload schema, size, channel) and writes it with one Lua script: history, get-by-id index, counters and live fan-out. Nothing is written when any event is invalid. An unknown channel parks the event in DLQ routing_error and exits 2.

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

  async run(): Promise<PublishResult> {
    const {flags} = this
    const inputs = flags.ndjson === undefined ? await this.single() : await this.bulk(flags.ndjson)
    const bus = await this.bus()
    const ids = inputs.length === 1 ? [await bus.publish(inputs[0])] : await bus.publishMany(inputs)
    for (const id of ids) this.log(id)
    const channels = new Set(inputs.map((i) => i.channel))
    return {channel: channels.size === 1 ? inputs[0].channel : null, ids}
  }

  private common(): Omit<PublishInput, 'channel' | 'type' | 'payload'> {
    const {flags} = this
    return {priority: flags.priority, source: flags.source, correlationId: flags['correlation-id']}
  }

  private async single(): Promise<PublishInput[]> {
    const {flags} = this
    if (!flags.channel) throw new InvalidInputError('--channel is required (or --ndjson for bulk input)')
    if (!flags.type) throw new InvalidInputError('--type is required (or --ndjson for bulk input)')
    const {text, origin} = await readArgText(flags.payload, '--payload')
    const payload = parsePayload(text, origin === '--payload' ? '--payload' : origin)
    const input = {...this.common(), channel: flags.channel, type: flags.type, payload}
    return Array.from({length: flags.count}, () => input)
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
