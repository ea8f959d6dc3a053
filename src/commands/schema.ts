import {Flags} from '@oclif/core'
import {z} from 'zod'

import {findConfigFile, loadConfig} from '../bus/config.js'
import {NotFoundError} from '../bus/errors.js'
import {envelopeJsonSchema} from '../bus/envelope.js'
import {BaseCommand} from '../cli/base-command.js'

export default class Schema extends BaseCommand<typeof Schema> {
  static override summary = 'Print the JSON Schema of the event envelope, or of a payload type.'
  static override description = `Without --type, prints the JSON Schema (draft 2020-12) of the raptor envelope: CloudEvents 1.0 structured-mode JSON with the extensions channel, priority and correlationid, the trace context traceparent/tracestate, and any other CloudEvents extension. With --type, prints the payload schema registered for that event type in the config file; exits 1 when none is. Needs no Redis.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --type order_created --config raptor.config.json',
  ]

  static override flags = {
    type: Flags.string({char: 't', summary: 'Print the payload schema registered for this event type.'}),
  }

  async run(): Promise<Record<string, unknown>> {
    const schema =
      this.flags.type === undefined ? await envelopeJsonSchema() : await this.payloadSchema(this.flags.type)
    this.log(JSON.stringify(schema, null, 2))
    return schema
  }

  private async payloadSchema(type: string): Promise<Record<string, unknown>> {
    const file = findConfigFile(this.flags.config)
    const schemas = (await loadConfig(this.flags.config)).schemas ?? {}
    const schema = schemas[type]
    if (!schema) {
      const known = Object.keys(schemas).sort()
      throw new NotFoundError(
        `no payload schema for type '${type}' in ${file ?? 'the config (no raptor.config.* here; use --config)'}` +
          (known.length > 0 ? `; types with schemas: ${known.join(', ')}` : ''),
        {type},
      )
    }
    try {
      return z.toJSONSchema(schema as unknown as z.ZodType, {io: 'input'}) as Record<string, unknown>
    } catch (error) {
      throw new NotFoundError(
        `the schema of type '${type}' cannot be shown as JSON Schema (${(error as Error).message}): define it with zod 4 or as JSON Schema`,
        {type},
      )
    }
  }
}
