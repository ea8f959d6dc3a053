/** Dead letters, as the CLI: `GET /v1/dlq`, `POST /v1/dlq/requeue`, `POST /v1/dlq/purge`. */
import type {FastifyInstance} from 'fastify'
import type {JsonSchemaToTsProvider} from '@fastify/type-provider-json-schema-to-ts'

import {DLQ_REASONS, type DlqReason} from '../../bus/channels.js'
import type {DlqFilter, PurgeResult} from '../../bus/dlq.js'
import {parseDuration} from '../../bus/durations.js'
import {InvalidInputError} from '../../bus/errors.js'
import {requeueResult, type DlqListResult, type DlqRequeueResult} from '../../cli/results.js'
import {parseTimePoint, resolveTimePoint} from '../../cli/times.js'
import type {GatewayContext} from '../context.js'
import {withDeadline} from '../errors.js'

/** Entries listed when `limit` is not given (as `raptor dlq list`), and at most. */
const LIST_DEFAULT = 100
const LIST_MAX = 10_000

const stringList = {type: 'array', items: {type: 'string'}} as const
const filterProperties = {
  reason: {type: 'array', items: {type: 'string', enum: DLQ_REASONS}},
  channel: stringList,
  handler: stringList,
  id: stringList,
  limit: {type: 'integer', minimum: 1, maximum: LIST_MAX},
} as const

/** `POST /v1/dlq/purge` on a dry run also says up to when it counted, to pin the confirmed purge. */
export interface PurgeAnswer extends PurgeResult {
  /** RFC 3339 server time: pass it back as `before` so that the purge deletes no entry the count missed. */
  before?: string
}

function filterOf(query: {
  reason?: string[]
  channel?: string[]
  handler?: string[]
  id?: string[]
  limit?: number
}): DlqFilter {
  return {
    reasons: query.reason as DlqReason[] | undefined,
    channels: query.channel,
    handlers: query.handler,
    ids: query.id,
    limit: query.limit,
  }
}

export function dlqRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const r = app.withTypeProvider<JsonSchemaToTsProvider>()
  const deadline = <T>(work: Promise<T>) => withDeadline(work, ctx.limits.redisDeadlineMs)

  r.get(
    '/v1/dlq',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {...filterProperties, access_token: {type: 'string'}},
          additionalProperties: false,
        },
      },
    },
    async (request): Promise<DlqListResult> => ({
      entries: await deadline(
        ctx.bus.dlq.list({...filterOf(request.query), limit: request.query.limit ?? LIST_DEFAULT}),
      ),
    }),
  )

  r.post(
    '/v1/dlq/requeue',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            ...filterProperties,
            toChannel: {type: 'string'},
            dryRun: {type: 'boolean'},
            batchSize: {type: 'integer', minimum: 1, maximum: 1000},
          },
          additionalProperties: false,
        },
      },
    },
    async (request): Promise<DlqRequeueResult> => {
      const body = request.body ?? {}
      const result = await deadline(
        ctx.bus.dlq.requeue({
          ...filterOf(body),
          toChannel: body.toChannel,
          dryRun: body.dryRun,
          batchSize: body.batchSize,
        }),
      )
      return requeueResult(result)
    },
  )

  r.post(
    '/v1/dlq/purge',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            ...filterProperties,
            olderThan: {type: 'string'},
            before: {type: 'string'},
            dryRun: {type: 'boolean'},
            yes: {type: 'boolean'},
          },
          additionalProperties: false,
        },
      },
    },
    async (request): Promise<PurgeAnswer> => {
      const body = request.body ?? {}
      // As `raptor dlq purge` without a terminal: nothing is deleted without an explicit yes.
      if (!body.dryRun && body.yes !== true)
        throw new InvalidInputError(
          'refusing to purge without confirmation: send {"yes":true} (or {"dryRun":true} to count)',
        )
      const olderThan = body.olderThan === undefined ? 0 : parseDuration(body.olderThan, 'olderThan')
      const now = await deadline(ctx.bus.history.serverTime())
      // Pinning the window's end makes a confirmed count an upper bound of what gets deleted.
      let before = now + 1 - olderThan
      if (body.before !== undefined)
        before = Math.min(before, resolveTimePoint(parseTimePoint(body.before, 'before'), now))
      const result = await deadline(ctx.bus.dlq.purge({...filterOf(body), before, dryRun: body.dryRun}))
      return body.dryRun ? {...result, before: new Date(before).toISOString()} : result
    },
  )
}
