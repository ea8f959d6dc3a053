/** Live events: `GET /v1/stream` (Server-Sent Events) and `GET /v1/ws` (WebSocket). */
import type {FastifyInstance} from 'fastify'
import type {JsonSchemaToTsProvider} from '@fastify/type-provider-json-schema-to-ts'

import {parseDuration} from '../../bus/durations.js'
import type {GatewayContext} from '../context.js'
import type {StreamSpec} from '../live.js'
import {serveSse} from '../sse.js'
import {serveWebSocket} from '../ws.js'

const stringList = {type: 'array', items: {type: 'string'}} as const
const streamQuery = {
  type: 'object',
  properties: {
    pattern: stringList,
    type: stringList,
    source: stringList,
    priority: stringList,
    where: {type: 'string'},
    since: {type: 'string'},
    lastEventId: {type: 'string'},
    access_token: {type: 'string'},
  },
  additionalProperties: false,
} as const

interface StreamQuery {
  pattern?: string[]
  type?: string[]
  source?: string[]
  priority?: string[]
  where?: string
  since?: string
  lastEventId?: string
}

/** The stream a URL asks for (`pattern` may also be comma-separated). */
function specOf(query: StreamQuery, lastEventId?: string): StreamSpec {
  return {
    patterns: (query.pattern ?? []).flatMap((p) => p.split(',')).filter((p) => p !== ''),
    types: query.type,
    sources: query.source,
    priorities: query.priority,
    where: query.where,
    since: query.since === undefined ? undefined : parseDuration(query.since, 'since'),
    resume: lastEventId ?? query.lastEventId,
  }
}

export function streamRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const r = app.withTypeProvider<JsonSchemaToTsProvider>()

  r.get('/v1/stream', {schema: {querystring: streamQuery}}, async (request, reply) => {
    const header = request.headers['last-event-id']
    await serveSse(
      ctx,
      request,
      reply,
      specOf(request.query, typeof header === 'string' ? header : undefined),
    )
  })

  r.get('/v1/ws', {websocket: true, schema: {querystring: streamQuery}}, (socket, request) => {
    const query = request.query as StreamQuery
    let initial: StreamSpec | undefined
    let problem: unknown
    try {
      initial = query.pattern || query.where || query.type ? specOf(query) : undefined
    } catch (error) {
      problem = error
    }
    serveWebSocket(ctx, socket, request, initial, problem)
  })
}
