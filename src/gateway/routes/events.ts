/**
 * Publishing (CloudEvents HTTP binding) and history: `POST /v1/events`, `GET /v1/events/{id}`,
 * `GET /v1/channels`, `GET /v1/channels/{channel}/events`.
 */
import type {FastifyInstance} from 'fastify'
import type {JsonSchemaToTsProvider} from '@fastify/type-provider-json-schema-to-ts'

import {NotFoundError} from '../../bus/errors.js'
import type {CloudEventInput, RaptorEvent} from '../../bus/envelope.js'
import {parseTimePoint, resolveTimePoint} from '../../cli/times.js'
import {channelsResult} from '../../cli/results.js'
import {
  BATCH,
  STRUCTURED,
  fromBatch,
  fromBinary,
  fromStructured,
  isBinary,
  mediaType,
  toPublishInput,
} from '../cloudevents.js'
import type {GatewayContext} from '../context.js'
import {HttpError, withDeadline} from '../errors.js'

/** Events of one history page when `limit` is not given, and at most. */
const PAGE_DEFAULT = 100
const PAGE_MAX = 1000

/** `POST /v1/events` and `raptor publish --json`: where the events went. */
export interface PublishResult {
  channel: string | null
  ids: string[]
}

/** A page of history: `next` is the `after` of the following page, null on the last one. */
export interface HistoryPage {
  channel: string
  events: RaptorEvent[]
  next: string | null
}

const stringList = {type: 'array', items: {type: 'string'}} as const

export function eventRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const r = app.withTypeProvider<JsonSchemaToTsProvider>()
  const deadline = <T>(work: Promise<T>) => withDeadline(work, ctx.limits.redisDeadlineMs)

  r.post(
    '/v1/events',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {channel: {type: 'string'}, access_token: {type: 'string'}},
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const media = mediaType(request.headers['content-type'])
      const {channel} = request.query
      let inputs: CloudEventInput[]
      let batch = false
      if (media === BATCH) {
        inputs = fromBatch(request.body).map((e) => toPublishInput(e, channel))
        batch = true
      } else if (media === STRUCTURED) {
        inputs = [toPublishInput(fromStructured(request.body), channel)]
      } else if (isBinary(request.headers)) {
        inputs = [toPublishInput(fromBinary(request.headers, request.body), channel)]
      } else {
        throw new HttpError(
          400,
          'INVALID_INPUT',
          'not a CloudEvent: send Content-Type application/cloudevents+json (structured mode), ' +
            'ce-specversion and the other ce-* headers with a JSON body (binary mode), ' +
            'or application/cloudevents-batch+json (a JSON array of events)',
        )
      }
      const ids = batch
        ? await deadline(ctx.bus.publishMany(inputs))
        : [await deadline(ctx.bus.publish(inputs[0]))]
      const channels = new Set(inputs.map((i) => i.channel))
      const result: PublishResult = {channel: channels.size === 1 ? inputs[0].channel : null, ids}
      if (!batch) reply.header('location', `/v1/events/${encodeURIComponent(ids[0])}`)
      return reply.code(201).send(result)
    },
  )

  r.get(
    '/v1/events/:id',
    {schema: {params: {type: 'object', properties: {id: {type: 'string'}}, required: ['id']}}},
    async (request, reply) => {
      const event = await deadline(ctx.bus.getEvent(request.params.id))
      return reply.type('application/cloudevents+json; charset=utf-8').send(JSON.stringify(event))
    },
  )

  r.get('/v1/channels', async () => channelsResult(await deadline(ctx.bus.channels())))

  r.get(
    '/v1/channels/:channel/events',
    {
      schema: {
        params: {type: 'object', properties: {channel: {type: 'string'}}, required: ['channel']},
        querystring: {
          type: 'object',
          properties: {
            since: {type: 'string'},
            from: {type: 'string'},
            until: {type: 'string'},
            type: stringList,
            limit: {type: 'integer', minimum: 1, maximum: PAGE_MAX},
            after: {type: 'string', pattern: '^\\d+-\\d+$'},
            access_token: {type: 'string'},
          },
          additionalProperties: false,
        },
      },
    },
    async (request): Promise<HistoryPage> => {
      const {channel} = request.params
      const {since, from, until, type, after} = request.query
      const limit = request.query.limit ?? PAGE_DEFAULT
      const topology = ctx.bus.topology
      if (!topology.resolve(channel)) {
        const suggestion = topology.nearest(channel)
        throw new NotFoundError(
          `channel '${channel}' is not in the topology${suggestion ? `; did you mean '${suggestion}'?` : ''}`,
          {channel, suggestion},
        )
      }
      if (since !== undefined && from !== undefined)
        throw new HttpError(400, 'INVALID_INPUT', 'give since or from, not both (they mean the same)')
      const start = since ?? from
      const points = {
        start:
          start === undefined ? undefined : parseTimePoint(start, since !== undefined ? 'since' : 'from'),
        until: until === undefined ? undefined : parseTimePoint(until, 'until'),
      }
      const now = await deadline(ctx.bus.history.serverTime())
      const events: RaptorEvent[] = []
      let next: string | null = null
      let last: string | undefined
      // One entry past the page tells whether there is a next page; malformed entries are skipped.
      const read = async () => {
        for await (const entry of ctx.bus.history.entries(channel, {
          from: points.start && resolveTimePoint(points.start, now),
          until: points.until ? resolveTimePoint(points.until, now) : now,
          types: type,
          after,
        })) {
          if (events.length === limit) {
            next = last ?? null
            return
          }
          last = entry.streamId
          if (entry.event) events.push(entry.event)
        }
      }
      await deadline(read())
      return {channel, events, next}
    },
  )
}
