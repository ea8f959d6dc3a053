import {z} from 'zod'

import {assertChannelPattern, isPattern, type Topology} from './channels.js'
import {PluginError, TimeoutError} from './errors.js'
import {formatIssues, toIssues, type Payload, type PublishInput, type RaptorEvent} from './envelope.js'
import {setLongTimeout, type LongTimer} from './timers.js'
import {startHandlerSpan, tracingRegistered} from './tracing.js'

/** Retry backoff: capped exponential with optional full jitter. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms. @defaultValue 200 */
  initialMs?: number
  /** Longest delay, in ms. @defaultValue 30000 */
  maxMs?: number
  /** Growth per attempt. @defaultValue 2 */
  factor?: number
  /** Full jitter: a uniformly random delay in [0, capped delay]. @defaultValue true */
  jitter?: boolean
}

/** A logger handed to handlers (`ctx.log`); the agent prints it readable on a TTY, NDJSON with --json. */
export interface HandlerLogger {
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** What a handler receives beside the event. */
export interface HandlerContext {
  /** Publishes an event (source defaults to the consumer's id); it continues this event's trace. */
  publish(input: PublishInput): Promise<string>
  /** Answers the request this event carries (its `correlationid`); a no-op error when it carries none. */
  reply(payload: Payload, options?: {type?: string}): Promise<void>
  /** Aborted when the handler passes `timeoutMs`, loses its lease, or the consumer stops hard. */
  signal: AbortSignal
  /** Attempt number, from 1; kept in Redis, so it survives process restarts. */
  attempt: number
  /** The channel the event came from. */
  channel: string
  /** The handler's name (its consumer group). */
  handler: string
  log: HandlerLogger
}

/** A durable handler: what `bus.consume` and `raptor agent` plugins run. */
export interface HandlerDefinition {
  /** Consumer group name: every handler gets every matching event; agents with the same name share the work. */
  name: string
  /** Channel names or globs (`sys.alert.*`, `app.**`). */
  channels: string[]
  /** Only events of these types reach `handle` (others are acknowledged unseen). */
  types?: string[]
  /** Retries after the first attempt before DLQ `max_retries_exceeded`. @defaultValue 3 */
  maxRetries?: number
  backoff?: BackoffOptions
  /** Past this the handler's signal aborts and the event goes to DLQ `processing_timeout`. @defaultValue 30000 */
  timeoutMs?: number
  /** Events handled at once by one consumer (also the most it fetches ahead). @defaultValue 1 */
  concurrency?: number
  /** Where a new consumer group starts: `new` events only, or all `history` within retention. @defaultValue 'new' */
  startFrom?: 'new' | 'history'
  handle(event: RaptorEvent, ctx: HandlerContext): unknown
}

/** A definition with every default filled in. */
export type ResolvedHandler = Required<Omit<HandlerDefinition, 'types' | 'backoff'>> & {
  types?: string[]
  backoff: Required<BackoffOptions>
}

export {defineHandler} from './define-handler.js'

/** Default retry, timeout and concurrency settings. */
export const HANDLER_DEFAULTS = {
  maxRetries: 3,
  backoff: {initialMs: 200, maxMs: 30_000, factor: 2, jitter: true},
  timeoutMs: 30_000,
  concurrency: 1,
  startFrom: 'new',
} as const

const DefinitionSchema = z.object({
  name: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9_.:-]+$/, 'name must be 1-128 characters of A-Z a-z 0-9 _ . : -'),
  channels: z
    .array(
      z.string().superRefine((channel, ctx) => {
        try {
          assertChannelPattern(channel)
        } catch (error) {
          ctx.addIssue({code: 'custom', message: (error as Error).message})
        }
      }),
    )
    .min(1, 'channels must list at least one channel or glob'),
  types: z.array(z.string().min(1)).optional(),
  maxRetries: z.number().int().min(0).max(1000).optional(),
  backoff: z
    .object({
      initialMs: z.number().min(0).optional(),
      maxMs: z.number().min(0).optional(),
      factor: z.number().min(1).optional(),
      jitter: z.boolean().optional(),
    })
    .strict()
    .optional(),
  timeoutMs: z.number().int().positive().optional(),
  concurrency: z.number().int().positive().max(10_000).optional(),
  startFrom: z.enum(['new', 'history']).optional(),
  handle: z.custom<HandlerDefinition['handle']>(
    (v) => typeof v === 'function',
    'handle must be a function (event, ctx) => …',
  ),
})

/**
 * Checks a definition and fills in the defaults.
 * @throws PluginError naming the field at fault (and `origin`, e.g. the plugin file)
 */
export function resolveHandler(definition: unknown, origin = 'handler'): ResolvedHandler {
  const parsed = DefinitionSchema.safeParse(definition)
  if (!parsed.success) {
    const name = (definition as {name?: unknown})?.name
    const which = typeof name === 'string' ? ` '${name}'` : ''
    throw new PluginError(`invalid handler${which} in ${origin}: ${formatIssues(toIssues(parsed.error))}`, {
      origin,
    })
  }
  const d = parsed.data
  return {
    name: d.name,
    channels: d.channels,
    types: d.types,
    maxRetries: d.maxRetries ?? HANDLER_DEFAULTS.maxRetries,
    backoff: {...HANDLER_DEFAULTS.backoff, ...d.backoff},
    timeoutMs: d.timeoutMs ?? HANDLER_DEFAULTS.timeoutMs,
    concurrency: d.concurrency ?? HANDLER_DEFAULTS.concurrency,
    startFrom: d.startFrom ?? HANDLER_DEFAULTS.startFrom,
    handle: d.handle,
  }
}

/**
 * Checks that every channel a handler names exactly is in the topology (an event can never reach a
 * channel outside it, so such a handler would wait forever). Globs may match channels added later.
 * @throws PluginError naming the handler, `origin` and the channel, and how to add it
 */
export function checkHandlerChannels(
  handler: Pick<ResolvedHandler, 'name' | 'channels'>,
  topology: Topology,
  origin = 'handler',
): void {
  for (const channel of handler.channels) {
    if (isPattern(channel) || topology.resolve(channel)) continue
    const near = topology.nearest(channel)
    throw new PluginError(
      `handler '${handler.name}' in ${origin} listens on channel '${channel}', which is not in the topology` +
        `${near ? ` (did you mean '${near}'?)` : ''}: add it, or a pattern matching it, to raptor.config.json`,
      {origin, channel},
    )
  }
}

/** Delay before retry number `retry` (1 for the first retry): capped exponential, full jitter. */
export function backoffDelay(backoff: Required<BackoffOptions>, retry: number, random = Math.random): number {
  const capped = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** Math.max(0, retry - 1))
  return backoff.jitter ? Math.floor(random() * capped) : capped
}

/** How one run of a handler ended. */
export type AttemptResult =
  {kind: 'ok'} | {kind: 'error'; error: string} | {kind: 'timeout'} | {kind: 'stopped'}

/**
 * The abort side of one handler run. The AbortController behind `ctx.signal` is made only when the
 * handler reads the signal: most handlers never do, and on the hot path it is one allocation fewer.
 */
export class Abortable {
  private controller?: AbortController
  private reason?: unknown
  private listener?: (reason: unknown) => void

  /** True once aborted. */
  get aborted(): boolean {
    return this.reason !== undefined
  }

  /** The signal handed to the handler as `ctx.signal`. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.reason !== undefined) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  /** Aborts the run (timeout, lease lost, consumer stopping). */
  abort(reason: unknown): void {
    if (this.reason !== undefined) return
    this.reason = reason
    this.controller?.abort(reason)
    this.listener?.(reason)
  }

  /** @internal the one waiter of invokeHandler */
  onAbort(listener: (reason: unknown) => void): void {
    this.listener = listener
    if (this.reason !== undefined) listener(this.reason)
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Runs a handler once under its timeout: past `timeoutMs` the context's signal aborts and the run
 * counts as timed out at once (the slot is free); a late completion changes nothing. An abort from
 * outside (`abortable.abort`) ends it as `stopped`. A handler that returns without a promise costs no
 * timer at all. With OpenTelemetry registered, the run is a consumer span, the child of the event's
 * trace context (src/bus/tracing.ts).
 */
export async function invokeHandler(
  handler: Pick<ResolvedHandler, 'name' | 'timeoutMs' | 'handle'>,
  event: RaptorEvent,
  context: Omit<HandlerContext, 'signal'>,
  abortable = new Abortable(),
): Promise<AttemptResult> {
  if (!tracingRegistered()) return runHandler(handler, event, context, abortable)
  const span = await startHandlerSpan(event, {
    handler: context.handler,
    channel: context.channel,
    attempt: context.attempt,
  })
  const result = await span.run(() => runHandler(handler, event, context, abortable))
  span.end(result)
  return result
}

async function runHandler(
  handler: Pick<ResolvedHandler, 'name' | 'timeoutMs' | 'handle'>,
  event: RaptorEvent,
  context: Omit<HandlerContext, 'signal'>,
  abortable: Abortable,
): Promise<AttemptResult> {
  const ctx = context as HandlerContext
  Object.defineProperty(ctx, 'signal', {get: () => abortable.signal, enumerable: true, configurable: true})
  let returned: unknown
  try {
    returned = handler.handle(event, ctx)
  } catch (error) {
    return {kind: 'error', error: errorText(error)}
  }
  if (!returned || typeof (returned as Promise<unknown>).then !== 'function') return {kind: 'ok'}
  const run = Promise.resolve(returned as Promise<unknown>)
  let timer: LongTimer | undefined
  const ended = new Promise<AttemptResult>((resolve) => {
    timer = setLongTimeout(() => {
      abortable.abort(new TimeoutError(`handler ${handler.name} exceeded timeoutMs ${handler.timeoutMs}`))
    }, handler.timeoutMs)
    abortable.onAbort((reason) => resolve({kind: reason instanceof TimeoutError ? 'timeout' : 'stopped'}))
    run.then(
      () => resolve({kind: 'ok'}),
      (error: unknown) => resolve({kind: 'error', error: errorText(error)}),
    )
  })
  try {
    return await ended
  } finally {
    timer?.clear()
  }
}
