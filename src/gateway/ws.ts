/**
 * `GET /v1/ws`: live events over a WebSocket, several subscriptions per connection, each with its
 * own patterns and filters. JSON text messages:
 *
 *   → {"op":"subscribe","id":"s1","patterns":["sys.state.update"],"where":"data.user_id == \"u1\""}
 *     (also "types", "sources", "priorities", "since" (ms or a duration), "cursor" to resume)
 *   ← {"op":"subscribed","id":"s1","cursor":"…"}
 *   ← {"op":"event","id":"s1","cursor":"…","event":{…envelope…}}
 *   → {"op":"unsubscribe","id":"s1"}          ← {"op":"unsubscribed","id":"s1"}
 *   ← {"op":"error","id":"s1","error":{"code","message"}}   (the connection stays open)
 *
 * `?pattern=…&where=…` on the URL subscribes at once under the id `default`. A client that leaves
 * more than `clientBufferBytes` unread is closed with code 1008 and the reason; one that stops
 * answering pings is terminated.
 */
import type {FastifyRequest} from 'fastify'
import type {WebSocket} from 'ws'

import {parseDuration} from '../bus/durations.js'
import {InvalidInputError} from '../bus/errors.js'
import type {RaptorEvent} from '../bus/envelope.js'
import type {GatewayContext} from './context.js'
import {errorBody} from './errors.js'
import type {SharedEvent} from './fanout.js'
import {openStream, prepareStream, type StreamSpec} from './live.js'

/** Subscriptions one connection may hold. */
const MAX_SUBSCRIPTIONS = 100
/** Largest client message, in bytes. */
export const MAX_CLIENT_MESSAGE = 64 * 1024

interface Sub {
  abort: AbortController
  live: boolean
  /** A history send is waiting for the client to read. */
  waiting?: boolean
  unsubscribe?: () => Promise<void>
}

function strings(value: unknown, field: string): string[] | undefined {
  if (value === undefined) return undefined
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string'))
    throw new InvalidInputError(`"${field}" must be a string or an array of strings`)
  return list
}

/** A subscribe message as a stream spec. */
export function subscribeSpec(message: Record<string, unknown>): StreamSpec {
  const since = message.since
  if (since !== undefined && typeof since !== 'number' && typeof since !== 'string')
    throw new InvalidInputError('"since" must be ms or a duration like "10m"')
  if (message.where !== undefined && typeof message.where !== 'string')
    throw new InvalidInputError('"where" must be a string (a filter expression)')
  if (message.cursor !== undefined && typeof message.cursor !== 'string')
    throw new InvalidInputError('"cursor" must be the cursor of an event received earlier')
  return {
    patterns: strings(message.patterns ?? message.pattern, 'patterns') ?? [],
    types: strings(message.types, 'types'),
    sources: strings(message.sources, 'sources'),
    priorities: strings(message.priorities, 'priorities'),
    where: message.where as string | undefined,
    since:
      since === undefined ? undefined : typeof since === 'number' ? since : parseDuration(since, 'since'),
    resume: message.cursor as string | undefined,
  }
}

export function serveWebSocket(
  ctx: GatewayContext,
  socket: WebSocket,
  request: FastifyRequest,
  initial: StreamSpec | undefined,
  problem?: unknown,
): void {
  const peer = `${request.ip}:${request.socket.remotePort}`
  const limit = ctx.limits.clientBufferBytes
  const subs = new Map<string, Sub>()
  let closed = false
  let alive = true

  if (ctx.stats.openStreams >= ctx.limits.maxStreams || ctx.shutdown.aborted) {
    socket.close(
      1013,
      ctx.shutdown.aborted ? 'the gateway is shutting down' : 'too many live connections: retry later',
    )
    return
  }
  ctx.stats.opened('ws')
  const opened = performance.now()

  const reply = (message: Record<string, unknown>) => {
    if (!closed) socket.send(JSON.stringify(message))
  }
  const fail = (id: unknown, error: unknown) => {
    const {error: e} = errorBody(error)
    reply({op: 'error', ...(id === undefined ? {} : {id}), error: {code: e.code, message: e.message}})
  }

  const finish = () => {
    if (closed) return
    closed = true
    ctx.access?.(request, 101, performance.now() - opened)
    clearInterval(pinger)
    ctx.shutdown.removeEventListener('abort', onShutdown)
    ctx.stats.closed('ws')
    for (const sub of subs.values()) {
      sub.abort.abort(new Error('connection closed'))
      void sub.unsubscribe?.().catch(() => {})
    }
    subs.clear()
  }
  const drop = (reason: string, kind: 'slow_consumer' | 'unresponsive') => {
    if (closed) return
    ctx.stats.clientDropped('ws', kind)
    ctx.log.write('warn', `dropped WebSocket client ${peer}: ${reason}`)
    finish()
    if (kind === 'unresponsive') socket.terminate()
    else {
      socket.close(1008, reason.slice(0, 120))
      setTimeout(() => socket.terminate(), ctx.limits.dropGraceMs).unref()
    }
  }
  const onShutdown = () => {
    finish()
    socket.close(1001, 'the gateway is shutting down')
  }
  ctx.shutdown.addEventListener('abort', onShutdown)
  socket.on('close', finish)
  socket.on('error', finish)
  socket.on('pong', () => (alive = true))
  const pinger = setInterval(() => {
    if (!alive) return drop('did not answer a ping', 'unresponsive')
    alive = false
    socket.ping()
  }, ctx.limits.keepAliveMs)
  pinger.unref()

  const subscribe = async (id: string, spec: StreamSpec) => {
    if (subs.has(id))
      throw new InvalidInputError(`subscription "${id}" exists: unsubscribe it first or pick another id`)
    if (subs.size >= MAX_SUBSCRIPTIONS)
      throw new InvalidInputError(`at most ${MAX_SUBSCRIPTIONS} subscriptions per connection`)
    const stream = prepareStream(spec)
    const sub: Sub = {abort: new AbortController(), live: false}
    subs.set(id, sub)
    const head = `{"op":"event","id":${JSON.stringify(id)}`
    const prefix = `${head},"cursor":`
    const send = (_event: RaptorEvent, json: string, cursor: string): void | Promise<void> => {
      if (closed || subs.get(id) !== sub) return
      const text = `${prefix}${JSON.stringify(cursor)},"event":${json}}`
      ctx.stats.eventSent('ws')
      // As for SSE: only the history (awaited by the library) waits for a slow reader, one wait at a
      // time; live events and those released at the seam drop the client instead.
      if (sub.live || sub.waiting) {
        socket.send(text)
        if (socket.bufferedAmount > limit)
          drop(`slow consumer: ${socket.bufferedAmount} bytes unread (limit ${limit})`, 'slow_consumer')
        return
      }
      // History waits for a slow reader (within a bound): until this message is written out.
      let written!: () => void
      const flushed = new Promise<void>((resolve) => (written = resolve))
      socket.send(text, () => written())
      if (socket.bufferedAmount > limit) {
        sub.waiting = true
        return drainedOr(flushed).finally(() => (sub.waiting = false))
      }
    }
    const sendLive = (text: string) => {
      if (closed || subs.get(id) !== sub) return
      ctx.stats.eventSent('ws')
      socket.send(text)
      if (socket.bufferedAmount > limit)
        drop(`slow consumer: ${socket.bufferedAmount} bytes unread (limit ${limit})`, 'slow_consumer')
    }
    const sink = {
      send,
      // The cursor and event text are made once per event for every subscription of the group.
      sendShared: (shared: SharedEvent) => sendLive(head + shared.wsTail()),
      missed: (count: number, cursor: string) =>
        reply({
          op: 'gap',
          id,
          cursor,
          missed: count,
          reason: 'lost while Redis was unreachable; no longer in history',
        }),
    }
    try {
      const opened = await openStream(ctx, stream, sink, {
        signal: sub.abort.signal,
        onLive: () => (sub.live = true),
      })
      sub.unsubscribe = () => opened.close()
      if (closed || subs.get(id) !== sub) return void (await sub.unsubscribe())
      reply({op: 'subscribed', id, cursor: opened.cursor()})
    } catch (error) {
      if (subs.get(id) === sub) subs.delete(id)
      throw error
    }
  }

  /** Waits for a write to go out; drops the client when it does not within the backfill bound. */
  const drainedOr = (flushed: Promise<void>) => {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        drop(`slow consumer: history not read within ${ctx.limits.backfillWaitMs / 1000} s`, 'slow_consumer')
        resolve()
      }, ctx.limits.backfillWaitMs)
    })
    return Promise.race([flushed, deadline]).finally(() => clearTimeout(timer))
  }

  const unsubscribe = async (id: string) => {
    const sub = subs.get(id)
    if (!sub) throw new InvalidInputError(`no subscription "${id}" on this connection`)
    subs.delete(id)
    sub.abort.abort(new Error('unsubscribed'))
    await sub.unsubscribe?.()
    reply({op: 'unsubscribed', id})
  }

  socket.on('message', (data, isBinary) => {
    let message: Record<string, unknown>
    try {
      if (isBinary) throw new InvalidInputError('send JSON text messages')
      const parsed: unknown = JSON.parse(String(data))
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new InvalidInputError('a message must be a JSON object with "op"')
      message = parsed as Record<string, unknown>
    } catch (error) {
      return fail(
        undefined,
        error instanceof InvalidInputError
          ? error
          : new InvalidInputError(`not JSON: ${(error as Error).message}`),
      )
    }
    const {op, id} = message
    if (typeof id !== 'string' || id === '' || id.length > 128)
      return fail(
        id,
        new InvalidInputError('"id" must be a string of 1-128 characters naming the subscription'),
      )
    const work =
      op === 'subscribe'
        ? Promise.resolve().then(() => subscribe(id, subscribeSpec(message)))
        : op === 'unsubscribe'
          ? unsubscribe(id)
          : Promise.reject(
              new InvalidInputError(`unknown op ${JSON.stringify(op)}: use "subscribe" or "unsubscribe"`),
            )
    work.catch((error: unknown) => fail(id, error))
  })

  if (problem !== undefined) fail('default', problem)
  else if (initial) subscribe('default', initial).catch((error: unknown) => fail('default', error))
}
