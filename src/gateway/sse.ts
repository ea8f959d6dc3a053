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
import type {SharedEvent} from './fanout.js'
import {FrameQueue} from './flush.js'
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
  let close: (() => Promise<void>) | undefined

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

  const opened = performance.now()
  const end = (why?: {reason: string; kind: 'slow_consumer' | 'unresponsive'}) => {
    if (ended) return
    ended = true
    ctx.access?.(request, 200, performance.now() - opened)
    abort.abort(new Error(why?.reason ?? 'client went away'))
    clearInterval(keepAlive)
    ctx.shutdown.removeEventListener('abort', onShutdown)
    ctx.stats.closed('sse')
    queue.clear()
    void close?.().catch(() => {})
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
    flush()
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

  // Live events are queued and written in batches (see flush.ts); the queue and the socket's own
  // buffer together stay under the limit, or the client is dropped.
  const queue = new FrameQueue()
  const flush = () => {
    if (ended) return
    const chunk = queue.take()
    if (chunk) res.write(chunk)
  }
  const enqueue = (frame: Buffer) => {
    if (ended) return
    queue.push(frame)
    const unread = queue.bytes + res.writableLength
    if (unread > limit)
      return end({reason: `slow consumer: ${unread} bytes unread (limit ${limit})`, kind: 'slow_consumer'})
    ctx.flusher.mark(flush)
  }

  let waiting: Promise<void> | undefined
  const send = (event: RaptorEvent, _json: string, cursor: string): void | Promise<void> => {
    if (ended) return
    ctx.stats.eventSent('sse')
    // The id is this client's; the data lines are the same bytes for every client.
    if (live) {
      enqueue(Buffer.from(`id: ${cursor}\n`))
      enqueue(sseDataFrame(event))
      return
    }
    res.write(`id: ${cursor}\n`)
    res.write(sseDataFrame(event))
    if (res.writableLength <= limit) return
    // History is awaited by the library, so it may wait for a slow reader (bounded by time), one wait
    // at a time. The live events held during the backfill, released at the seam all at once while a
    // wait may still be pending, drop the client rather than pile up.
    if (waiting === undefined) {
      waiting = drained().finally(() => (waiting = undefined))
      return waiting
    }
    end({reason: `slow consumer: ${res.writableLength} bytes unread (limit ${limit})`, kind: 'slow_consumer'})
  }
  const sink = {
    send,
    sendShared: (shared: SharedEvent) => {
      ctx.stats.eventSent('sse')
      enqueue(shared.sseFrame())
    },
    missed: (count: number, cursor: string) => {
      const data = JSON.stringify({
        missed: count,
        reason: 'lost while Redis was unreachable; no longer in history',
      })
      enqueue(Buffer.from(`event: gap\nid: ${cursor}\ndata: ${data}\n\n`))
    },
  }

  try {
    const opened = await openStream(ctx, stream, sink, {
      signal: abort.signal,
      // The first `id:` (with no data) gives the client a resume point before any event arrives.
      onStart: (cursor) => res.write(`retry: ${RETRY_MS}\nid: ${cursor}\n\n`),
      onLive: () => (live = true),
      batch: (frames, events) => {
        if (ended) return
        ctx.stats.eventSent('sse', events)
        flush()
        res.write(frames)
        if (res.writableLength > limit)
          end({
            reason: `slow consumer: ${res.writableLength} bytes unread (limit ${limit})`,
            kind: 'slow_consumer',
          })
      },
    })
    close = () => opened.close()
    if (ended) return void (await close())
    // A comment (EventSource ignores it): history is sent and the stream is live.
    flush()
    res.write(': live\n\n')
  } catch (error) {
    if (ended) return
    // Headers are out: the error goes to the client as an event, then the stream ends.
    const message = (error as Error).message
    ctx.log.write('error', `SSE stream failed: ${message}`, {peer})
    res.write(`event: error\ndata: ${JSON.stringify({error: {message}})}\n\n`)
    end()
  }
}
