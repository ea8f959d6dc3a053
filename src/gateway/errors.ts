import type {FastifyError, FastifyReply, FastifyRequest} from 'fastify'

import {ConnectionError, PartialError, RaptorError, type RaptorErrorCode} from '../bus/errors.js'

/** HTTP status of each library error: the same errors as the library, as status codes. */
const STATUS: Record<RaptorErrorCode, number> = {
  INVALID_INPUT: 400,
  SCHEMA_VIOLATION: 400,
  PAYLOAD_TOO_LARGE: 413,
  ROUTING_ERROR: 404,
  NOT_FOUND: 404,
  CONNECTION_ERROR: 503,
  TIMEOUT: 504,
  CLOSED: 503,
  PARTIAL: 503,
  CONFIG_ERROR: 500,
  PLUGIN_ERROR: 500,
  // A stored entry that is not an event (a foreign XADD): it exists, and cannot be shown.
  MALFORMED_ENTRY: 500,
  // The server's Redis user may not run it (ACL): the gateway's account lacks the right.
  PERMISSION_DENIED: 403,
}

/** Fastify's own request errors, by code, as raptor's error codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_INPUT',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_INPUT',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_INPUT',
  FST_ERR_VALIDATION: 'INVALID_INPUT',
}

/** Errors of ioredis that mean Redis is gone (the request failed, the gateway did not). */
const LOST_REDIS =
  /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|MaxRetriesPerRequest|Stream isn't writeable/i

/** The JSON body of every error answer: `{"error":{"code","message","status",…context}}`. */
export interface ErrorBody {
  error: {code: string; message: string; status: number} & Record<string, unknown>
}

/** An error with an HTTP status and a stable code, raised by the gateway itself. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

/** Maps any error to a status and the JSON error body. */
export function errorBody(error: unknown): ErrorBody {
  if (error instanceof HttpError)
    return {error: {code: error.code, message: error.message, status: error.status, ...error.context}}
  if (error instanceof RaptorError) {
    const status = STATUS[error.code] ?? 500
    const context = {...error.context}
    if (error instanceof PartialError) context.ids = error.ids
    return {error: {code: error.code, message: error.message, status, ...context}}
  }
  const e = error as FastifyError & {validation?: unknown}
  if (e?.validation) {
    // "querystring/limit must be <= 1000" → "invalid querystring: limit must be <= 1000".
    let message = e.message.replace(/^(querystring|body|params|headers)\/?/, 'invalid $1: ')
    const first = (e.validation as {keyword?: string; params?: {additionalProperty?: string}}[])[0]
    if (first?.keyword === 'additionalProperties')
      message = `invalid ${e.validationContext ?? 'request'}: unknown field "${first.params?.additionalProperty}"`
    return {error: {code: 'INVALID_INPUT', message, status: 400}}
  }
  if (typeof e?.code === 'string' && FASTIFY_CODES[e.code]) {
    const status = e.statusCode ?? 400
    const message =
      e.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `request body is over the limit: send events of at most maxPayloadBytes, fewer per batch`
        : e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `unsupported Content-Type: send application/cloudevents+json (structured), ` +
            `application/cloudevents-batch+json (batch), or application/json with ce-* headers (binary)`
          : e.message
    return {error: {code: FASTIFY_CODES[e.code], message, status}}
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return {error: {code: e.code ?? 'BAD_REQUEST', message: e.message, status: e.statusCode}}
  if (e?.name === 'MaxRetriesPerRequestError' || LOST_REDIS.test(`${e?.message ?? ''} ${e?.code ?? ''}`)) {
    const lost = new ConnectionError(`Redis is unreachable (${e.message}): retry when /readyz answers 200`)
    return {error: {code: lost.code, message: lost.message, status: 503}}
  }
  return {error: {code: 'INTERNAL', message: (e as Error)?.message ?? String(error), status: 500}}
}

/** Fastify error handler: every error answers with the JSON error body. */
export function makeErrorHandler(onServerError: (error: unknown, request: FastifyRequest) => void) {
  return (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const body = errorBody(error)
    if (body.error.status >= 500) onServerError(error, request)
    if (body.error.status === 401) reply.header('www-authenticate', 'Bearer realm="raptor"')
    return reply.code(body.error.status).type('application/json; charset=utf-8').send(body)
  }
}

/**
 * Runs a bus call with a deadline: a long-lived bus waits for Redis to come back, but an HTTP client
 * should hear within `ms` that it is gone (503) rather than hang.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ConnectionError(`Redis did not answer within ${ms / 1000} s: retry when /readyz answers 200`),
        ),
      ms,
    )
  })
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
