/**
 * `raptor serve`: the bus on HTTP. One Fastify server (typed JSON-schema routes, body limits, one
 * error handler) with `@fastify/websocket` for `/v1/ws`, `@fastify/static` for the dashboard, and
 * `@fastify/cors` only when origins are configured. The routes live in `routes/`, the live streams in
 * `sse.ts` and `ws.ts`, who may call in `auth.ts`.
 */
import {setMaxListeners} from 'node:events'
import {fileURLToPath} from 'node:url'

import Fastify, {type FastifyInstance, type FastifyRequest} from 'fastify'

import type {AgentLog} from '../agent/log.js'
import type {RaptorBus} from '../bus/bus.js'
import type {ConnectionChange} from '../bus/connection.js'
import {InvalidInputError} from '../bus/errors.js'
import {MIN_TOKEN_LENGTH, authHook, loginHandler} from './auth.js'
import {BATCH, STRUCTURED, parseJsonExact} from './cloudevents.js'
import {DEFAULT_LIMITS, type GatewayContext, type GatewayLimits} from './context.js'
import {makeErrorHandler} from './errors.js'
import {Fanout} from './fanout.js'
import {FlushScheduler} from './flush.js'
import {dlqRoutes} from './routes/dlq.js'
import {eventRoutes} from './routes/events.js'
import {opsRoutes} from './routes/ops.js'
import {streamRoutes} from './routes/stream.js'
import {GatewayStats} from './stats.js'
import {MAX_CLIENT_MESSAGE} from './ws.js'

/** Room for the envelope and batch framing around payloads in a request body. */
const BODY_OVERHEAD = 64 * 1024

export interface GatewayOptions {
  bus: RaptorBus
  /** Address to bind. @defaultValue `'127.0.0.1'` */
  host?: string
  /** Port; 0 picks a free one. @defaultValue 7700 */
  port?: number
  /** Bearer token; required unless `host` is a loopback address. */
  token?: string
  /** Origins allowed by CORS; none means CORS is off. */
  corsOrigins?: readonly string[]
  /** Largest request body. @defaultValue the bus's maxPayloadBytes + 64 KiB */
  bodyLimit?: number
  limits?: Partial<GatewayLimits>
  /**
   * One info line per request: method, path (never the query), status and ms; live streams when they
   * end. Off by default, as Fastify's request logging is. @defaultValue false
   */
  accessLog?: boolean
  log: AgentLog
}

/** The access-log line of a request: no query string (it may hold `access_token`), no header. */
function accessLine(log: AgentLog) {
  return (request: FastifyRequest, status: number, ms: number) => {
    const path = request.url.split('?')[0]
    const rounded = Math.round(ms * 10) / 10
    log.write('info', `${request.method} ${path} ${status} ${rounded}ms`, {
      method: request.method,
      path,
      status,
      ms: rounded,
    })
  }
}

export interface Gateway {
  app: FastifyInstance
  /** `http://host:port` it listens on. */
  url: string
  stats: GatewayStats
  /**
   * Pass the bus's `onConnectionChange` here: live streams stop at once when Redis is lost and
   * resume from history when it is back (without it they resume on the subscription's gap report,
   * a round trip after the reconnect: events of that moment may then be counted as missed instead).
   */
  connectionChanged(change: ConnectionChange): void
  /** Ends every live stream, stops listening. The bus stays open (it is the caller's). */
  close(): Promise<void>
}

/** True for an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

/**
 * The bind rule: loopback may go without a token; anything else needs one of a decent length.
 * @throws InvalidInputError
 */
export function checkExposure(host: string, token: string | undefined): void {
  if (token === undefined && !isLoopback(host))
    throw new InvalidInputError(
      `refusing to serve on ${host} without a token: pass --token-file FILE or set RAPTOR_TOKEN ` +
        '(every request but /healthz must then carry it), or bind 127.0.0.1',
    )
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH)
    throw new InvalidInputError(
      `the token is ${token.length} characters long: use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`,
    )
}

/** Where the dashboard's files are: beside this module, in the source tree and in `dist`. */
const DASHBOARD_ROOT = fileURLToPath(new URL('./dashboard/', import.meta.url))

/**
 * Starts the gateway.
 * @throws InvalidInputError when a non-loopback bind has no token (or a short one), or the port is taken
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const host = options.host ?? '127.0.0.1'
  const {token} = options
  checkExposure(host, token)
  const shutdown = new AbortController()
  // Every live stream listens for the shutdown: thousands of listeners are expected, not a leak.
  setMaxListeners(0, shutdown.signal)
  const stats = new GatewayStats()
  const flusher = new FlushScheduler(() => stats.openStreams)
  const ctx: GatewayContext = {
    bus: options.bus,
    stats,
    log: options.log,
    limits: {...DEFAULT_LIMITS, ...options.limits},
    shutdown: shutdown.signal,
    access: options.accessLog ? accessLine(options.log) : undefined,
    fanout: new Fanout(options.bus, flusher, (message) => options.log.write('warn', message)),
    flusher,
  }
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? options.bus.options.maxPayloadBytes + BODY_OVERHEAD,
    // Event ids of up to 256 characters, percent-encoded, fit in a path parameter.
    routerOptions: {maxParamLength: 1024},
    requestTimeout: 30_000,
    // A misspelt field (`dryrun`) is an error, not silently dropped.
    ajv: {customOptions: {removeAdditional: false}},
  })

  // JSON bodies are parsed exactly (no rounded integers, no __proto__ keys). Binary mode's body is
  // the data, so any JSON media type is JSON here (`application/vnd.acme+json`, as the envelope allows).
  app.removeAllContentTypeParsers()
  const exactJson: Parameters<typeof app.addContentTypeParser>[2] = (_request, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, parseJsonExact(body as string))
    } catch (error) {
      done(error as Error, undefined)
    }
  }
  app.addContentTypeParser(['application/json', STRUCTURED, BATCH], {parseAs: 'string'}, exactJson)
  app.addContentTypeParser(
    /^(application|text)\/([A-Za-z0-9!#$&^_.+-]+\+)?json$/i,
    {parseAs: 'string'},
    exactJson,
  )
  // The sign-in form.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    {parseAs: 'string', bodyLimit: 4096},
    (_r, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  )

  app.setErrorHandler(
    makeErrorHandler((error, request) =>
      options.log.write(
        'error',
        `${request.method} ${request.url.split('?')[0]}: ${(error as Error).message}`,
      ),
    ),
  )
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: {
        code: 'NOT_FOUND',
        message: `no route ${request.method} ${request.url.split('?')[0]}: see the README's Web and HTTP section`,
        status: 404,
      },
    }),
  )
  app.addHook('onResponse', async (request, reply) => {
    stats.request(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode)
    ctx.access?.(request, reply.statusCode, reply.elapsedTime)
  })

  if (options.corsOrigins && options.corsOrigins.length > 0) {
    const {default: cors} = await import('@fastify/cors')
    await app.register(cors, {origin: [...options.corsOrigins], methods: ['GET', 'HEAD', 'POST']})
  }
  app.addHook('onRequest', authHook({token, corsOrigins: options.corsOrigins ?? []}))
  if (token !== undefined) app.post('/login', loginHandler(token))

  const [{default: websocket}, {default: fastifyStatic}] = await Promise.all([
    import('@fastify/websocket'),
    import('@fastify/static'),
  ])
  await app.register(websocket, {options: {maxPayload: MAX_CLIENT_MESSAGE}})
  await app.register(fastifyStatic, {
    root: DASHBOARD_ROOT,
    index: ['index.html'],
    setHeaders: (res) => {
      res.setHeader(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      )
      res.setHeader('x-content-type-options', 'nosniff')
      res.setHeader('referrer-policy', 'no-referrer')
    },
  })

  eventRoutes(app, ctx)
  dlqRoutes(app, ctx)
  opsRoutes(app, ctx)
  streamRoutes(app, ctx)

  try {
    await app.listen({host, port: options.port ?? 7700})
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    if (e.code === 'EADDRINUSE')
      throw new InvalidInputError(
        `port ${options.port} is already in use on ${host}: pick another with --port`,
      )
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND')
      throw new InvalidInputError(`cannot bind ${host}: it is not an address of this machine`)
    throw error
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  const shown = host.includes(':') ? `[${host}]` : host
  return {
    app,
    url: `http://${shown}:${port}`,
    stats,
    connectionChanged: (change) => ctx.fanout.connectionChanged(change),
    async close() {
      shutdown.abort()
      await app.close()
      await ctx.fanout.close()
    },
  }
}
