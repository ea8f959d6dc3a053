/**
 * `GET /v1/stream`: live events as Server-Sent Events. Each event is one `message` whose data is the
 * envelope JSON and whose `id` is the stream's cursor, so that a client reconnecting with
 * `Last-Event-ID` (as EventSource does by itself) resumes from history with no gap and no duplicate.
 *
 * A client that leaves more than `clientBufferBytes` unread is dropped: it gets an `event: dropped`
 * with the reason (when it reads again) and the connection ends; the server never holds more for it.
 */
import type {FastifyReply, FastifyRequest} from 'fastify'

import type {RaptorEvent} from '../bus/envelope.js'
import type {GatewayContext} from './context.js'
import {HttpError} from './errors.js'
import {openStream, prepareStream, sseDataFrame, type StreamSpec} from './live.js'

/** Reconnect delay suggested to EventSource clients, in ms. */
const RETRY_MS = 2000

export async function serveSse(
  ctx: GatewayContext,
  request: FastifyRequest,
  reply: FastifyReply,
  spec: StreamSpec,
): Promise<void> {
  // Everything a client can get wrong is checked before the 200 goes out.
  const stream = prepareStream(spec)
  if (ctx.stats.openStreams >= ctx.limits.maxStreams)
    throw new HttpError(
      503,
      'TOO_MANY_STREAMS',
      `the gateway serves ${ctx.limits.maxStreams} live connections at most: retry later`,
    )
  if (ctx.shutdown.aborted) throw new HttpError(503, 'SHUTTING_DOWN', 'the gateway is shutting down')

  const res = reply.raw
  const peer = `${request.ip}:${request.socket.remotePort}`
  const limit = ctx.limits.clientBufferBytes
  const abort = new AbortController()
  let live = false
  let ended = false
  let unsubscribe: (() => Promise<void>) | undefined

  reply.hijack()
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  })
  res.flushHeaders()
  ctx.stats.opened('sse')

  const end = (why?: {reason: string; kind: 'slow_consumer' | 'unresponsive'}) => {
    if (ended) return
    ended = true
    abort.abort(new Error(why?.reason ?? 'client went away'))
    clearInterval(keepAlive)
    ctx.shutdown.removeEventListener('abort', onShutdown)
    ctx.stats.closed('sse')
    void unsubscribe?.().catch(() => {})
    if (why) {
      ctx.stats.clientDropped('sse', why.kind)
      ctx.log.write('warn', `dropped SSE client ${peer}: ${why.reason}`, {path: request.url.split('?')[0]})
      // The reason goes after what is already queued; a client that never reads again is cut off.
      res.end(`event: dropped\ndata: ${JSON.stringify({reason: why.reason})}\n\n`)
      setTimeout(() => res.destroy(), ctx.limits.dropGraceMs).unref()
    } else if (!res.writableEnded) res.end()
    // The connection ends with the stream (no keep-alive after an event stream).
    res.socket?.end()
  }
  const onShutdown = () => {
    if (!ended) res.write(`event: shutdown\ndata: {"reason":"the gateway is shutting down"}\n\n`)
    end()
  }
  ctx.shutdown.addEventListener('abort', onShutdown)
  res.on('close', () => end())
  // A write racing the client's departure must not crash the server.
  res.on('error', () => end())
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), ctx.limits.keepAliveMs)
  keepAlive.unref()

  /** Resolves once the client has read the backlog down, or drops it when it does not in time. */
  const drained = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        end({
          reason: `slow consumer: history not read within ${ctx.limits.backfillWaitMs / 1000} s`,
          kind: 'slow_consumer',
        })
        resolve()
      }, ctx.limits.backfillWaitMs)
      const done = () => {
        clearTimeout(timer)
        res.off('drain', done)
        res.off('close', done)
        resolve()
      }
      res.on('drain', done)
      res.on('close', done)
    })

  let waiting: Promise<void> | undefined
  const send = (event: RaptorEvent, _json: string, cursor: string): void | Promise<void> => {
    if (ended) return
    // The id is this client's; the data lines are the same bytes for every client.
    res.write(`id: ${cursor}\n`)
    res.write(sseDataFrame(event))
    ctx.stats.eventSent('sse')
    if (res.writableLength <= limit) return
    // History is awaited by the library, so it may wait for a slow reader (bounded by time). Nothing
    // else is: live events, and the live events held during the backfill, released at the seam all at
    // once while a wait may still be pending. Those drop the client rather than pile up.
    if (!live && waiting === undefined) {
      waiting = drained().finally(() => (waiting = undefined))
      return waiting
    }
    end({reason: `slow consumer: ${res.writableLength} bytes unread (limit ${limit})`, kind: 'slow_consumer'})
  }

  try {
    const opened = await openStream(
      ctx.bus,
      stream,
      {send},
      {
        signal: abort.signal,
        // The first `id:` (with no data) gives the client a resume point before any event arrives.
        onStart: (cursor) => res.write(`retry: ${RETRY_MS}\nid: ${cursor}\n\n`),
      },
    )
    live = true
    unsubscribe = () => opened.subscription.unsubscribe()
    if (ended) await unsubscribe()
  } catch (error) {
    if (ended) return
    // Headers are out: the error goes to the client as an event, then the stream ends.
    const message = (error as Error).message
    ctx.log.write('error', `SSE stream failed: ${message}`, {peer})
    res.write(`event: error\ndata: ${JSON.stringify({error: {message}})}\n\n`)
    end()
  }
}
